// Launches Debian's Chromium through playwright-core with WebGPU on (SwiftShader when there is no GPU),
// in a fresh profile directory, and records every request the page makes.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

// Without the background-networking flags Chromium keeps trying to reach hosts this machine cannot reach.
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--enable-unsafe-webgpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
  '--disable-dev-shm-usage',
];

/** `webgpu: false` leaves out --enable-unsafe-webgpu, which on a machine without a GPU means no adapter.
 * A fresh persistent profile (so IndexedDB survives page reloads within the test) that is deleted on close. */
export async function openBrowser({ webgpu = true } = {}) {
  const profile = mkdtempSync(join(tmpdir(), 'moe-prune-e2e-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: webgpu ? CHROMIUM_ARGS : CHROMIUM_ARGS.filter((a) => a !== '--enable-unsafe-webgpu'),
    viewport: { width: 1360, height: 900 },
    acceptDownloads: true,
  });
  const requests = [];
  context.on('request', (r) => requests.push(r.url()));
  const page = context.pages()[0] ?? (await context.newPage());
  const consoleErrors = [];
  const allowed = []; // errors a test provokes on purpose (allowErrors)
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
  // A console.error is a page error too: the product logs none on a path that works.
  page.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(`console.error: ${m.text()} (${m.location().url || 'page'})`);
  });
  return {
    context,
    page,
    requests,
    consoleErrors,
    /** Requests to any origin but `origin` (data: and blob: URLs are local and allowed). */
    foreignRequests(origin) {
      return requests.filter((u) => !u.startsWith('data:') && !u.startsWith('blob:') && new URL(u).origin !== origin);
    },
    /** Errors matching `re` are expected by the test that provokes them (a blocked inline script, say). */
    allowErrors(re) {
      allowed.push(re);
    },
    /** Closes the browser; fails (in the file's after hook) if the page threw or logged an error no test allowed. */
    async close() {
      await context.close().catch(() => {});
      rmSync(profile, { recursive: true, force: true });
      const unexpected = consoleErrors.filter((e) => !allowed.some((re) => re.test(e)));
      if (unexpected.length) throw new Error(`the page threw or logged errors:\n${unexpected.join('\n')}`);
    },
  };
}

/**
 * One browser for a whole test file: opened in the file's `before` hook (then `setup`, e.g. a stub for a native
 * dialog, runs on it), closed in its `after` hook, which fails on page errors no test allowed. The object returned
 * fills in when the browser opens, so tests use it as they would `openBrowser`'s.
 */
export function browserPerFile(setup) {
  const b = {};
  before(async () => {
    Object.assign(b, await openBrowser());
    await setup?.(b);
  });
  after(async () => {
    await b.close?.();
  });
  return b;
}

export function baseUrl() {
  const u = process.env.E2E_BASE_URL;
  if (!u) throw new Error('E2E_BASE_URL is not set: run the end-to-end tests through `node e2e/run.mjs`');
  return u.replace(/\/$/, '');
}
