// Lint rules, including the layering of DESIGN.md, one rule per line of its table:
// - core/ is pure: no I/O module, no other part;
// - proxy/ never imports operator/ or webhook/; webhook/ never imports proxy/ or operator/;
//   operator/ never imports proxy/ or webhook/ (they meet only in core/ and on the wire);
// - lib/ is product I/O shared by the binaries and knows no component;
// - devtools/ (the local control plane, the real node, test backends) is used only by the
//   CLI's dev commands and the tests, never by a component;
// - outside a part, it is entered through its index.ts (lib/ through a module file or a
//   folder's index.ts).
// And one error root (core/errors.ts): an error Vane raises on purpose is a VaneError subclass
// with a stable code, never Object.assign(new Error(…), { code }).
// tests/unit/layering.test.ts checks that each rule fails on a violation.
import tseslint from 'typescript-eslint';

const ioModules = [
  'node:http', 'node:https', 'node:http2', 'node:net', 'node:tls', 'node:dgram', 'node:dns',
  'node:fs', 'node:fs/promises', 'node:child_process', 'node:cluster', 'node:worker_threads',
  'node:process', 'node:os', 'node:timers', 'node:timers/promises',
  'http', 'https', 'http2', 'net', 'tls', 'dgram', 'dns', 'fs', 'fs/promises', 'child_process',
  'cluster', 'worker_threads', 'process', 'os',
  'ws', 'undici', '@kubernetes/client-node', 'kubernetes-fluent-client', 'prom-client', 'pino',
];

const PARTS = ['core', 'proxy', 'operator', 'webhook', 'lib', 'devtools', 'cli'];

/** forbid(...parts): import patterns that reach into those parts. */
function forbid(...parts) {
  return parts.map((p) => `**/${p}/**`);
}

/** INDEX_ONLY: reaching past a part's index.ts (lib/: past a folder's index.ts) from outside it. */
const INDEX_ONLY = [
  ...['core', 'proxy', 'operator', 'webhook'].flatMap((p) => [`**/${p}/**`, `!**/${p}/index.ts`]),
  '**/lib/*/**', '!**/lib/*/index.ts',
  '**/devtools/*/**', '!**/devtools/*/index.ts',
];

/** layer(part, banned, message): one layering rule as an ESLint config block for part's files. */
function layer(part, banned, message) {
  const patterns = [{ group: INDEX_ONLY.filter((g) => !g.includes(`/${part}/`)), message: 'enter another part through its index.ts (DESIGN.md).' }];
  if (banned.length > 0) patterns.unshift({ group: forbid(...banned), message });
  return { files: [`${part}/**/*.ts`], rules: { 'no-restricted-imports': ['error', { patterns }] } };
}

export default tseslint.config(
  { ignores: ['node_modules/**', 'dist/**', '.vane/**', 'bench/results/**'] },
  ...tseslint.configs.recommended,
  {
    languageOptions: { parserOptions: { projectService: false } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-console': 'off',
      'no-restricted-syntax': ['error', {
        selector: "CallExpression[callee.object.name='Object'][callee.property.name='assign'][arguments.0.type='NewExpression'][arguments.0.callee.name=/Error$/]",
        message: 'one error root: raise a VaneError subclass with a stable code (core/errors.ts), not Object.assign(new Error(…), {…}).',
      }],
    },
  },
  layer('proxy', ['operator', 'webhook', 'cli', 'devtools'], 'proxy/ never imports operator/, webhook/, cli/ or devtools/ (DESIGN.md).'),
  layer('webhook', ['proxy', 'operator', 'cli', 'devtools'], 'webhook/ never imports proxy/, operator/, cli/ or devtools/ (DESIGN.md).'),
  layer('operator', ['proxy', 'webhook', 'cli', 'devtools'], 'operator/ never imports proxy/, webhook/, cli/ or devtools/ (DESIGN.md).'),
  layer('lib', ['proxy', 'operator', 'webhook', 'cli', 'devtools'], 'lib/ knows no component (DESIGN.md).'),
  layer('devtools', ['proxy', 'operator', 'webhook', 'cli'], 'devtools/ builds on lib/ and core/ only (DESIGN.md).'),
  layer('cli', [], ''),
  {
    files: ['core/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        paths: ioModules.map((name) => ({ name, message: 'core/ is pure: I/O belongs in an adapter (DESIGN.md).' })),
        patterns: [
          { group: forbid(...PARTS.filter((p) => p !== 'core')), message: 'core/ imports no other part (DESIGN.md).' },
        ],
      }],
      'no-restricted-globals': ['error',
        { name: 'process', message: 'core/ is pure: pass configuration in.' },
        { name: 'fetch', message: 'core/ is pure.' },
        { name: 'setTimeout', message: 'core/ is pure: time is passed in.' },
        { name: 'setInterval', message: 'core/ is pure: time is passed in.' },
      ],
      'no-restricted-properties': ['error',
        { object: 'Date', property: 'now', message: 'core/ is pure: time is passed in.' },
        { object: 'Math', property: 'random', message: 'core/ is pure: randomness is passed in.' },
      ],
    },
  },
);
