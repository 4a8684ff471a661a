/** The `vane` command line: one composition root per subcommand, nothing wired elsewhere. */
import { Command, InvalidArgumentError } from 'commander';
import { validateFiles } from './validate.ts';
import { explain, formatExplain, UsageError } from './explain.ts';
import { registerOperator } from './operator.ts';
import { registerUp } from './up.ts';
import { registerProxy } from './proxy.ts';
import { registerWebhook } from './webhook.ts';
import { registerLocal } from './local.ts';
import { packageVersion } from '../lib/package-root.ts';

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function percent(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0 || n >= 100) throw new InvalidArgumentError('must be a number from 0 to 99.99');
  return n;
}

export function buildProgram(): Command {
  const program = new Command('vane')
    .description('Kubernetes ingress controller with progressive delivery built in')
    .version(packageVersion(), '-V, --version', 'print the version of Vane')
    .showHelpAfterError()
    .exitOverride((err) => { process.exitCode = err.exitCode; throw err; });

  program.command('validate')
    .description('check Ingress and Canary manifests; exits 1 on any error')
    .argument('<paths...>', 'manifest files or directories')
    .action(async (paths: string[]) => {
      const report = await validateFiles(paths);
      for (const line of report.lines) console.log(line);
      if (report.errorCount === 0) console.error(`ok: no errors${report.warningCount ? `, ${report.warningCount} warning(s)` : ''}`);
      process.exitCode = report.errorCount > 0 ? 1 : 0;
    });

  program.command('explain')
    .description('show which Ingress, rule and backend a request reaches, and why')
    .requiredOption('--from-files <path>', 'file or directory of manifests')
    .argument('<url>', 'request URL, e.g. http://shop.example.com/cart')
    .option('-H, --header <header>', 'request header "Name: value" (repeatable)', collect, [])
    .option('--cookie <cookie>', 'request cookie name=value (repeatable)', collect, [])
    .option('--bucket <n>', 'the client\'s canary bucket, 0–99.99 (default: random, as for a real request)', percent)
    .option('--json', 'print JSON')
    .action(async (url: string, opts: { fromFiles: string; header: string[]; cookie: string[]; bucket?: number; json?: boolean }) => {
      const out = await explain({ dir: opts.fromFiles, url, headers: opts.header, cookies: opts.cookie, ...(opts.bucket !== undefined ? { bucket: opts.bucket } : {}) });
      console.log(opts.json ? JSON.stringify(out, null, 2) : formatExplain(out));
    });

  registerProxy(program);
  registerWebhook(program);
  registerLocal(program);
  registerOperator(program);
  registerUp(program);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv, { from: 'user' });
  } catch (err) {
    const e = err as { code?: string; message?: string };
    if (typeof e.code === 'string' && e.code.startsWith('commander.')) return;
    if (err instanceof UsageError) { console.error(`vane: ${err.message}`); process.exitCode = 2; return; }
    console.error(`vane: ${e.message ?? String(err)}`);
    process.exitCode = 1;
  }
}

if (import.meta.main) await main(process.argv.slice(2));
