// Expert pruning in the page: plan K on generated checkpoints, see the heatmap and the numbers follow the
// controls, export as one .zip download, check the files with `moe-prune inspect`, re-import
// the export; export into a picked folder (the origin-private file system stands in for the picker).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { exportZip } from './archive.mjs';
import { baseUrl, browserPerFile } from './browser.mjs';
import { ARTIFACTS, dropFolder, expected, loadFixture, REPO, summaryOf } from './fixtures.mjs';

const BASE = baseUrl();
const b = browserPerFile(async (b) => {
  // The folder picker is a native dialog no headless run can answer: the test stands in for the user by handing the
  // page an origin-private folder, and the product's own picker path (showDirectoryPicker) stays under test.
  // The picked folder is a folder of its own in the origin-private file system: the page keeps other things there.
  await b.page.addInitScript(() => {
    window.showDirectoryPicker = async () => (await navigator.storage.getDirectory()).getDirectoryHandle('picked', { create: true });
  });
  await b.page.goto(`${BASE}/`);
});

const panel = () => b.page.getByTestId('plan-panel');

async function loadForPlan(name) {
  await loadFixture(b.page, name);
  await b.page.locator('[data-testid="plan-panel"][data-ready="true"]').waitFor({ timeout: 20_000 });
}

/** Sets K with the number box and returns once the plan shows it. */
async function setKeep(k) {
  await b.page.getByTestId('keep-input').fill(String(k));
  await b.page.locator(`[data-testid="heatmap"][data-clusters="${k}"]`).waitFor({ timeout: 5_000 });
}

const attr = (testid, name) => b.page.getByTestId(testid).getAttribute(name);

/** Picks the export target; re-clicks if a layout shift swallowed the click (seen once under load). */
async function chooseTarget(value) {
  const btn = b.page.getByTestId('export-target').locator(`[data-value="${value}"]`);
  for (let i = 0; i < 3 && (await btn.getAttribute('aria-checked')) !== 'true'; i++) {
    if (i > 0) console.log(`note: export target "${value}" needed click ${i + 1}`);
    await btn.click();
    await b.page.waitForTimeout(100);
  }
  assert.equal(await btn.getAttribute('aria-checked'), 'true', `export target ${value} selected`);
}

/** Exports as one .zip download and unpacks it into `dir` (see archive.mjs); returns the file names it holds. */
async function exportDownloads(dir) {
  try {
    return (await exportZip(b.page, dir, { artifacts: ARTIFACTS })).names;
  } catch (e) {
    await b.page.screenshot({ path: join(ARTIFACTS, 'export-failure.png'), fullPage: true });
    throw e;
  }
}

function inspect(dir) {
  const r = spawnSync(process.execPath, [join(REPO, 'bin', 'moe-prune.mjs'), 'inspect', dir, '--json'], { cwd: REPO, encoding: 'utf8' });
  assert.equal(r.status, 0, `moe-prune inspect failed: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

test('mixtral: plan K, heatmap with clusters, instant numbers, constraint message, export as one .zip download, inspect, re-import', { timeout: 90_000 }, async () => {
  const exp = expected('mixtral');
  await loadForPlan('mixtral');
  const n = exp.num_experts;
  const layers = exp.moe_layers.length;
  // Default: half the experts (never fewer than top-k).
  const k0 = Math.max(exp.top_k, Math.ceil(n / 2));
  await b.page.locator(`[data-testid="heatmap"][data-clusters="${k0}"][data-n="${n}"]`).waitFor();
  assert.equal(await attr('plan-experts', 'data-after'), String(k0 * layers));

  // Numbers follow the controls at once (no I/O: the plan is re-clustered from cached distances).
  // Speed belongs to the bench; here: the cached distances are reused (same chip, nothing being prepared).
  const paramsBefore = Number(await attr('plan-params', 'data-after'));
  const distancesChip = await b.page.getByTestId('plan-device').innerText();
  await setKeep(n - 1);
  assert.equal(await b.page.getByTestId('plan-preparing').count(), 0, 'changing K prepares nothing again');
  assert.equal(await b.page.getByTestId('plan-device').innerText(), distancesChip, 'router distances were not recomputed');
  const paramsAfter = Number(await attr('plan-params', 'data-after'));
  assert.ok(paramsAfter > paramsBefore, `keeping more experts keeps more parameters (${paramsBefore} → ${paramsAfter})`);
  assert.equal(await attr('plan-experts', 'data-after'), String((n - 1) * layers));
  // n−1 kept of n: exactly one 2-member cluster outlined.
  assert.equal(await b.page.getByTestId('cluster-outline').count(), 1);

  // The control's range is the valid one: it starts at top-k, and a typed smaller K is held at top-k.
  assert.equal(await b.page.getByTestId('keep-slider').getAttribute('min'), String(exp.top_k));
  assert.equal(await b.page.getByTestId('keep-input').getAttribute('min'), String(exp.top_k));
  await b.page.getByTestId('keep-input').fill(String(exp.top_k - 1));
  await b.page.locator(`[data-testid="plan-experts"][data-after="${exp.top_k * layers}"]`).waitFor();
  assert.equal(await b.page.getByTestId('plan-error').count(), 0, 'no K below top-k can be chosen, so no error');

  const K = exp.top_k; // 2 of 4
  await setKeep(K);
  assert.equal(await b.page.getByTestId('cluster-outline').count() >= 1, true);
  const keptShown = (await attr('heatmap', 'data-kept')).split(',').map(Number);
  assert.equal(keptShown.length, K);

  // Hovering a cell names the pair and its distance.
  const hit = b.page.getByTestId('heatmap-hit');
  const box = await hit.boundingBox();
  await hit.hover({ position: { x: box.width * 0.9, y: box.height * 0.1 } });
  assert.match(await b.page.getByTestId('heatmap-tip').innerText(), /experts \d+ ↔ \d+: distance [\d.]+/);

  await panel().screenshot({ path: join(ARTIFACTS, 'plan-panel-mixtral.png') });

  const dir = join(ARTIFACTS, 'export-mixtral');
  const names = await exportDownloads(dir);
  for (const f of ['config.json', 'model.safetensors.index.json', 'tokenizer.json', 'README.md', 'prune-report.json', ...exp.shards]) assert.ok(names.includes(f), `${f} in the archive`);
  const summary = inspect(dir);
  assert.equal(summary.expertsPerLayer, K);
  assert.equal(summary.family, 'mixtral');
  const report = JSON.parse(readFileSync(join(dir, 'prune-report.json'), 'utf8'));
  // ≥3-member clusters get their representative from the weights at export; the page then shows the resolved plan.
  const keptAfter = (await attr('heatmap', 'data-kept')).split(',').map(Number);
  assert.deepEqual(report.keptExperts[String(exp.moe_layers[0])], keptAfter);
  assert.equal(report.params.after, Number(await attr('plan-params', 'data-after')), 'the page predicted the exported parameter count');

  // Re-import the export: the summary shows the reduced expert count.
  await dropFolder(b.page, 'mixtral-pruned', readdirSync(dir).map((f) => join(dir, f)));
  await b.page.locator('[data-testid="model-name"]', { hasText: 'mixtral-pruned' }).waitFor();
  await summaryOf(b.page, 'mixtral').waitFor();
  assert.equal(await b.page.getByTestId('summary-experts').innerText(), String(K));
  await b.page.locator(`[data-testid="heatmap"][data-n="${K}"]`).waitFor();
});

test('qwen3_moe fused: keep 4 of 8 with averaging, a global plan exported as a per-layer variant, use uniform, export, inspect', { timeout: 90_000 }, async () => {
  await b.page.goto(`${BASE}/`);
  const exp = expected('qwen3_moe-fused');
  await loadForPlan('qwen3_moe-fused');
  const n = exp.num_experts;
  await setKeep(n / 2);
  await b.page.getByTestId('reconstruct').selectOption('per-cluster-size');
  // κ = 3: 2-member clusters are averaged (dashed purple outline, diamond markers).
  const merged = await b.page.locator('.hm-outline-merged').count();
  const table = await b.page.getByTestId('layer-table').innerText();
  assert.equal(merged > 0, /\[\d+\+\d+\]/.test(table), 'merged outlines agree with the table');

  // Global target with an odd total over 2 layers: non-uniform. Stock export is refused with a clear message; a
  // per-layer variant can be exported once the user ticks it, and "use uniform" offers the nearest uniform plan.
  await b.page.getByTestId('plan-mode').locator('[data-value="global"]').click();
  await b.page.getByTestId('global-by').locator('[data-value="total"]').click();
  await b.page.getByTestId('target-total-input').fill(String(n + 1));
  const c = b.page.getByTestId('plan-constraint');
  await c.waitFor();
  assert.match(await c.innerText(), /keeps \d+–\d+ experts in different layers.*per-layer variant \(needs custom code\) or switch to uniform/s);
  assert.equal(await b.page.getByTestId('export-button').isDisabled(), true);
  assert.match(await b.page.getByTestId('export-blocked').innerText(), /Tick the per-layer variant/);
  await b.page.getByTestId('per-layer-variant').check();
  assert.equal(await b.page.getByTestId('export-button').isDisabled(), false);
  await panel().screenshot({ path: join(ARTIFACTS, 'plan-panel-global.png') });
  const variantDir = join(ARTIFACTS, 'export-qwen3_moe-fused-per-layer');
  const variantNames = await exportDownloads(variantDir);
  assert.ok(variantNames.includes('prune-report.json'));
  assert.match(await b.page.getByTestId('export-done').innerText(), /per-layer variant: needs custom code/);
  const variant = JSON.parse(readFileSync(join(variantDir, 'prune-report.json'), 'utf8'));
  assert.equal(variant.variant, 'per-layer');
  assert.equal(Object.values(variant.keptExperts).reduce((t, k) => t + k.length, 0), n + 1);
  assert.match(variant.loadableBy[0], /^custom code only/);
  const variantSummary = inspect(variantDir);
  assert.deepEqual(variantSummary.expertsByLayer, Object.fromEntries(Object.entries(variant.keptExperts).map(([l, k]) => [l, k.length])));
  assert.deepEqual(JSON.parse(readFileSync(join(variantDir, 'config.json'), 'utf8')).moe_prune_experts_per_layer, variantSummary.expertsByLayer);
  assert.match(readFileSync(join(variantDir, 'README.md'), 'utf8'), /Needs custom code/);

  await b.page.getByTestId('use-uniform').click();
  await b.page.getByTestId('plan-constraint').waitFor({ state: 'detached' });
  assert.equal(await b.page.getByTestId('plan-mode').locator('[data-value="uniform"]').getAttribute('aria-checked'), 'true');
  assert.equal(await b.page.getByTestId('keep-input').inputValue(), String(Math.round((n + 1) / 2)));
  await setKeep(n / 2);
  const dir = join(ARTIFACTS, 'export-qwen3_moe-fused');
  await exportDownloads(dir);
  const summary = inspect(dir);
  assert.equal(summary.expertsPerLayer, n / 2);
  assert.equal(summary.layout, 'fused');
  const report = JSON.parse(readFileSync(join(dir, 'prune-report.json'), 'utf8'));
  assert.equal(report.settings.reconstruct, 'per-cluster-size');
  for (const kept of Object.values(report.keptExperts)) assert.equal(kept.length, n / 2);
});

test('export into a picked folder: streamed, marker removed on commit, named <model>-pruned-K', { timeout: 90_000 }, async () => {
  await b.page.goto(`${BASE}/`);
  // An empty picked folder, whatever ran before.
  await b.page.evaluate(async () => (await navigator.storage.getDirectory()).removeEntry('picked', { recursive: true }).catch(() => undefined));
  await loadForPlan('mixtral');
  await setKeep(3);
  await chooseTarget('folder');
  await b.page.getByTestId('export-button').click();
  await b.page.getByTestId('export-done').waitFor({ timeout: 30_000 });
  const listing = await b.page.evaluate(async () => {
    const root = await (await navigator.storage.getDirectory()).getDirectoryHandle('picked', { create: true });
    const out = {};
    for await (const [name, h] of root.entries()) {
      if (h.kind !== 'directory') continue;
      out[name] = [];
      for await (const [f, fh] of h.entries()) out[name].push([f, fh.kind === 'file' ? (await fh.getFile()).size : -1]);
    }
    return out;
  });
  const folders = Object.keys(listing);
  assert.equal(folders.length, 1, `one export folder (${folders})`);
  assert.match(folders[0], /-pruned-3$/);
  const files = Object.fromEntries(listing[folders[0]]);
  assert.equal('EXPORT_INCOMPLETE' in files, false, 'the marker is gone after commit');
  for (const f of ['config.json', 'prune-report.json', 'README.md', 'model.safetensors.index.json']) assert.ok(files[f] > 0, `${f} written`);
  assert.deepEqual(b.consoleErrors, []);
  assert.deepEqual(b.foreignRequests(BASE), []);
});

test('a model stored in IndexedDB prunes from the store, and its export equals the CLI export byte for byte', { timeout: 90_000 }, async () => {
  const fixture = 'mixtral';
  await b.page.goto(`${BASE}/`);
  await loadFixture(b.page, fixture);
  await b.page.getByTestId('store-button').click();
  await b.page.locator('[data-testid="stored-model"][data-complete="true"]').first().waitFor({ timeout: 30_000 });
  // After a reload the dropped files are gone: everything below reads from IndexedDB.
  await b.page.reload();
  await b.page.getByTestId('stored-model').first().getByTestId('stored-open').click();
  await summaryOf(b.page, 'mixtral').waitFor();
  assert.equal(await b.page.getByTestId('mode').innerText(), 'Stored in this browser');
  await b.page.locator('[data-testid="plan-panel"][data-ready="true"]').waitFor({ timeout: 20_000 });
  await setKeep(3);
  const dir = join(ARTIFACTS, 'export-mixtral-from-store');
  await exportDownloads(dir);

  const cli = join(ARTIFACTS, 'cli-mixtral-k3');
  rmSync(cli, { recursive: true, force: true });
  const r = spawnSync(process.execPath, [join(REPO, 'bin', 'moe-prune.mjs'), 'prune', join(REPO, 'fixtures', 'models', fixture), '--out', cli, '--experts-per-layer', '3', '--cpu', '--quiet'], { cwd: REPO, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const shards = readdirSync(cli).filter((f) => f.endsWith('.safetensors') || f === 'config.json' || f === 'model.safetensors.index.json');
  assert.ok(shards.length >= 3);
  for (const f of shards) assert.ok(readFileSync(join(dir, f)).equals(readFileSync(join(cli, f))), `${f} differs between the page (from IndexedDB) and the CLI`);
  rmSync(cli, { recursive: true, force: true });
});

// Cancel mid-export. The test slows every read of the dropped files (Blob.arrayBuffer, what the page reads shards
// through) once the model is loaded, so the tiny fixtures export slowly enough to press Cancel between files; the
// product's export path is untouched.
const SLOW_READ_MS = 120;

async function slowReads(ms) {
  await b.page.evaluate((ms) => {
    const original = Blob.prototype.arrayBuffer;
    window.__restoreReads = () => (Blob.prototype.arrayBuffer = original);
    Blob.prototype.arrayBuffer = async function () {
      await new Promise((r) => setTimeout(r, ms));
      return original.call(this);
    };
  }, ms);
}

/** Every directory directly in the picked folder, with its files and their sizes. The export runs while we
 * list, so an entry may vanish between being listed and being read (a swap file, a folder removed on cancel): such
 * entries are left out rather than failing the listing. */
function opfsListing() {
  return b.page.evaluate(async () => {
    const gone = (e) => e instanceof DOMException && e.name === 'NotFoundError';
    const root = await (await navigator.storage.getDirectory()).getDirectoryHandle('picked', { create: true });
    const out = {};
    for await (const [name, h] of root.entries()) {
      if (h.kind !== 'directory') continue;
      const files = {};
      try {
        for await (const [f, fh] of h.entries()) {
          try {
            files[f] = fh.kind === 'file' ? (await fh.getFile()).size : -1;
          } catch (e) {
            if (!gone(e)) throw e;
          }
        }
      } catch (e) {
        if (!gone(e)) throw e;
        continue;
      }
      out[name] = files;
    }
    return out;
  });
}

/** Waits for the cancelled notice; the export left no success notice and no error banner. */
async function expectCancelled() {
  const stopped = b.page.getByTestId('export-stopped');
  await stopped.waitFor({ timeout: 10_000 });
  assert.match(await stopped.innerText(), /cancelled/i);
  assert.equal(await b.page.getByTestId('export-done').count(), 0, 'no success notice after cancel');
  assert.equal(await b.page.getByTestId('error-banner').count(), 0, 'cancel is not an error');
  assert.equal(await b.page.getByTestId('export-cancel').count(), 0, 'the cancel button goes with the export');
}

test('cancel a folder export mid-way: the <model>-pruned-K folder is removed, never left looking finished', { timeout: 90_000 }, async () => {
  await b.page.goto(`${BASE}/`);
  const pageErrors = b.consoleErrors.length;
  await loadForPlan('mixtral');
  const K = 2;
  await setKeep(K);
  await chooseTarget('folder');
  await slowReads(SLOW_READ_MS);
  const before = await opfsListing();
  const isNew = (name) => !(name in before);
  await b.page.getByTestId('export-button').click();

  // Wait until the first shard is written (an OPFS file shows its bytes once its writable is closed).
  let during;
  for (const t0 = Date.now(); Date.now() - t0 < 20_000; await b.page.waitForTimeout(50)) {
    during = Object.entries(await opfsListing()).find(([name, files]) => isNew(name) && Object.entries(files).some(([f, n]) => f.endsWith('.safetensors') && n > 0));
    if (during) break;
  }
  assert.ok(during, 'a shard was written before cancel');
  const [folder, files] = during;
  assert.match(folder, new RegExp(`-pruned-${K}$`));
  assert.ok('EXPORT_INCOMPLETE' in files, 'a folder being written carries the marker');
  assert.equal('prune-report.json' in files, false, 'no report before the end');
  assert.equal(await b.page.getByTestId('export-progress').getAttribute('data-phase'), 'export');
  await b.page.getByTestId('export-cancel').click();
  await expectCancelled();

  const after = await opfsListing();
  assert.deepEqual(Object.keys(after).filter(isNew), [], 'the cancelled export folder is gone');
  assert.equal(Object.keys(after).some((n) => new RegExp(`-pruned-${K}(-\\d+)?$`).test(n)), false, `no -pruned-${K} folder at all`);
  assert.deepEqual(b.consoleErrors.slice(pageErrors), []);
});

test('cancel a .zip download export mid-way: the download fails, holds no readable archive; the next export completes', { timeout: 90_000 }, async () => {
  await b.page.goto(`${BASE}/`);
  const pageErrors = b.consoleErrors.length;
  await loadForPlan('mixtral');
  await setKeep(3);
  await chooseTarget('downloads');
  await slowReads(SLOW_READ_MS);
  const downloads = [];
  const onDownload = (d) => downloads.push(d);
  b.page.on('download', onDownload);
  try {
    const started = b.page.waitForEvent('download', { timeout: 20_000 });
    await b.page.getByTestId('export-button').click();
    await started;
    await b.page.locator('[data-testid="export-progress"][data-phase="export"]').waitFor({ timeout: 20_000 });
    await b.page.getByTestId('export-cancel').click();
    await expectCancelled();
    assert.match(await b.page.getByTestId('export-stopped').innerText(), /marks the download as failed/);
    assert.equal(downloads.length, 1, 'one download');
    assert.notEqual(await downloads[0].failure(), null, 'the browser failed the cut-short download');
  } finally {
    b.page.off('download', onDownload);
    await b.page.evaluate(() => window.__restoreReads());
  }

  // The page is ready again: a second export runs to the end.
  const dir = join(ARTIFACTS, 'export-mixtral-after-cancel');
  const again = await exportDownloads(dir);
  assert.equal(again.filter((n) => n === 'prune-report.json').length, 1);
  assert.equal(inspect(dir).expertsPerLayer, 3);
  assert.equal(await b.page.getByTestId('export-stopped').count(), 0, 'the cancelled notice is cleared by the next export');
  assert.deepEqual(b.consoleErrors.slice(pageErrors), []);
});
