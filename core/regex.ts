/**
 * User regular expressions (regex paths, canary header patterns, rewrites) run only in RE2,
 * a linear-time engine: JavaScript's backtracking RegExp is never given user input. Size
 * limits bound both the pattern text and the compiled program.
 */
import { RE2JS } from 're2js';

export const MAX_PATTERN_LENGTH = 1024;
export const MAX_PROGRAM_SIZE = 4000;

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
    return { ok: false, message: `regular expression compiles to ${size} instructions; the limit is ${MAX_PROGRAM_SIZE}` };
  }
  return { ok: true, regex };
}

/** matchPrefixGroups matches a regex anchored at the start of input; returns the groups or null. */
export function matchPrefixGroups(regex: CompiledRegex, input: string): string[] | null {
  const m = regex.matcher(input);
  if (!m.lookingAt()) return null;
  const groups: string[] = [];
  for (let i = 0; i <= m.groupCount(); i++) groups.push(m.group(i) ?? '');
  return groups;
}

/** substituteGroups replaces `$0`…`$9` in template with the captured groups. */
export function substituteGroups(template: string, groups: readonly string[]): string {
  return template.replace(/\$(\d)/g, (_, d: string) => groups[Number(d)] ?? '');
}
