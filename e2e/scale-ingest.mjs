#!/usr/bin/env node
// Opt-in scale check of the page (not part of `npm test`: minutes, and 6.33 GB of disk for the checkpoint plus as
// much again for the browser's IndexedDB copy): the Mixtral-shaped checkpoint of bench/scale-checkpoint.ts is picked
// with the page's file input and catalogued, then stored in IndexedDB (Store in browser), while the page's JS heap (CDP Runtime.getHeapUsage)
// and the RSS of every browser process are sampled. Fails if the heap peak reaches one decoder layer's weights.
// Stage 1 and the export at that size: scale-page.mjs.
//   node e2e/scale-ingest.mjs   (builds the app into .bench-data/scale-ingest-dist, apart from the e2e runner's build)
import assert from 'node:assert/strict';
import { ingestScale, mib, openScalePage, scaleCheckpoint } from './scale.mjs';

const { ck, dir, layerBytes } = await scaleCheckpoint();
const { b, peak, step, close } = await openScalePage('scale-ingest');
try {
  const { inspectMs, storeMs: ms } = await ingestScale(b.page, dir);
  await step();
  // The bytes are really in the browser's storage, not just announced.
  assert.equal(await b.page.getByTestId('mode').innerText(), 'Stored in this browser');
  const usage = await b.page.evaluate(() => navigator.storage.estimate().then((e) => e.usage ?? 0));
  assert.ok(usage >= ck.bytes, `the origin's storage holds ${usage} bytes, fewer than the checkpoint's ${ck.bytes}`);
  const result = {
    bytes: ck.bytes, storageUsage: usage, inspectSeconds: inspectMs / 1000, seconds: ms / 1000, MBps: ck.bytes / 1e6 / (ms / 1000),
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
  await close();
}
