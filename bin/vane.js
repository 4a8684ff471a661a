#!/usr/bin/env node
// The published package runs compiled JavaScript (Node never strips types in node_modules);
// a source checkout runs the TypeScript directly.
import { existsSync } from 'node:fs';

const compiled = new URL('../dist/cli/main.js', import.meta.url);
const { main } = await import(existsSync(compiled) ? compiled.href : new URL('../cli/main.ts', import.meta.url).href);
await main(process.argv.slice(2));
