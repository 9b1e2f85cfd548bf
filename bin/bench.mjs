#!/usr/bin/env node
// `npm run bench`: runs every benchmark in one run (Node/WebGPU ones on the Node adapter, the ingest one in
// Chromium), prints one table and writes bench/results.json with the adapter, the machine and every ratio.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { register } from 'node:module';
import { fileURLToPath } from 'node:url';

// --scale adds the scale rows (bench/scale-bench.ts: a 6.33 GB checkpoint written once into .bench-data/, minutes
// per run); --scale-only runs just those; --scale-stage2 adds stage 2 at that size (about 12 minutes on SwiftShader).
const scaleOnly = process.argv.includes('--scale-only');
const withScale = scaleOnly || process.argv.includes('--scale');
const skipBrowser = process.argv.includes('--no-browser');

// What a fresh machine lacks is named (or installed) before any benchmark starts, as the tests do
// (scripts/ensure-test-deps.sh): the npm packages, and Debian's chromium, which the ingest benchmark drives and whose
// SwiftShader is the Node adapter on a machine without a GPU.
if (!existsSync(new URL('../node_modules/tsx/package.json', import.meta.url))) {
  console.error('npm run bench: the npm packages are not installed; run `npm ci` first');
  process.exit(1);
}
if (!skipBrowser) {
  const deps = spawnSync('bash', [fileURLToPath(new URL('../scripts/ensure-chromium.sh', import.meta.url))], { stdio: 'inherit' });
  if (deps.status !== 0) {
    console.error('npm run bench: needs Chromium (above); on a machine with a GPU driver, `npm run bench -- --no-browser` runs the Node benchmarks without it');
    process.exit(1);
  }
}

const { register: registerTsx } = await import('tsx/esm/api');
register(new URL('../src/cli/wgsl-loader.mjs', import.meta.url));
registerTsx();
process.env.XDG_RUNTIME_DIR ??= '/tmp';

const { runNodeBenchmarks, benchScale, formatTable, machine, writeResults } = await import('../bench/run.ts');

const node = scaleOnly ? { adapter: null, rows: [] } : await runNodeBenchmarks();
const rows = [...node.rows];
if (withScale) rows.push(...(await benchScale({ stageTwo: process.argv.includes('--scale-stage2') })));
let browserAdapter = null;
if (!skipBrowser && !scaleOnly) {
  const { benchIngest } = await import('../e2e/bench-ingest.mjs');
  const r = await benchIngest({ mb: 32, repeats: 2 });
  browserAdapter = r.adapter;
  rows.unshift({
    name: 'ingest: dropped file → IndexedDB weight store',
    value: r.ourMBps,
    unit: 'MB/s',
    ratio: r.ratio,
    ratioOf: 'raw IndexedDB puts of the same bytes in the same page (MB/s)',
    note: `${r.mb} MB random, ${Math.round(r.chunkSize / 2 ** 20)} MiB chunks`,
  });
}
const results = { date: new Date().toISOString(), adapter: node.adapter, browser: browserAdapter, machine: machine(), rows };
// A scale-only run keeps the other rows' last results beside it.
await writeResults(scaleOnly ? 'bench/results-scale.json' : 'bench/results.json', results);
if (node.adapter) console.log(`adapter: ${node.adapter}${browserAdapter ? `; browser: ${browserAdapter}` : ''}`);
console.log(formatTable(rows));
