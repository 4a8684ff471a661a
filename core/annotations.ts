/**
 * The Ingress annotations Vane understands (prefix `vane.dev/`), their parsing and limits.
 * One table drives validation, compile and the webhook, so they cannot disagree.
 */
import { parseDurationMs, parseSizeBytes } from './units.ts';
import type { RouteTimeouts } from './resources.ts';

export const PREFIX = 'vane.dev/';

export interface IngressSettings {
  useRegex: boolean;
  rewriteTarget?: string;
  sslRedirect: boolean;
  sslPassthrough: boolean;
  loadBalance: 'round-robin' | 'least-request';
  timeouts: RouteTimeouts;
  maxBodyBytes: number;
}

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
    if (/snippets?$/.test(key) && (key.startsWith(PREFIX) || key.startsWith(NGINX))) {
      errors.push({ key, message: 'configuration snippets are not supported: Vane never renders user input into proxy configuration' });
      continue;
    }
    if (key.startsWith(PREFIX)) {
      const parse = KNOWN[key.slice(PREFIX.length)];
      if (!parse) {
        warnings.push({ key, message: `unknown Vane annotation; known ones are ${KNOWN_ANNOTATIONS.join(', ')}` });
        continue;
      }
      const problem = parse(value, settings);
      if (problem) errors.push({ key, message: problem });
      continue;
    }
    if (key.startsWith(NGINX + 'canary')) {
      const name = key.slice(NGINX.length);
      warnings.push({
        key,
        message: NGINX_CANARY.includes(name)
          ? 'ingress-nginx canary annotations are not read by Vane; declare a Canary (vane.dev/v1alpha1) instead'
          : `unknown canary annotation (misspelled?); ingress-nginx knows ${NGINX_CANARY.join(', ')}, and Vane uses the Canary resource`,
      });
    }
  }
  return { settings, errors, warnings };
}

export function annotationField(key: string): string {
  return `metadata.annotations["${key}"]`;
}
