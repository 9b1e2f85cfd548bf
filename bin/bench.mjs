#!/usr/bin/env node
// `npm run bench`: runs every benchmark in one run (Node/WebGPU ones on the Node adapter, the ingest one in
// Chromium), prints one table and writes bench/results.json with the adapter, the machine and every ratio.
import { register } from 'node:module';
import { register as registerTsx } from 'tsx/esm/api';

register(new URL('../src/cli/wgsl-loader.mjs', import.meta.url));
registerTsx();
process.env.XDG_RUNTIME_DIR ??= '/tmp';

const { runNodeBenchmarks, formatTable, machine, writeResults } = await import('../bench/run.ts');
const skipBrowser = process.argv.includes('--no-browser');

const node = await runNodeBenchmarks();
const rows = [...node.rows];
let browserAdapter = null;
if (!skipBrowser) {
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
await writeResults('bench/results.json', results);
console.log(`adapter: ${node.adapter}${browserAdapter ? `; browser: ${browserAdapter}` : ''}`);
console.log(formatTable(rows));
