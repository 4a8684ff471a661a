/**
 * Stream authentication in a cluster: the proxy presents a projected ServiceAccount token
 * with the audience `vane-stream`; a TokenReview (asking for that audience) must accept it,
 * name the proxy's ServiceAccount, and be bound to a pod that exists (same uid), is not
 * terminating or finished, and carries the proxy pod labels. The proxy is named by its pod.
 *
 * The TokenReview's verdict is cached briefly (never past the token's own expiry), keyed by a
 * token digest; the pod is looked up on every connection, so a token (a replayed one too) is
 * good only while its pod lives — not for the rest of a cached verdict. Only answers are
 * verdicts: a TokenReview or pod lookup that fails (timeout, 5xx) throws, is never cached,
 * and the client is told to retry.
 */
import { createHash } from 'node:crypto';
import { CLOSE } from '../../core/index.ts';
import { RESOURCES, kubeOf, type Kube, type KubeConfig } from '../../lib/kube/index.ts';
import type { Authenticator, AuthResult } from './server.ts';

export const STREAM_AUDIENCE = 'vane-stream';

export interface KubeAuthOptions {
  /** `namespace/name` of the proxies' ServiceAccount. */
  serviceAccount: string;
  /** Labels every proxy pod carries (e.g. app.kubernetes.io/name=vane-proxy). */
  podLabels: Record<string, string>;
  cacheMs?: number;
  now?: () => number;
}

interface TokenReview {
  status?: {
    authenticated?: boolean;
    error?: string;
    audiences?: string[];
    user?: { username?: string; extra?: Record<string, string[]> };
  };
}

type Denial = Extract<AuthResult, { ok: false }>;
type Review = Denial | { podName: string; podUid: string };

interface Pod {
  metadata?: { uid?: string; deletionTimestamp?: string; labels?: Record<string, string> };
  status?: { phase?: string };
}

function tokenExpiryMs(token: string): number | null {
  const payload = token.split('.')[1];
  if (!payload) return null;
  try {
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { exp?: number };
    return typeof claims.exp === 'number' ? claims.exp * 1000 : null;
  } catch {
    return null;
  }
}

export function kubeAuthenticator(kc: KubeConfig | Kube, options: KubeAuthOptions): Authenticator {
  const kube = kubeOf(kc);
  const cacheMs = options.cacheMs ?? 30_000;
  const now = options.now ?? Date.now;
  const cache = new Map<string, { until: number; review: Review }>();
  const [saNamespace, saName] = options.serviceAccount.split('/');
  const wantUser = `system:serviceaccount:${saNamespace}:${saName}`;
  const deny = (code: number, reason: string): Denial => ({ ok: false, code, reason });

  /** review asks the API server who the token belongs to: a denial, or the pod it is bound to. */
  async function review(token: string): Promise<Review> {
    const tr = await kube.create<TokenReview>(RESOURCES.TokenReview, { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token, audiences: [STREAM_AUDIENCE] } });
    const status = tr.status;
    if (!status?.authenticated) return deny(CLOSE.unauthenticated, `unauthenticated: ${status?.error ?? 'token rejected'}`);
    if (!(status.audiences ?? []).includes(STREAM_AUDIENCE)) return deny(CLOSE.unauthenticated, `unauthenticated: token is not for audience ${STREAM_AUDIENCE}`);
    const user = status.user?.username ?? '';
    if (user !== wantUser) return deny(CLOSE.forbidden, `forbidden: ${user} is not the proxy ServiceAccount`);
    const extra = status.user?.extra ?? {};
    const podName = extra['authentication.kubernetes.io/pod-name']?.[0];
    const podUid = extra['authentication.kubernetes.io/pod-uid']?.[0];
    if (!podName || !podUid) return deny(CLOSE.forbidden, 'forbidden: the token is not bound to a pod');
    return { podName, podUid };
  }

  /** podCheck: the token's pod exists (the same one), runs, and is a proxy pod; a failed lookup throws. */
  async function podCheck({ podName, podUid }: { podName: string; podUid: string }): Promise<AuthResult> {
    const pod = await kube.getOrNull<Pod>(RESOURCES.Pod, { namespace: saNamespace!, name: podName });
    if (!pod) return deny(CLOSE.forbidden, `forbidden: pod ${saNamespace}/${podName} not found`);
    if (pod.metadata?.uid !== podUid) return deny(CLOSE.forbidden, `forbidden: pod ${podName} was replaced`);
    if (pod.metadata?.deletionTimestamp || pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed') {
      return deny(CLOSE.forbidden, `forbidden: pod ${podName} is not running`);
    }
    for (const [k, v] of Object.entries(options.podLabels)) {
      if (pod.metadata?.labels?.[k] !== v) return deny(CLOSE.forbidden, `forbidden: pod ${podName} is not a proxy pod (label ${k})`);
    }
    return { ok: true, proxy: podName, instance: podUid };
  }

  return async (token) => {
    if (!token) return deny(CLOSE.unauthenticated, 'unauthenticated: a bearer token is required');
    const key = createHash('sha256').update(token).digest('hex');
    const t = now();
    let verdict = cache.get(key);
    if (!verdict || verdict.until <= t) {
      verdict = { until: Math.min(t + cacheMs, tokenExpiryMs(token) ?? Infinity), review: await review(token) };
      cache.set(key, verdict);
      if (cache.size > 10_000) for (const [k, v] of cache) if (v.until <= t) cache.delete(k);
    }
    return 'ok' in verdict.review ? verdict.review : podCheck(verdict.review);
  };
}
