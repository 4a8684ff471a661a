/** A Problem is one finding about one object: an error drops its routes, a warning does not. */
export interface Problem {
  severity: 'error' | 'warning';
  /** Machine-readable reason, CamelCase, used as the condition reason and Event reason. */
  reason: string;
  /** Field path in the object (`spec.rules[0].host`), or '' for the object as a whole. */
  field: string;
  message: string;
}

/**
 * clip keeps maxChars characters of a longer text, its head and tail, around a count of
 * what was left out. Values come from users and can be megabytes; every surface that shows a problem
 * (a `vane validate` line, a log entry, an admission denial, a status condition, whose
 * message the API server caps at 32 KiB) would otherwise echo them whole.
 */
export function clip(text: string, maxChars = 160): string {
  if (text.length <= maxChars) return text;
  let head = Math.ceil(maxChars * 0.6);
  let tail = maxChars - head;
  // Never cut a surrogate pair in two: the halves are not characters.
  if (isHighSurrogate(text.charCodeAt(head - 1))) head--;
  if (isHighSurrogate(text.charCodeAt(text.length - tail - 1))) tail--;
  return `${text.slice(0, head)}…[${text.length - head - tail} characters clipped]…${text.slice(text.length - tail)}`;
}

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}

/** Bounds of a problem's text: room for the explanation, and a clipped value or two in it. */
const MAX_MESSAGE_CHARS = 1024;
const MAX_FIELD_CHARS = 256;

export function error(reason: string, field: string, message: string): Problem {
  return { severity: 'error', reason, field: clip(field, MAX_FIELD_CHARS), message: clip(message, MAX_MESSAGE_CHARS) };
}

export function warning(reason: string, field: string, message: string): Problem {
  return { severity: 'warning', reason, field: clip(field, MAX_FIELD_CHARS), message: clip(message, MAX_MESSAGE_CHARS) };
}

/** formatProblem renders `field.path: message`, the form every surface (CLI, webhook, status) shows. */
export function formatProblem(p: Problem): string {
  return p.field ? `${p.field}: ${p.message}` : p.message;
}

/** sortProblems orders findings so that output is deterministic: errors first, then by field. */
export function sortProblems(problems: Problem[]): Problem[] {
  return problems.sort((a, b) =>
    a.severity === b.severity
      ? (a.field < b.field ? -1 : a.field > b.field ? 1 : a.message < b.message ? -1 : a.message > b.message ? 1 : 0)
      : a.severity === 'error' ? -1 : 1);
}
