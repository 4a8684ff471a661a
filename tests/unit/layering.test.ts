/**
 * The layering of DESIGN.md and the one error root are enforced by eslint.config.js: each
 * rule, fed a file that breaks it, must fail the lint step — and the same file with what it
 * may do instead must pass.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { ESLint } from 'eslint';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const eslint = new ESLint({ cwd: ROOT });

/** lint returns the messages of `rule` for `source` as if it were the file at `path`. */
async function lint(path: string, source: string, rule = 'no-restricted-imports'): Promise<string[]> {
  const [result] = await eslint.lintText(source, { filePath: join(ROOT, path) });
  return (result?.messages ?? []).filter((m) => m.ruleId === rule).map((m) => m.message);
}

interface Case { file: string; breaks: string; allowed: string; says: RegExp }

const CASES: Case[] = [
  { file: 'core/x.ts', breaks: "import { a } from '../proxy/index.ts';", allowed: "import { a } from './compile.ts';", says: /core\/ imports no other part/ },
  { file: 'core/x.ts', breaks: "import { readFileSync } from 'node:fs';", allowed: "import { a } from './match.ts';", says: /core\/ is pure/ },
  { file: 'proxy/x.ts', breaks: "import { a } from '../operator/index.ts';", allowed: "import { a } from '../core/index.ts';", says: /proxy\/ never imports operator/ },
  { file: 'webhook/x.ts', breaks: "import { a } from '../proxy/index.ts';", allowed: "import { a } from '../core/index.ts';", says: /webhook\/ never imports proxy/ },
  { file: 'webhook/x.ts', breaks: "import { a } from '../operator/index.ts';", allowed: "import { a } from '../lib/log.ts';", says: /webhook\/ never imports proxy\/, operator/ },
  { file: 'operator/x.ts', breaks: "import { a } from '../webhook/index.ts';", allowed: "import { a } from '../lib/certs/index.ts';", says: /operator\/ never imports/ },
  { file: 'lib/x.ts', breaks: "import { a } from '../operator/index.ts';", allowed: "import { a } from '../core/index.ts';", says: /lib\/ knows no component/ },
  { file: 'lib/x.ts', breaks: "import { a } from '../devtools/echo.ts';", allowed: "import { a } from './log.ts';", says: /lib\/ knows no component/ },
  { file: 'devtools/x.ts', breaks: "import { a } from '../proxy/index.ts';", allowed: "import { a } from '../lib/certs/index.ts';", says: /devtools\/ builds on lib\/ and core\/ only/ },
  { file: 'cli/x.ts', breaks: "import { a } from '../proxy/exchange.ts';", allowed: "import { a } from '../proxy/index.ts';", says: /enter another part through its index\.ts/ },
  { file: 'operator/x.ts', breaks: "import { a } from '../core/compile.ts';", allowed: "import { a } from '../core/index.ts';", says: /enter another part through its index\.ts/ },
  { file: 'cli/x.ts', breaks: "import { a } from '../lib/certs/x509.ts';", allowed: "import { a } from '../lib/certs/index.ts';", says: /enter another part through its index\.ts/ },
];

for (const c of CASES) {
  test(`${c.file}: \`${c.breaks}\` fails the lint step; \`${c.allowed}\` passes`, async () => {
    const broken = await lint(c.file, `${c.breaks}\nexport const b = a;\n`);
    assert.ok(broken.some((m) => c.says.test(m)), `expected a message matching ${c.says}, got ${JSON.stringify(broken)}`);
    assert.deepEqual(await lint(c.file, `${c.allowed}\nexport const b = a;\n`), []);
  });
}

for (const file of ['operator/x.ts', 'proxy/x.ts', 'lib/x.ts', 'cli/x.ts', 'devtools/x.ts', 'tests/x.ts']) {
  test(`${file}: Object.assign(new Error(…), { code }) fails the lint step; a VaneError subclass passes`, async () => {
    for (const broken of [
      "export const e = Object.assign(new Error('refused'), { code: 'EREFUSED' });",
      "export const e = Object.assign(new RangeError('too big'), { code: 'ETOOBIG', limit: 1 });",
    ]) assert.match((await lint(file, broken, 'no-restricted-syntax')).join('\n'), /one error root: raise a VaneError subclass/, broken);
    assert.deepEqual(await lint(file, "import { VaneError } from '../core/index.ts';\nexport class RefusedError extends VaneError<'EREFUSED'> {}\nexport const e = new RefusedError('EREFUSED', 'refused');", 'no-restricted-syntax'), []);
  });
}
