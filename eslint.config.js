// Lint rules, including the layering rule of DESIGN.md: core/ is pure and imports
// nothing that does I/O and nothing from the adapters around it.
import tseslint from 'typescript-eslint';

const ioModules = [
  'node:http', 'node:https', 'node:http2', 'node:net', 'node:tls', 'node:dgram', 'node:dns',
  'node:fs', 'node:fs/promises', 'node:child_process', 'node:cluster', 'node:worker_threads',
  'node:process', 'node:os', 'node:timers', 'node:timers/promises',
  'http', 'https', 'http2', 'net', 'tls', 'dgram', 'dns', 'fs', 'fs/promises', 'child_process',
  'cluster', 'worker_threads', 'process', 'os',
  'ws', 'undici', '@kubernetes/client-node', 'kubernetes-fluent-client', 'prom-client', 'pino',
];

export default tseslint.config(
  { ignores: ['node_modules/**', 'dist/**', '.vane/**', 'bench/results/**'] },
  ...tseslint.configs.recommended,
  {
    languageOptions: { parserOptions: { projectService: false } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-console': 'off',
    },
  },
  {
    files: ['core/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        paths: ioModules.map((name) => ({ name, message: 'core/ is pure: I/O belongs in an adapter (DESIGN.md).' })),
        patterns: [
          { group: ['**/operator/**', '**/proxy/**', '**/webhook/**', '**/cli/**'], message: 'core/ must not depend on adapters.' },
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
