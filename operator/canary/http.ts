/**
 * The canary controller's outbound HTTP: gating webhooks (POST, versioned JSON body) and
 * Prometheus instant queries (GET /api/v1/query). Neither ever throws: a webhook that
 * errs, times out or answers non-2xx has not approved; a query that errs is a failed check,
 * an empty result is no data. Redirects are not followed (a 3xx is not an approval).
 */
import type { Action, PrometheusResult, WebhookResult } from '../../core/index.ts';

const MAX_MESSAGE_BYTES = 512;
const MAX_PROMETHEUS_BYTES = 1 << 20;

export type WebhookCall = Extract<Action, { type: 'CallWebhook' }>;

/** readCapped reads at most `max` bytes of a body and drops the rest. */
async function readCapped(res: Response, max: number): Promise<{ text: string; truncated: boolean }> {
  const reader = res.body?.getReader();
  if (!reader) return { text: '', truncated: false };
  const chunks: Uint8Array[] = [];
  let size = 0;
  let truncated = false;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    size += value.length;
    if (size > max) { truncated = true; await reader.cancel(); break; }
  }
  return { text: Buffer.concat(chunks).subarray(0, max).toString('utf8'), truncated };
}

function deadline(timeoutMs: number, signal: AbortSignal | undefined): AbortSignal {
  const timeout = AbortSignal.timeout(timeoutMs);
  return signal ? AbortSignal.any([timeout, signal]) : timeout;
}

function why(err: unknown, timeoutMs: number): string {
  const e = err as { name?: string; message?: string; cause?: { code?: string; message?: string } };
  if (e.name === 'TimeoutError' || e.name === 'AbortError') return `no answer within ${timeoutMs / 1000}s`;
  return e.cause?.code ?? e.cause?.message ?? e.message ?? String(err);
}

/** callWebhook POSTs the action's body; approved means a 2xx answer within the timeout. */
export async function callWebhook(action: WebhookCall, signal?: AbortSignal): Promise<WebhookResult> {
  try {
    const res = await fetch(action.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'user-agent': 'vane-canary-controller' },
      body: JSON.stringify(action.body),
      redirect: 'manual',
      signal: deadline(action.timeoutMs, signal),
    });
    const { text } = await readCapped(res, MAX_MESSAGE_BYTES);
    const said = text.trim().replace(/\s+/g, ' ').slice(0, 200);
    const approved = res.status >= 200 && res.status < 300;
    return { key: action.key, approved, message: `HTTP ${res.status}${said ? `: ${said}` : ''}` };
  } catch (err) {
    return { key: action.key, approved: false, message: why(err, action.timeoutMs) };
  }
}

/** queryPrometheus runs an instant query at `timeMs`; its first sample is the value. */
export async function queryPrometheus(address: string, query: string, timeMs: number, timeoutMs: number, signal?: AbortSignal): Promise<PrometheusResult> {
  const url = new URL(address);
  // The address may carry a path prefix (a Prometheus behind a reverse proxy).
  url.pathname = `${url.pathname.replace(/\/$/, '')}/api/v1/query`;
  url.searchParams.set('query', query);
  url.searchParams.set('time', (timeMs / 1000).toFixed(3));
  try {
    const res = await fetch(url, { redirect: 'manual', signal: deadline(timeoutMs, signal), headers: { accept: 'application/json' } });
    const { text, truncated } = await readCapped(res, MAX_PROMETHEUS_BYTES);
    if (truncated) return { value: null, error: 'answer larger than 1 MiB' };
    let body: { status?: string; error?: string; data?: { resultType?: string; result?: unknown } };
    try { body = JSON.parse(text); } catch { return { value: null, error: `HTTP ${res.status}: not JSON` }; }
    if (body.status !== 'success') return { value: null, error: `HTTP ${res.status}: ${body.error ?? 'query failed'}`.slice(0, 512) };
    return sampleOf(body.data?.resultType, body.data?.result);
  } catch (err) {
    return { value: null, error: why(err, timeoutMs) };
  }
}

/** sampleOf reads the first value of a Prometheus result: vector or scalar; null when empty. */
export function sampleOf(resultType: unknown, result: unknown): PrometheusResult {
  let pair: unknown;
  if (resultType === 'scalar') pair = result;
  else if (resultType === 'vector') pair = Array.isArray(result) && result.length > 0 ? (result[0] as { value?: unknown }).value : undefined;
  else return { value: null, error: `result type ${String(resultType)}: the query must return an instant vector or a scalar` };
  if (pair === undefined) return { value: null };
  const raw = Array.isArray(pair) ? pair[1] : undefined;
  const value = typeof raw === 'string' ? Number(raw) : NaN;
  // NaN (0/0 of an idle rate) is no data, not a verdict.
  return Number.isFinite(value) ? { value } : { value: null };
}
