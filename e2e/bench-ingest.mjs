#!/usr/bin/env node
// Ingest benchmark in Chromium: our IndexedDB weight store vs plain IndexedDB puts of the same random bytes,
// same page, same run. `benchIngest()` builds and serves the app unless given `baseUrl`; as a script it prints
// the result as JSON: node e2e/bench-ingest.mjs [--mb 32] [--chunk-mib 8] [--repeats 2]
import { fileURLToPath } from 'node:url';
import { openBrowser } from './browser.mjs';
import { buildApp, startPreview } from './serve.mjs';

/**
 * @param {{ mb?: number, chunkMiB?: number, repeats?: number, baseUrl?: string, build?: boolean }} [opts]
 * @returns {Promise<{ ourMBps: number, rawMBps: number, ratio: number, mb: number, chunkSize: number, repeats: number, ourMs: number, rawMs: number, ourBytesMBps: number, adapter: string }>}
 */
export async function benchIngest(opts = {}) {
  const { mb = 32, chunkMiB = 8, repeats = 2, baseUrl, build = true } = opts;
  let server;
  let browser;
  try {
    let base = baseUrl;
    if (!base) {
      if (build) buildApp();
      server = await startPreview();
      base = server.base;
    }
    browser = await openBrowser();
    await browser.page.goto(`${base}/?test=1`);
    await browser.page.waitForFunction(() => window.__moePrune !== undefined);
    const result = await browser.page.evaluate(
      ([mb, chunk, repeats]) => window.__moePrune.benchIngest(mb, chunk, repeats),
      [mb, Math.round(chunkMiB * 1024 * 1024), repeats],
    );
    return { ...result, adapter: 'chromium ' + browser.context.browser()?.version() };
  } finally {
    await browser?.close();
    server?.stop();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const arg = (name, d) => {
    const i = process.argv.indexOf(name);
    return i >= 0 ? Number(process.argv[i + 1]) : d;
  };
  const r = await benchIngest({ mb: arg('--mb', 32), chunkMiB: arg('--chunk-mib', 8), repeats: arg('--repeats', 2) });
  console.log(JSON.stringify(r, null, 2));
  console.log(
    `ingest ${r.mb} MB: ours ${r.ourMBps.toFixed(1)} MB/s (bytes mode ${r.ourBytesMBps.toFixed(1)}), raw IndexedDB ${r.rawMBps.toFixed(1)} MB/s, ratio ${r.ratio.toFixed(2)}`,
  );
}
