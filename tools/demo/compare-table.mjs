#!/usr/bin/env node
// Measures the README's expert-choice comparison on the demo model: `node tools/demo/compare-table.mjs`.
import { register } from 'node:module';
import { register as registerTsx } from 'tsx/esm/api';

register(new URL('../../src/cli/wgsl-loader.mjs', import.meta.url));
registerTsx();
process.env.XDG_RUNTIME_DIR ??= '/tmp';
const { main } = await import('./compare-table.ts');
process.exitCode = await main();
