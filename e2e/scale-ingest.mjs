#!/usr/bin/env node
// Opt-in scale check of the page (not part of `npm test`: minutes, and 6.33 GB of disk for the checkpoint plus as
// much again for the browser's IndexedDB copy): the Mixtral-shaped checkpoint of bench/scale-checkpoint.ts is picked
// with the page's file input and catalogued, then stored in IndexedDB (Store in browser), while the page's JS heap (CDP Runtime.getHeapUsage)
// and the RSS of every browser process are sampled. Fails if the heap peak reaches one decoder layer's weights.
//   node e2e/scale-ingest.mjs   (builds the app into .bench-data/scale-ingest-dist, apart from the e2e runner's build)
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { register } from 'tsx/esm/api';
import { openBrowser } from './browser.mjs';
import { summaryOf } from './fixtures.mjs';
import { buildApp, REPO, startPreview } from './serve.mjs';

register();
const { ensureScaleCheckpoint, SCALE_DIR, scaleTensors } = await import('../bench/scale-checkpoint.ts');

/** Summed RSS (bytes) of this process's descendants: the browser and its renderer, GPU and utility processes. */
function descendantsRss() {
  const parent = new Map();
  const rss = new Map();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      parent.set(Number(d), Number(fields[1]));
      rss.set(Number(d), Number(fields[21]) * 4096);
    } catch {
      // exited meanwhile
    }
  }
  let sum = 0;
  for (const [pid, r] of rss) {
    let p = parent.get(pid);
    while (p && p !== process.pid) p = parent.get(p);
    if (p === process.pid) sum += r;
  }
  return sum;
}

const dir = join(REPO, SCALE_DIR);
const ck = await ensureScaleCheckpoint(dir);
const layerBytes = scaleTensors(ck.layers)[0].filter((t) => t.name.startsWith('model.layers.0.')).reduce((s, t) => s + t.byteLength, 0);
const dist = join(REPO, '.bench-data', 'scale-ingest-dist');
if (process.env.E2E_SKIP_BUILD !== '1') buildApp(dist);
const server = await startPreview(dist);
const b = await openBrowser();
const peak = { heapUsed: 0, heapTotal: 0, rss: 0 };
let timer;
try {
  const cdp = await b.context.newCDPSession(b.page);
  await b.page.goto(`${server.base}/`);
  const sample = async () => {
    const h = await cdp.send('Runtime.getHeapUsage').catch(() => null);
    if (h) [peak.heapUsed, peak.heapTotal] = [Math.max(peak.heapUsed, h.usedSize), Math.max(peak.heapTotal, h.totalSize)];
    peak.rss = Math.max(peak.rss, descendantsRss());
  };
  timer = setInterval(sample, 500);
  const t0 = performance.now();
  await b.page.getByTestId('model-files').setInputFiles(readdirSync(dir).map((f) => join(dir, f)));
  await summaryOf(b.page, 'mixtral').waitFor({ timeout: 5 * 60_000 });
  const inspectMs = performance.now() - t0;
  await sample();
  const inspectPeak = { ...peak };
  // The ingest proper: the page copies every shard into IndexedDB in 8 MiB chunks.
  const t1 = performance.now();
  await b.page.getByTestId('store-button').click();
  await b.page.getByTestId('notice').filter({ hasText: 'is stored in this browser' }).waitFor({ timeout: 40 * 60_000 });
  const ms = performance.now() - t1;
  await sample();
  // The bytes are really in the browser's storage, not just announced.
  assert.equal(await b.page.getByTestId('mode').innerText(), 'Stored in this browser');
  const usage = await b.page.evaluate(() => navigator.storage.estimate().then((e) => e.usage ?? 0));
  assert.ok(usage >= ck.bytes, `the origin's storage holds ${usage} bytes, fewer than the checkpoint's ${ck.bytes}`);
  const mib = (x) => `${(x / 2 ** 20).toFixed(0)} MiB`;
  const result = {
    bytes: ck.bytes, storageUsage: usage, inspectSeconds: inspectMs / 1000, inspectPeak, seconds: ms / 1000, MBps: ck.bytes / 1e6 / (ms / 1000),
    peakHeapUsed: peak.heapUsed, peakHeapTotal: peak.heapTotal, peakBrowserRss: peak.rss, layerBytes,
  };
  console.log(JSON.stringify(result, null, 2));
  console.log(
    `page: summary in ${(inspectMs / 1000).toFixed(0)} s; ingest of ${(ck.bytes / 1e9).toFixed(2)} GB into IndexedDB: ${(ms / 1000).toFixed(0)} s (${result.MBps.toFixed(0)} MB/s); peak JS heap ${mib(peak.heapUsed)} used / ${mib(peak.heapTotal)}, ` +
      `browser processes' RSS ${mib(peak.rss)}; one decoder layer ${mib(layerBytes)}`,
  );
  assert.ok(peak.heapTotal < layerBytes, `the page's JS heap peaked at ${mib(peak.heapTotal)}, more than one layer's weights`);
  assert.deepEqual(b.consoleErrors, []);
} finally {
  clearInterval(timer);
  await b.close().catch((e) => console.error(String(e)));
  server.stop();
}
