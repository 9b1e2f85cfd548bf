// Shared steps of the opt-in scale checks of the page (scale-ingest.mjs, scale-page.mjs): the 6.33 GB Mixtral-shaped
// checkpoint of bench/scale-checkpoint.ts, an app build of their own (so they need no e2e lock), a browser whose JS
// heap (CDP Runtime.getHeapUsage) and process RSS are sampled every 0.5 s, the page's ingest into IndexedDB, and a
// SHA-256 of files read back from the page in pieces.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { register } from 'tsx/esm/api';
import { openBrowser } from './browser.mjs';
import { summaryOf } from './fixtures.mjs';
import { buildApp, REPO, startPreview } from './serve.mjs';
export { opfsDigestsInPage } from './opfs-digests.mjs';

register();
const { ensureScaleCheckpoint, SCALE_DIR, scaleTensors } = await import('../bench/scale-checkpoint.ts');

export const mib = (x) => `${(x / 2 ** 20).toFixed(0)} MiB`;

/** Summed RSS (bytes) of this process's descendants: the browser and its renderer, GPU and utility processes. */
export function descendantsRss() {
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

/** The checkpoint (generated if missing) and the bytes of one decoder layer's weights, the bound the checks assert. */
export async function scaleCheckpoint() {
  const dir = join(REPO, SCALE_DIR);
  const ck = await ensureScaleCheckpoint(dir);
  const layerBytes = scaleTensors(ck.layers)[0].filter((t) => t.name.startsWith('model.layers.0.')).reduce((s, t) => s + t.byteLength, 0);
  return { dir, ck, layerBytes };
}

/**
 * Builds the app into `.bench-data/<name>-dist` (unless E2E_SKIP_BUILD=1), serves it, opens a browser (a fresh profile,
 * deleted on close) on the page and samples it. `initScript` runs in the page before its own scripts (a test-side stub).
 * `peak` is the whole run's; `step()` returns the peak since the previous `step()` (sampled once more first).
 */
export async function openScalePage(name, { initScript, initArg } = {}) {
  const dist = join(REPO, '.bench-data', `${name}-dist`);
  if (process.env.E2E_SKIP_BUILD !== '1') buildApp(dist);
  const server = await startPreview(dist);
  const b = await openBrowser();
  const peak = { heapUsed: 0, heapTotal: 0, rss: 0 };
  let stepPeak = { ...peak };
  let timer;
  const close = async () => {
    clearInterval(timer);
    await b.close().catch((e) => console.error(String(e)));
    server.stop();
  };
  try {
    if (initScript) await b.context.addInitScript(initScript, initArg);
    const cdp = await b.context.newCDPSession(b.page);
    const sample = async () => {
      const h = await cdp.send('Runtime.getHeapUsage').catch(() => null);
      const rss = descendantsRss();
      for (const p of [peak, stepPeak]) {
        if (h) [p.heapUsed, p.heapTotal] = [Math.max(p.heapUsed, h.usedSize), Math.max(p.heapTotal, h.totalSize)];
        p.rss = Math.max(p.rss, rss);
      }
    };
    await b.page.goto(`${server.base}/`);
    timer = setInterval(sample, 500);
    const step = async () => {
      await sample();
      const s = stepPeak;
      stepPeak = { heapUsed: 0, heapTotal: 0, rss: 0 };
      return s;
    };
    return { b, base: server.base, peak, sample, step, close };
  } catch (e) {
    await close();
    throw e;
  }
}

/** The page's ingest: the checkpoint picked with the file input, its summary, then *Store in browser* to the end. */
export async function ingestScale(page, dir) {
  const t0 = performance.now();
  await page.getByTestId('model-files').setInputFiles(readdirSync(dir).map((f) => join(dir, f)));
  await summaryOf(page, 'mixtral').waitFor({ timeout: 5 * 60_000 });
  const inspectMs = performance.now() - t0;
  // The ingest proper: the page copies every shard into IndexedDB in 8 MiB chunks.
  const t1 = performance.now();
  await page.getByTestId('store-button').click();
  await page.getByTestId('notice').filter({ hasText: 'is stored in this browser' }).waitFor({ timeout: 40 * 60_000 });
  return { inspectMs, storeMs: performance.now() - t1 };
}

