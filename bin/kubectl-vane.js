#!/usr/bin/env node
// `kubectl vane`: kubectl runs any executable named kubectl-vane on PATH as this plugin.
// A source checkout runs the TypeScript directly (even after `npm run build`, so a stale
// dist/ never shadows the sources); the packed package ships no .ts and runs dist/.
import { existsSync } from 'node:fs';

if (Number(process.versions.node.split('.')[0]) < 24) {
  console.error(`vane needs Node.js 24 (this is ${process.version} at ${process.execPath})`);
  process.exit(1);
}

const source = new URL('../cli/kubectl-vane.ts', import.meta.url);
const { main } = await import(existsSync(source) ? source.href : new URL('../dist/cli/kubectl-vane.js', import.meta.url).href);
process.exitCode = await main(process.argv.slice(2));
