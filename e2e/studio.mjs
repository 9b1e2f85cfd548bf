// Shared steps of the long-job and trade-off tests (resume, gpu-loss, tradeoff*): a browser whose folder picker answers with an
// origin-private folder and whose GPU devices the test can destroy, the demo model with stage-2 settings, what the page
// has recorded in its stage-2 work folder, and an export read back as file digests. Everything is stubbed from the
// test side; the product's own paths run.
import assert from 'node:assert/strict';
import { baseUrl, openBrowser } from './browser.mjs';
import { trackGpuDevices } from './gpu-devices.mjs';
import { opfsDigestsInPage } from './opfs-digests.mjs';

const BASE = baseUrl();
/** Where the stubbed folder picker points, inside the origin-private root. */
export const PICKED = 'picked-folder';

/** The trade-off CSV's header, exactly as issue 10 pins it. */
export const TRADEOFF_CSV_HEADER = 'expertsPerLayer,expertSparsity,unstructuredSparsity,totalSparsity,method,similarity,params,nonzeroParams,perplexity,measured';
/** The page's stage-2 work folder (src/ui/stage2-state.ts). */
export const WORK = 'moe-prune-stage2-work';

export async function openStudio() {
  const b = await openBrowser();
  await trackGpuDevices(b.context);
  await b.context.addInitScript((picked) => {
    window.showDirectoryPicker = async () => (await navigator.storage.getDirectory()).getDirectoryHandle(picked, { create: true });
  }, PICKED);
  return b;
}

/** Types a value into a number box and checks React took it. */
export async function setNumber(page, testid, v) {
  await page.getByTestId(testid).fill(String(v));
  assert.equal(await page.getByTestId(testid).inputValue(), String(v));
}

/** Opens the page, loads the demo model, and waits for the plan and stage-2 panels. */
export async function openDemo(page) {
  await page.goto(`${BASE}/`);
  await page.locator('[data-testid="demo-card"][data-available="true"]').waitFor({ timeout: 20_000 });
  await page.getByTestId('demo-button').click();
  await page.locator('[data-testid="plan-panel"][data-ready="true"]').waitFor({ timeout: 30_000 });
  await page.locator('[data-testid="stage2-panel"][data-available="true"]').waitFor({ timeout: 30_000 });
}

/** The stage-2 settings of these tests (set again after every reload: the controls start from their defaults). */
export const SETTINGS = { keep: 6, sparsity: 55, windows: 8, length: 96 };

export async function setStage2(page, s = SETTINGS) {
  await setNumber(page, 'stage2-keep-input', s.keep);
  await setNumber(page, 'stage2-sparsity-input', s.sparsity);
  await setNumber(page, 'calib-count', s.windows);
  await setNumber(page, 'calib-length', s.length);
  await page.locator('[data-testid="stage2-run"]:not([disabled])').waitFor({ timeout: 10_000 });
}

/** The stage-2 work folder's job.json as the page recorded it (null when there is none). */
export function workJob(page) {
  return page.evaluate(async (work) => {
    try {
      const dir = await (await navigator.storage.getDirectory()).getDirectoryHandle(work);
      const text = await (await (await dir.getFileHandle('job.json')).getFile()).text();
      // The first job.json shows as an empty file until its first write is closed.
      return text ? JSON.parse(text) : null;
    } catch (e) {
      if (e instanceof DOMException && e.name === 'NotFoundError') return null;
      throw e;
    }
  }, WORK);
}

/** Polls until the page has recorded at least `n` finished layers of the run in progress; returns how many. */
export async function waitForSavedLayers(page, n, timeout = 120_000) {
  for (const t0 = Date.now(); Date.now() - t0 < timeout; await page.waitForTimeout(25)) {
    const j = await workJob(page);
    if (j && j.layers.length >= n) return j.layers.length;
  }
  throw new Error(`the page recorded fewer than ${n} finished layers in ${timeout} ms`);
}

/** Exports into the picked folder and returns { folder, files: { name: { size, sha256 } } } read back from it. */
export async function exportToFolder(page) {
  const btn = page.getByTestId('export-target').locator('[data-value="folder"]');
  for (let i = 0; i < 3 && (await btn.getAttribute('aria-checked')) !== 'true'; i++) {
    await btn.click();
    await page.waitForTimeout(100);
  }
  assert.equal(await btn.getAttribute('aria-checked'), 'true');
  await page.getByTestId('export-button').click();
  await page.getByTestId('export-done').waitFor({ timeout: 60_000 });
  return pickedFiles(page);
}

/** The export folders inside the picked folder, each file with its size and SHA-256 (computed in the page). */
export function pickedFiles(page) {
  return page.evaluate(opfsDigestsInPage, PICKED);
}

/** Empties the picked folder (so the next export gets the same folder name). */
export function clearPicked(page) {
  return page.evaluate(async (picked) => {
    await (await navigator.storage.getDirectory()).removeEntry(picked, { recursive: true }).catch(() => undefined);
  }, PICKED);
}

/** Waits until the trade-off panel runs nothing (a measure or a sweep finished). */
export async function tradeoffIdle(page, timeout = 150_000) {
  await page.locator('[data-testid="tradeoff-panel"][data-running=""]').waitFor({ timeout });
}

/** "Measure this point" on the setting on screen (calibration runs by itself first); returns its perplexity. */
export async function measureOnScreen(page) {
  const current = page.getByTestId('tradeoff-current');
  assert.equal(await current.getAttribute('data-measured'), 'false');
  await page.getByTestId('tradeoff-point-measure').click();
  await page.getByTestId('sweep-progress').waitFor({ timeout: 10_000 });
  await tradeoffIdle(page);
  assert.equal(await page.getByTestId('tradeoff-error').count(), 0);
  assert.equal(await current.getAttribute('data-measured'), 'true');
  const perplexity = Number(await current.getAttribute('data-perplexity'));
  assert.ok(Number.isFinite(perplexity) && perplexity > 1, `perplexity ${perplexity}`);
  assert.equal(await page.getByTestId('tradeoff-chart').getAttribute('data-points'), '1');
  return perplexity;
}
