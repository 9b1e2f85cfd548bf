// The GPU device lost while work runs on it (a driver reset, the GPU out of memory): during calibration, during stage 2
// and during an export. The test destroys the page's GPUDevice from the test side (gpu-devices.mjs). Each time the
// page says the device was lost, in the panel that was running and in the banner; the loaded model stays; what was
// stored or recorded stays; Reconnect brings a device back and the work runs again (stage 2 resumes from the layer it
// recorded).
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { loseGpu } from './gpu-devices.mjs';
import { clearPicked, openDemo, openStudio, pickedFiles, PICKED, setNumber, setStage2, waitForSavedLayers, workJob } from './studio.mjs';

const LOST = /GPU device .* was lost/;
const opened = [];
after(async () => {
  for (const b of opened) await b.close();
});

async function studio() {
  const b = await openStudio();
  opened.push(b);
  return b;
}

/** The page reports the loss (adapter panel and banner) and keeps the demo model on screen. */
async function expectLost(page) {
  await page.locator('[data-testid="adapter-panel"][data-status="unavailable"]').waitFor({ timeout: 20_000 });
  assert.match(await page.getByTestId('error-banner').first().innerText(), LOST);
  assert.equal(await page.locator('[data-testid="model-summary"]').isVisible(), true, 'the loaded model stays');
}

async function reconnect(page) {
  await page.getByTestId('gpu-reconnect').click();
  await page.locator('[data-testid="adapter-panel"][data-status="ready"]').waitFor({ timeout: 20_000 });
}

test('GPU lost during calibration: the panel says so, the model stays, and after Reconnect calibration runs', { timeout: 180_000 }, async () => {
  const b = await studio();
  const page = b.page;
  await openDemo(page);
  await setNumber(page, 'calib-count', 8);
  await setNumber(page, 'calib-length', 128);
  await page.getByTestId('calib-run').click();
  await page.getByTestId('calib-progress-step').filter({ hasText: /layer 2 of/ }).waitFor({ timeout: 60_000 });
  assert.equal(await loseGpu(page), 1);
  await expectLost(page);
  const error = page.getByTestId('calib-error');
  await error.waitFor({ timeout: 20_000 });
  assert.match(await error.innerText(), LOST);
  assert.match(await page.getByTestId('eval-unavailable').innerText(), /device was lost: reconnect it/);
  assert.equal(await page.getByTestId('calib-progress').count(), 0, 'the run ended');
  assert.equal(await page.getByTestId('calib-result').count(), 0, 'no half-done statistics');

  await reconnect(page);
  await page.locator('[data-testid="eval-panel"][data-available="true"]').waitFor({ timeout: 20_000 });
  await page.getByTestId('calib-run').click();
  await page.getByTestId('calib-result').waitFor({ timeout: 120_000 });
  assert.equal(await page.getByTestId('calib-error').count(), 0, 'the next run clears the error');
  assert.deepEqual(b.consoleErrors, []);
});

test('GPU lost during stage 2: the recorded layers stay, and after Reconnect the run resumes from them', { timeout: 300_000 }, async () => {
  const b = await studio();
  const page = b.page;
  await openDemo(page);
  await setStage2(page);
  await page.getByTestId('stage2-run').click();
  await waitForSavedLayers(page, 1);
  assert.equal(await loseGpu(page), 1);
  await expectLost(page);
  const error = page.getByTestId('stage2-error');
  await error.waitFor({ timeout: 30_000 });
  assert.match(await error.innerText(), LOST);
  assert.match(await page.getByTestId('stage2-unavailable').innerText(), /device was lost: reconnect it/);

  const job = await workJob(page);
  const saved = job.layers.length;
  const total = job.about.layers;
  assert.ok(saved >= 1 && saved < total, `${saved} of ${total} layers recorded before the loss`);
  const notice = page.getByTestId('stage2-saved');
  await notice.waitFor({ timeout: 10_000 });
  assert.equal(await page.getByTestId('stage2-resume-from').innerText(), `resume stage 2 from layer ${saved + 1} of ${total}`);

  await reconnect(page);
  await page.locator('[data-testid="stage2-panel"][data-available="true"]').waitFor({ timeout: 20_000 });
  assert.equal((await workJob(page)).layers.length, saved, 'nothing recorded was lost');
  await page.getByTestId('stage2-run').click();
  await page.locator('[data-testid="stage2-result"][data-fresh="true"]').waitFor({ timeout: 180_000 });
  assert.equal(await page.getByTestId('stage2-result').getAttribute('data-resumed'), String(saved));
  assert.equal(await page.getByTestId('stage2-error').count(), 0);
  assert.equal((await workJob(page)).layers.length, total);
  assert.deepEqual(b.consoleErrors, []);
});

test('GPU lost during an export: the export needs no GPU and arrives whole; the page reports the loss and exports again after Reconnect', { timeout: 180_000 }, async () => {
  const b = await studio();
  const page = b.page;
  await openDemo(page);
  await setNumber(page, 'keep-input', 6);
  const btn = page.getByTestId('export-target').locator('[data-value="folder"]');
  await btn.click();
  assert.equal(await btn.getAttribute('aria-checked'), 'true');
  // Slow every read of the model's files (what the export reads shards through) so the loss lands mid-export.
  await page.evaluate(() => {
    const original = Blob.prototype.arrayBuffer;
    window.__restoreReads = () => (Blob.prototype.arrayBuffer = original);
    Blob.prototype.arrayBuffer = async function () {
      await new Promise((r) => setTimeout(r, 150));
      return original.call(this);
    };
  });
  await page.getByTestId('export-button').click();
  await page.locator('[data-testid="export-progress"][data-phase="export"]').waitFor({ timeout: 60_000 });
  assert.equal(await loseGpu(page), 1);
  assert.equal(await page.getByTestId('export-progress').count(), 1, 'the export was still running when the device went');
  await expectLost(page);
  const done = page.getByTestId('export-done');
  await done.waitFor({ timeout: 120_000 });
  await page.evaluate(() => window.__restoreReads());
  const first = await pickedFiles(page);
  const folders = Object.keys(first);
  assert.equal(folders.length, 1, `one export folder in ${PICKED}: ${folders}`);
  const files = first[folders[0]];
  assert.equal('EXPORT_INCOMPLETE' in files, false, 'the export finished');
  assert.equal(Object.keys(files).length, Number(await done.getAttribute('data-files')), 'every file the page counted is there');
  for (const f of ['config.json', 'model.safetensors.index.json', 'prune-report.json']) assert.ok(files[f]?.size > 0, `${f} written`);

  await reconnect(page);
  await clearPicked(page);
  // The notice of the first export stays until the next one starts: mark it, and wait for the next one's own notice.
  await page.evaluate(() => document.querySelector('[data-testid="export-done"]').setAttribute('data-seen', 'true'));
  await page.getByTestId('export-button').click();
  await page.locator('[data-testid="export-done"]:not([data-seen])').waitFor({ timeout: 60_000 });
  assert.deepEqual(await pickedFiles(page), first, 'the export after Reconnect has the same bytes');
  assert.deepEqual(b.consoleErrors, []);
});
