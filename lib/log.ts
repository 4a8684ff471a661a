/**
 * Structured JSON logs (pino) on stderr, so stdout stays for a command's own output.
 * Object keys are logged as `namespace/name`; nothing that could hold key material is
 * ever passed to a logger (see DESIGN.md, "Secrets are their own resource type").
 */
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(component: string, level = process.env.VANE_LOG_LEVEL ?? 'info'): Logger {
  return pino({
    level,
    base: { component, pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    redact: { paths: ['*.privateKeyPem', '*.certificatePem', '*.token', 'token', 'authorization', '*.authorization'], censor: '[redacted]' },
  }, pino.destination({ fd: 2, sync: false }));
}
