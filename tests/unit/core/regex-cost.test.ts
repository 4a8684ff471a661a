/**
 * The CPU cost of one user regex match, measured (issue #18). RE2 is linear, but its NFA steps
 * every live thread on every character, so a match costs up to program size × input length:
 * `/(.*a){600}x` passed validation and cost 0.7 s on a 15 KB path. Here the worst shapes known
 * are grown to MAX_PROGRAM_SIZE and run on MAX_REGEX_INPUT characters, directly and through
 * match() as the proxy calls it, and one match must stay under BOUND_MS of CPU. The issue's
 * pattern on the same input is over the bound, so the bound tells the budget from what it refuses.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RE2JS } from 're2js';
import {
  compileUserRegex, matchesAnywhere, matchPrefixGroups, MAX_PROGRAM_SIZE, MAX_REGEX_INPUT, type CompiledRegex,
} from '../../../core/regex.ts';
import { ingress, service, canary } from '../../support/objects.ts';
import { cpuMs, decider, where } from './harness.ts';

/**
 * BOUND_MS is what one match may cost. The worst case measures 1.7–2 ms of CPU on an idle 2-core
 * cloud Xeon and up to 4 ms while other tests load both cores; the pattern on the same
 * input costs ~40 ms. 10 ms sits between: room for a slower, busier CI runner, and a pattern of
 * a few hundred instructions (or no input cap) is over it.
 */
const BOUND_MS = 10;

/** atBudget grows a shape's repetition count while it still compiles within MAX_PROGRAM_SIZE. */
function atBudget(shape: (n: number) => string): { pattern: string; regex: CompiledRegex } {
  let n = 1;
  while (compileUserRegex(shape(n + 1)).ok) n++;
  const compiled = compileUserRegex(shape(n));
  assert.ok(compiled.ok);
  return { pattern: shape(n), regex: compiled.regex };
}

const fill = (ch: string, length: number) => ch.repeat(length);

/** Shapes that keep the most NFA threads alive per character, with an input that feeds them. */
const WORST: { name: string; shape: (n: number) => string; input: string }[] = [
  { name: 'nested stars (the issue)', shape: (n) => `/(.*a){${n}}x`, input: '/' + fill('a', MAX_REGEX_INPUT - 1) },
  { name: 'non-capturing stars', shape: (n) => `/(?:.*a){${n}}x`, input: '/' + fill('a', MAX_REGEX_INPUT - 1) },
  { name: 'a chain of a*', shape: (n) => '/' + 'a*'.repeat(n) + 'x', input: '/' + fill('a', MAX_REGEX_INPUT - 1) },
  { name: 'one capture per repetition', shape: (n) => '/' + '(.*a)'.repeat(n) + 'x', input: '/' + fill('a', MAX_REGEX_INPUT - 1) },
  { name: 'Unicode class (binary search per step)', shape: (n) => `/(\\pL*\\pL){${n}}x`, input: '/' + fill('é', MAX_REGEX_INPUT - 1) },
  { name: 'case folding', shape: (n) => `(?i)/(.*a){${n}}x`, input: '/' + fill('A', MAX_REGEX_INPUT - 1) },
  { name: 'word boundaries', shape: (n) => `/(.*\\b.){${n}}x`, input: '/' + 'a b'.repeat(MAX_REGEX_INPUT).slice(0, MAX_REGEX_INPUT - 1) },
];

test(`the worst regex validation allows, on the longest input it runs on, costs under ${BOUND_MS} ms of CPU per match`, (t) => {
  let worst = { ms: 0, name: '' };
  for (const w of WORST) {
    const { pattern, regex } = atBudget(w.shape);
    assert.ok(regex.programSize() > MAX_PROGRAM_SIZE - 10, `${w.name}: ${pattern} is ${regex.programSize()} instructions, not at the budget`);
    assert.equal(w.input.length, MAX_REGEX_INPUT);
    // A path regex runs anchored with captures (NFA or backtracker), a header regex unanchored
    // without (DFA, which falls back to the NFA when its cache thrashes): both are measured.
    const path = cpuMs(() => matchPrefixGroups(regex, w.input));
    const header = cpuMs(() => matchesAnywhere(regex, w.input.slice(1) + 'y'));
    for (const [how, ms] of [['path', path], ['header', header]] as const) {
      assert.ok(ms < BOUND_MS, `${w.name} (${how}): ${pattern} on ${MAX_REGEX_INPUT} characters took ${ms.toFixed(2)} ms of CPU`);
      if (ms > worst.ms) worst = { ms, name: `${w.name} (${how}), ${regex.programSize()} instructions` };
    }
  }
  t.diagnostic(`worst case: ${worst.ms.toFixed(2)} ms of CPU, ${worst.name}, ${MAX_REGEX_INPUT} characters`);
});

test('the issue\'s /(.*a){600}x is refused by validation, and run anyway on the same input costs over the bound', () => {
  const refused = compileUserRegex('/(.*a){600}x');
  assert.ok(!refused.ok);
  assert.match(refused.message, /compiles to 3004 RE2 instructions; the limit is 100/);
  const unchecked = RE2JS.compile('/(.*a){600}x');
  const ms = cpuMs(() => unchecked.matcher('/' + fill('a', MAX_REGEX_INPUT - 1)).lookingAt(), 2);
  assert.ok(ms > BOUND_MS, `the bound would not tell: ${ms.toFixed(2)} ms`);
});

const svcs = ['re', 'static', 'stable', 'canary'].map((n) => service(n));
const worstPath = atBudget((n) => `/(.*a){${n}}x`).pattern;

test('match(): a path longer than MAX_REGEX_INPUT that a regex route would decide is 414, at no regex cost', () => {
  const route = decider([...svcs, ingress({
    name: 'r', annotations: { 'vane.dev/use-regex': 'true' }, rules: [{ host: 'r.test', paths: [
      { path: worstPath, pathType: 'ImplementationSpecific', service: 're' },
      { path: '/static/assets', pathType: 'Prefix', service: 'static' },
    ] }],
  })]);
  const atCap = '/' + fill('a', MAX_REGEX_INPUT - 1);
  const overCap = atCap + 'a';
  const longest = '/' + fill('a', 15_000);
  assert.equal(where(route({ host: 'r.test', target: atCap })), 'not-found', 'at the cap the regex runs');
  assert.equal(where(route({ host: 'r.test', target: atCap.slice(0, -1) + 'x' })), `re ${atCap.slice(0, -1)}x`);
  assert.equal(where(route({ host: 'r.test', target: overCap })), 'uri-too-long');
  const d = route({ host: 'r.test', target: longest + '?q=1' });
  assert.equal(d.result, 'uri-too-long');
  assert.equal(d.vhost, 'vhost/r.test');
  assert.match(d.reasons.join('\n'), /path is 15001 characters; Regex \/\(\.\*a\)\{\d+\}x \(Ingress default\/r\) runs on at most 1024: 414/);
  // A Prefix route longer than every regex decides on its own: no regex runs, nothing is refused.
  assert.equal(where(route({ host: 'r.test', target: '/static/assets' + longest })), `static /static/assets${longest}`);
  assert.equal(where(route({ host: 'other.test', target: longest })), 'not-found', 'hosts without regex routes are untouched');

  for (const [name, target] of [['at the cap', atCap], ['15 KB', longest]] as const) {
    const ms = cpuMs(() => route({ host: 'r.test', target }));
    assert.ok(ms < BOUND_MS, `${name}: match() took ${ms.toFixed(2)} ms of CPU`);
  }
});

test('match(): a canary header value longer than MAX_REGEX_INPUT does not match the pattern, at no regex cost', () => {
  const pattern = atBudget((n) => `(.*a){${n}}x`).pattern;
  const route = decider([...svcs,
    ingress({ name: 'shop', rules: [{ host: 'shop.test', paths: [{ path: '/', service: 'stable' }] }] }),
    canary('c', { ingressRef: { name: 'shop' }, service: 'stable', canaryService: { name: 'canary' }, traffic: { weight: 0, header: { name: 'X-User', regex: pattern } } }),
  ]);
  const side = (value: string) => route({ host: 'shop.test', target: '/', headers: { 'x-user': value }, bucket: 50 }).canary;
  const atCap = fill('a', MAX_REGEX_INPUT - 1) + 'x';
  assert.equal(side(atCap), 'canary', 'at the cap the pattern runs');
  assert.equal(side('a' + atCap), 'stable', 'over the cap it does not match: the weight decides');
  const hostile = fill('a', 15_000) + 'x';
  assert.equal(side(hostile), 'stable');
  const ms = cpuMs(() => side(hostile));
  assert.ok(ms < BOUND_MS, `a 15 KB header value took ${ms.toFixed(2)} ms of CPU`);
});
