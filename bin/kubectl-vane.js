#!/usr/bin/env node
// `kubectl vane`: kubectl runs any executable named kubectl-vane on PATH as this plugin.
// The published package runs compiled JavaScript; a source checkout runs the TypeScript.
import { existsSync } from 'node:fs';

const compiled = new URL('../dist/cli/kubectl-vane.js', import.meta.url);
const { main } = await import(existsSync(compiled) ? compiled.href : new URL('../cli/kubectl-vane.ts', import.meta.url).href);
process.exitCode = await main(process.argv.slice(2));
