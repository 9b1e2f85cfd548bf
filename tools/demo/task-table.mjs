#!/usr/bin/env node
// Measures the README's demo-task accuracy table with the product's own job: `node tools/demo/task-table.mjs`.
import { launch } from './launch.mjs';

await launch(new URL('./task-table.ts', import.meta.url).href);
