#!/usr/bin/env node
// A source checkout runs the TypeScript directly (even after `npm run build`, so a stale
// dist/ never shadows the sources); the packed package ships no .ts and runs the compiled
// JavaScript in dist/ (Node never strips types inside node_modules).
import { existsSync } from 'node:fs';

if (Number(process.versions.node.split('.')[0]) < 24) {
  console.error(`vane needs Node.js 24 (this is ${process.version} at ${process.execPath})`);
  process.exit(1);
}

const source = new URL('../cli/main.ts', import.meta.url);
const { main } = await import(existsSync(source) ? source.href : new URL('../dist/cli/main.js', import.meta.url).href);
await main(process.argv.slice(2));
