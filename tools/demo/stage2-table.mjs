#!/usr/bin/env node
// Measures the README's stage-2 demo table with the product's own pipeline: `node tools/demo/stage2-table.mjs`.
import { register } from 'node:module';
import { register as registerTsx } from 'tsx/esm/api';

register(new URL('../../src/cli/wgsl-loader.mjs', import.meta.url));
registerTsx();
process.env.XDG_RUNTIME_DIR ??= '/tmp';
const { main } = await import('./stage2-table.ts');
process.exitCode = await main(process.argv.slice(2));
