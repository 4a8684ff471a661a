/**
 * The Ingress annotations Vane understands (prefix `vane.dev/`), their parsing and limits.
 * One table drives validation, compile and the webhook, so they cannot disagree.
 */
import { parseDurationMs, parseSizeBytes } from './units.ts';
import type { HstsSpec, RouteTimeouts } from './resources.ts';

export const PREFIX = 'vane.dev/';

export interface IngressSettings {
  useRegex: boolean;
  rewriteTarget?: string;
  sslRedirect: boolean;
  sslPassthrough: boolean;
  loadBalance: 'round-robin' | 'least-request';
  timeouts: RouteTimeouts;
  maxBodyBytes: number;
  /** `vane.dev/backend-protocol`, when set. */
  backendProtocol?: 'HTTP' | 'HTTPS';
  /** Secret name, in the Ingress's namespace, holding `ca.crt` (and tls.crt/tls.key for mTLS). */
  backendTlsSecret?: string;
  backendTlsServerName?: string;
  backendTlsVerify?: boolean;
  /** Secret name, in the Ingress's namespace, whose `ca.crt` verifies client certificates. */
  authTlsSecret?: string;
  authTlsVerifyClient?: 'on' | 'off' | 'optional' | 'optional_no_ca';
  authTlsVerifyDepth?: number;
  authTlsPassCertificate?: boolean;
  hsts?: boolean;
  hstsMaxAgeSec?: number;
  hstsIncludeSubDomains?: boolean;
  hstsPreload?: boolean;
}

/** HSTS_MAX_AGE_LIMIT_SEC: two years, what browsers' preload lists ask for at most. */
export const HSTS_MAX_AGE_LIMIT_SEC = 63_072_000;

/** hstsOf is what an Ingress's annotations say of HSTS on its TLS hosts, only the fields set; the proxy's flags fill the rest. */
export function hstsOf(s: IngressSettings): HstsSpec | undefined {
  if (s.hsts === undefined && s.hstsMaxAgeSec === undefined && s.hstsIncludeSubDomains === undefined && s.hstsPreload === undefined) return undefined;
  return {
    ...(s.hsts !== undefined ? { enabled: s.hsts } : {}),
    ...(s.hstsIncludeSubDomains !== undefined ? { includeSubDomains: s.hstsIncludeSubDomains } : {}),
    ...(s.hstsMaxAgeSec !== undefined ? { maxAgeSec: s.hstsMaxAgeSec } : {}),
    ...(s.hstsPreload !== undefined ? { preload: s.hstsPreload } : {}),
  };
}

/** ClientAuth is how an Ingress's hosts ask clients for certificates (vane.dev/auth-tls-*). */
export interface ClientAuth {
  secret: string;
  /** on: a verified certificate is required; optional: verified if sent; optional_no_ca: sent, verified or not, passed on. */
  mode: 'on' | 'optional' | 'optional_no_ca';
  /** Most intermediate CAs between the client's certificate and the CA (nginx's ssl_verify_depth). */
  depth: number;
  passCertificate: boolean;
}

/** clientAuthOf derives an Ingress's client certificate authentication; undefined: none. */
export function clientAuthOf(s: IngressSettings): ClientAuth | undefined {
  if (s.authTlsSecret === undefined || s.authTlsVerifyClient === 'off') return undefined;
  return { secret: s.authTlsSecret, mode: s.authTlsVerifyClient ?? 'on', depth: s.authTlsVerifyDepth ?? 1, passCertificate: s.authTlsPassCertificate ?? false };
}

/**
 * BackendTls is how an Ingress's routes speak TLS to their backends, when its annotations
 * say so: any `vane.dev/backend-tls-*` annotation, or `backend-protocol: HTTPS`, means HTTPS.
 */
export interface BackendTls {
  secret?: string;
  serverName?: string;
  /** On by default whenever a CA can be had: the Secret's, or the system's when asked for. */
  verify: boolean;
}

/** backendTlsOf derives an Ingress's backend TLS from its settings; undefined: the Service port decides, unverified. */
export function backendTlsOf(s: IngressSettings): BackendTls | undefined {
  const any = s.backendTlsSecret !== undefined || s.backendTlsServerName !== undefined || s.backendTlsVerify !== undefined;
  if (s.backendProtocol !== 'HTTPS' && !any) return undefined;
  return {
    ...(s.backendTlsSecret !== undefined ? { secret: s.backendTlsSecret } : {}),
    ...(s.backendTlsServerName !== undefined ? { serverName: s.backendTlsServerName } : {}),
    verify: s.backendTlsVerify ?? s.backendTlsSecret !== undefined,
  };
}

const DNS_NAME = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$/;
const SECRET_NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

export const DEFAULT_TIMEOUTS: RouteTimeouts = { connectMs: 5_000, idleMs: 60_000, readMs: 60_000 };
export const DEFAULT_MAX_BODY_BYTES = 1024 ** 3;

type Parser = (value: string, s: IngressSettings) => string | null;

const bool = (set: (s: IngressSettings, v: boolean) => void): Parser => (value, s) => {
  if (value !== 'true' && value !== 'false') return `must be "true" or "false", got "${value}"`;
  set(s, value === 'true');
  return null;
};

const duration = (key: keyof RouteTimeouts, maxMs: number): Parser => (value, s) => {
  const ms = parseDurationMs(value);
  if (ms === null) return `must be a duration such as "5s" or "500ms", got "${value}"`;
  if (ms < 1 || ms > maxMs) return `must be between 1ms and ${maxMs / 1000}s, got "${value}"`;
  s.timeouts = { ...s.timeouts, [key]: ms };
  return null;
};

/** KNOWN maps each supported annotation (without prefix) to its parser. */
const KNOWN: Record<string, Parser> = {
  'use-regex': bool((s, v) => { s.useRegex = v; }),
  'ssl-redirect': bool((s, v) => { s.sslRedirect = v; }),
  'ssl-passthrough': bool((s, v) => { s.sslPassthrough = v; }),
  'rewrite-target': (value, s) => {
    if (!value.startsWith('/')) return `must be a path starting with "/", got "${value}"`;
    if (value.length > 1024) return 'must be at most 1024 characters';
    if (/[\s?#]/.test(value)) return 'must not contain whitespace, "?" or "#"';
    s.rewriteTarget = value;
    return null;
  },
  'load-balance': (value, s) => {
    if (value !== 'round-robin' && value !== 'least-request') return `must be "round-robin" or "least-request", got "${value}"`;
    s.loadBalance = value;
    return null;
  },
  'connect-timeout': duration('connectMs', 300_000),
  'read-timeout': duration('readMs', 3_600_000),
  'idle-timeout': duration('idleMs', 3_600_000),
  'backend-protocol': (value, s) => {
    const v = value.toUpperCase();
    if (v !== 'HTTP' && v !== 'HTTPS') return `must be "HTTP" or "HTTPS", got "${value}"`;
    s.backendProtocol = v;
    return null;
  },
  'backend-tls-secret': (value, s) => {
    if (value.includes('/')) return `must be the name of a Secret in the Ingress's namespace (other namespaces' Secrets are not read), got "${value}"`;
    if (!SECRET_NAME.test(value)) return `must be a Secret name, got "${value}"`;
    s.backendTlsSecret = value;
    return null;
  },
  'backend-tls-server-name': (value, s) => {
    const v = value.toLowerCase();
    if (!DNS_NAME.test(v)) return `must be a DNS name (sent as SNI and checked against the backend's certificate), got "${value}"`;
    s.backendTlsServerName = v;
    return null;
  },
  'backend-tls-verify': bool((s, v) => { s.backendTlsVerify = v; }),
  'auth-tls-secret': (value, s) => {
    if (value.includes('/')) return `must be the name of a Secret in the Ingress's namespace (other namespaces' Secrets are not read), got "${value}"`;
    if (!SECRET_NAME.test(value)) return `must be a Secret name, got "${value}"`;
    s.authTlsSecret = value;
    return null;
  },
  'auth-tls-verify-client': (value, s) => {
    if (value !== 'on' && value !== 'off' && value !== 'optional' && value !== 'optional_no_ca') return `must be "on", "off", "optional" or "optional_no_ca", got "${value}"`;
    s.authTlsVerifyClient = value;
    return null;
  },
  'auth-tls-verify-depth': (value, s) => {
    if (!/^\d{1,2}$/.test(value) || Number(value) < 1 || Number(value) > 10) return `must be a whole number from 1 to 10, got "${value}"`;
    s.authTlsVerifyDepth = Number(value);
    return null;
  },
  'auth-tls-pass-certificate-to-upstream': bool((s, v) => { s.authTlsPassCertificate = v; }),
  'hsts': bool((s, v) => { s.hsts = v; }),
  'hsts-max-age': (value, s) => {
    if (!/^\d{1,9}$/.test(value) || Number(value) > HSTS_MAX_AGE_LIMIT_SEC) return `must be whole seconds from 0 to ${HSTS_MAX_AGE_LIMIT_SEC} (two years), got "${value}"`;
    s.hstsMaxAgeSec = Number(value);
    return null;
  },
  'hsts-include-subdomains': bool((s, v) => { s.hstsIncludeSubDomains = v; }),
  'hsts-preload': bool((s, v) => { s.hstsPreload = v; }),
  'proxy-body-size': (value, s) => {
    const bytes = parseSizeBytes(value);
    if (bytes === null) return `must be a size such as "10m", "512k" or "0" (unlimited), got "${value}"`;
    if (bytes > 64 * 1024 ** 3) return 'must be at most 64g';
    s.maxBodyBytes = bytes;
    return null;
  },
};

export const KNOWN_ANNOTATIONS: readonly string[] = Object.keys(KNOWN).map((k) => PREFIX + k);

const NGINX = 'nginx.ingress.kubernetes.io/';
const NGINX_CANARY = ['canary', 'canary-by-header', 'canary-by-header-value', 'canary-by-header-pattern', 'canary-by-cookie', 'canary-weight', 'canary-weight-total'];

/**
 * isSnippet: annotations that would splice raw proxy configuration into a server — the
 * feature class behind ingress-nginx's 2025 admission RCE. Matched without regard to case
 * anywhere in the name, so `Server-Snippet` or `snippet-extra` cannot slip past as unknown.
 */
function isSnippet(key: string): boolean {
  const name = key.startsWith(PREFIX) ? key.slice(PREFIX.length) : key.startsWith(NGINX) ? key.slice(NGINX.length) : null;
  return name !== null && name.toLowerCase().includes('snippet');
}

/** editDistance is Levenshtein's, bounded: anything above limit is reported as limit + 1. */
function editDistance(a: string, b: string, limit: number): number {
  if (Math.abs(a.length - b.length) > limit) return limit + 1;
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    let best = i;
    for (let j = 1; j <= b.length; j++) {
      const v = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a.charCodeAt(i - 1) === b.charCodeAt(j - 1) ? 0 : 1));
      row.push(v);
      if (v < best) best = v;
    }
    if (best > limit) return limit + 1;
    prev = row;
  }
  return prev[b.length]!;
}

/** closest names the one candidate within two edits of text (a likely typo), or null. */
function closest(text: string, candidates: readonly string[]): string | null {
  if (text.length > 64) return null;
  let found: string | null = null;
  let bestDistance = 3;
  for (const c of candidates) {
    const d = editDistance(text, c, 2);
    if (d < bestDistance) { bestDistance = d; found = c; } else if (d === bestDistance) found = null;
  }
  return found;
}

export interface AnnotationProblem { key: string; message: string }

export interface AnnotationVerdict {
  settings: IngressSettings;
  errors: AnnotationProblem[];
  warnings: AnnotationProblem[];
}

/** readAnnotations parses every Vane annotation of an Ingress; it never throws. */
export function readAnnotations(annotations: Record<string, string> | undefined): AnnotationVerdict {
  const settings: IngressSettings = {
    useRegex: false, sslRedirect: true, sslPassthrough: false, loadBalance: 'round-robin',
    timeouts: DEFAULT_TIMEOUTS, maxBodyBytes: DEFAULT_MAX_BODY_BYTES,
  };
  const errors: AnnotationProblem[] = [];
  const warnings: AnnotationProblem[] = [];
  for (const key of Object.keys(annotations ?? {}).sort()) {
    const raw = annotations![key];
    const value = typeof raw === 'string' ? raw.trim() : '';
    if (isSnippet(key)) {
      errors.push({ key, message: 'configuration snippets are not supported: Vane never renders user input into proxy configuration' });
      continue;
    }
    if (key.startsWith(PREFIX)) {
      const name = key.slice(PREFIX.length);
      // Own properties only: `vane.dev/__proto__` or `vane.dev/constructor` must not reach Object.prototype.
      const parse = Object.hasOwn(KNOWN, name) ? KNOWN[name] : undefined;
      if (!parse) {
        const guess = closest(name, Object.keys(KNOWN));
        warnings.push({ key, message: `unknown Vane annotation; ${guess ? `did you mean ${PREFIX}${guess}? ` : ''}known ones are ${KNOWN_ANNOTATIONS.join(', ')}` });
        continue;
      }
      const problem = parse(value, settings);
      if (problem) errors.push({ key, message: problem });
      continue;
    }
    if (key.startsWith(NGINX)) {
      const name = key.slice(NGINX.length);
      const guess = NGINX_CANARY.includes(name) ? null : closest(name, NGINX_CANARY);
      if (!name.startsWith('canary') && !guess) continue;
      warnings.push({
        key,
        message: NGINX_CANARY.includes(name)
          ? 'ingress-nginx canary annotations are not read by Vane; declare a Canary (vane.dev/v1alpha1) instead'
          : `unknown canary annotation (misspelled?); ${guess ? `did you mean ${NGINX}${guess}? ` : ''}ingress-nginx knows ${NGINX_CANARY.join(', ')}, and Vane uses the Canary resource`,
      });
    }
  }
  if (settings.backendProtocol === 'HTTP') {
    for (const key of ['backend-tls-secret', 'backend-tls-server-name', 'backend-tls-verify']) {
      if (Object.hasOwn(annotations ?? {}, PREFIX + key)) errors.push({ key: PREFIX + key, message: `backend TLS needs HTTPS, but ${PREFIX}backend-protocol is "HTTP"` });
    }
  }
  if (settings.authTlsSecret === undefined) {
    for (const key of ['auth-tls-verify-client', 'auth-tls-verify-depth', 'auth-tls-pass-certificate-to-upstream']) {
      if (Object.hasOwn(annotations ?? {}, PREFIX + key)) errors.push({ key: PREFIX + key, message: `needs ${PREFIX}auth-tls-secret, the CA that verifies client certificates` });
    }
  }
  return { settings, errors, warnings };
}

export function annotationField(key: string): string {
  return `metadata.annotations["${key}"]`;
}
