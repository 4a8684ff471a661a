/** A Problem is one finding about one object: an error drops its routes, a warning does not. */
export interface Problem {
  severity: 'error' | 'warning';
  /** Machine-readable reason, CamelCase, used as the condition reason and Event reason. */
  reason: string;
  /** Field path in the object (`spec.rules[0].host`), or '' for the object as a whole. */
  field: string;
  message: string;
}

export function error(reason: string, field: string, message: string): Problem {
  return { severity: 'error', reason, field, message };
}

export function warning(reason: string, field: string, message: string): Problem {
  return { severity: 'warning', reason, field, message };
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
