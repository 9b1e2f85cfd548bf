#!/usr/bin/env node
// Ingest benchmark in Chromium: our IndexedDB weight store vs plain IndexedDB puts of the same random bytes,
// same page, same run. `benchIngest()` builds and serves the app unless given `baseUrl`; as a script it prints
// the result as JSON: node e2e/bench-ingest.mjs [--mb 32] [--chunk-mib 8] [--repeats 2]
// The benchmark is not part of the app: it is bundled here (bench/ingest-bench.ts with the store code it imports)
// and served to the page at a URL of the page's own origin through page.route, so the app bundle carries no bench
// and no switch to reach one.
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'vite';
import { openBrowser } from './browser.mjs';
import { buildApp, REPO, startPreview } from './serve.mjs';

const BENCH_PATH = '/__bench/ingest-bench.js';

/** bench/ingest-bench.ts as one ES module (its imports included), built in memory. */
async function bundleBench() {
  const result = await build({
    configFile: false,
    root: REPO,
    logLevel: 'warn',
    build: { write: false, target: 'es2022', minify: false, lib: { entry: join(REPO, 'bench', 'ingest-bench.ts'), formats: ['es'], fileName: 'ingest-bench' } },
  });
  const outputs = (Array.isArray(result) ? result : [result]).flatMap((r) => r.output);
  const chunks = outputs.filter((o) => o.type === 'chunk');
  if (chunks.length !== 1) throw new Error(`the ingest bench bundled into ${chunks.length} chunks, expected 1`);
  return chunks[0].code;
}

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
    const code = await bundleBench();
    browser = await openBrowser();
    await browser.page.route(`${base}${BENCH_PATH}`, (route) => route.fulfill({ status: 200, contentType: 'text/javascript', body: code }));
    await browser.page.goto(`${base}/`);
    const result = await browser.page.evaluate(
      async ([url, mb, chunk, repeats]) => (await import(url)).runIngestBench(mb, chunk, repeats),
      [`${base}${BENCH_PATH}`, mb, Math.round(chunkMiB * 1024 * 1024), repeats],
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
