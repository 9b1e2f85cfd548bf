#!/usr/bin/env node
// Measures the README's expert-choice comparison on the demo model: `node tools/demo/compare-table.mjs`.
import { launch } from './launch.mjs';

await launch(new URL('./compare-table.ts', import.meta.url).href);
