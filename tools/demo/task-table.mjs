#!/usr/bin/env node
// Measures the README's demo-task accuracy table with the product's own job: `node tools/demo/task-table.mjs`.
import { register } from 'node:module';
import { register as registerTsx } from 'tsx/esm/api';

register(new URL('../../src/cli/wgsl-loader.mjs', import.meta.url));
registerTsx();
process.env.XDG_RUNTIME_DIR ??= '/tmp';
const { main } = await import('./task-table.ts');
process.exitCode = await main();
