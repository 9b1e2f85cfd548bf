#!/usr/bin/env node
// Measures the README's stage-2 demo table with the product's own pipeline: `node tools/demo/stage2-table.mjs`.
import { launch } from './launch.mjs';

await launch(new URL('./stage2-table.ts', import.meta.url).href);
