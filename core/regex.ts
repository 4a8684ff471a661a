/**
 * User regular expressions (regex paths, canary header patterns, rewrites) run only in RE2,
 * a linear-time engine: JavaScript's backtracking RegExp is never given user input.
 *
 * Linear is not cheap: RE2's NFA advances every live thread on every character, so one match
 * costs up to (program size × input length) steps, about 10–20 ns each in re2js. Both factors
 * are bounded — the program at validation (MAX_PROGRAM_SIZE, the same default Envoy enforces
 * as re2.max_program_size), the input at match time (MAX_REGEX_INPUT) — which bounds the CPU of
 * one match near 2 ms of CPU (tests/unit/core/regex-cost.test.ts measures the worst case).
 * Without the input bound, `/(.*a){600}x` on a 15 KB path cost 0.7 s of a proxy worker.
 */
import { RE2JS } from 're2js';

export const MAX_PATTERN_LENGTH = 1024;
/** MAX_PROGRAM_SIZE bounds the compiled RE2 instructions of one user regex. */
export const MAX_PROGRAM_SIZE = 100;
/**
 * MAX_HOST_PROGRAM_SIZE bounds the RE2 instructions of all the regex routes of one virtual
 * host together: a request may run every one of them (those longer than its best Prefix
 * match), so the per-match bound alone let each Ingress added to a host, whoever's, add ~2 ms
 * to every request. 1000 holds 35 patterns like `/api/v[0-9]+/users/([^/]+)/orders` (28) and
 * costs at most ~20 ms of CPU per request (tests/unit/core/regex-budget.test.ts).
 */
export const MAX_HOST_PROGRAM_SIZE = 1000;
/**
 * MAX_REGEX_INPUT bounds the characters a user regex is run on (a normalised path, a header
 * value). Longer paths on a regex route are refused (414) by match(); longer header values
 * do not match a canary pattern.
 */
export const MAX_REGEX_INPUT = 1024;

export type CompiledRegex = RE2JS;

export type RegexResult = { ok: true; regex: CompiledRegex } | { ok: false; message: string };

/** compileUserRegex compiles with RE2 semantics and limits; it never throws. */
export function compileUserRegex(pattern: string): RegexResult {
  if (pattern.length > MAX_PATTERN_LENGTH) {
    return { ok: false, message: `regular expression is ${pattern.length} characters; the limit is ${MAX_PATTERN_LENGTH}` };
  }
  let regex: RE2JS;
  try {
    regex = RE2JS.compile(pattern);
  } catch (err) {
    return { ok: false, message: `invalid regular expression (RE2 syntax): ${(err as Error).message}` };
  }
  const size = regex.programSize();
  if (size > MAX_PROGRAM_SIZE) {
    return {
      ok: false,
      message: `regular expression compiles to ${size} RE2 instructions; the limit is ${MAX_PROGRAM_SIZE} (a match costs up to instructions × input length; write repetitions like {1,63} as + or *)`,
    };
  }
  return { ok: true, regex };
}

/** regexInputFits says whether a user regex may run on input (MAX_REGEX_INPUT). */
export function regexInputFits(input: string): boolean {
  return input.length <= MAX_REGEX_INPUT;
}

/**
 * matchPrefixGroups matches a regex anchored at the start of input; returns the groups, or
 * null when it does not match or input is longer than MAX_REGEX_INPUT.
 */
export function matchPrefixGroups(regex: CompiledRegex, input: string): string[] | null {
  if (!regexInputFits(input)) return null;
  const m = regex.matcher(input);
  if (!m.lookingAt()) return null;
  const groups: string[] = [];
  for (let i = 0; i <= m.groupCount(); i++) groups.push(m.group(i) ?? '');
  return groups;
}

/** matchesAnywhere matches a regex unanchored; input longer than MAX_REGEX_INPUT never matches. */
export function matchesAnywhere(regex: CompiledRegex, input: string): boolean {
  return regexInputFits(input) && regex.test(input);
}

/** substituteGroups replaces `$0`…`$9` in template with the captured groups. */
export function substituteGroups(template: string, groups: readonly string[]): string {
  return template.replace(/\$(\d)/g, (_, d: string) => groups[Number(d)] ?? '');
}
