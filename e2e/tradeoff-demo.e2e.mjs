// The trade-off explorer on the demo model (fetched from the page's own origin): load it, measure the setting on screen,
// run a 2 × 2 sweep with a small calibration (S ∈ {40, 60} % × experts take {0, 50} % of S, plus the original model),
// read the chart's points and the CSV (exact header, one row per measured point), run the calibration pass (its statistics
// are kept with the session), take a screenshot of the chart, reload, reopen the session (loading the demo again when the
// page asks for it) and see its points again and its calibration statistics back without a new pass.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { baseUrl, browserPerFile } from './browser.mjs';
import { ARTIFACTS } from './fixtures.mjs';
import { measureOnScreen, openDemo, setNumber, TRADEOFF_CSV_HEADER, tradeoffIdle } from './studio.mjs';

const BASE = baseUrl();
const b = browserPerFile();

const attr = (testid, name) => b.page.getByTestId(testid).getAttribute(name);

const idle = (timeout) => tradeoffIdle(b.page, timeout);

async function csvRows() {
  const [download] = await Promise.all([b.page.waitForEvent('download'), b.page.getByTestId('tradeoff-csv').click()]);
  const path = join(ARTIFACTS, `demo-${download.suggestedFilename()}`);
  await download.saveAs(path);
  return readFileSync(path, 'utf8').trimEnd().split('\n');
}

/** A small calibration and held-out evaluation, so the sweep fits in a few minutes on a software GPU. */
async function smallTexts() {
  await setNumber(b.page, 'calib-count', 4);
  await setNumber(b.page, 'calib-length', 64);
  await setNumber(b.page, 'heldout-length', 64);
  await setNumber(b.page, 'heldout-windows', 4);
}

test('demo: measure a point, a 2 × 2 sweep, chart and CSV, reload and reopen the session', { timeout: 420_000 }, async () => {
  await openDemo(b.page);
  await b.page.locator('[data-testid="tradeoff-panel"][data-available="true"]').waitFor({ timeout: 30_000 });
  await smallTexts();
  const chart = b.page.getByTestId('tradeoff-chart');
  assert.equal(await chart.getAttribute('data-points'), '0');
  assert.equal(await b.page.getByTestId('tradeoff-csv').isDisabled(), true);

  // The setting on screen, measured (calibration runs by itself first).
  const single = await measureOnScreen(b.page);

  // The sweep: 2 totals × shares {0 (unstructured only), 50 %} and the original model.
  await b.page.getByTestId('sweep-totals').fill('40, 60');
  await b.page.getByTestId('sweep-shares').fill('0, 50');
  await b.page.getByTestId('sweep-expert-only').uncheck();
  await b.page.getByTestId('sweep-run').click();
  await b.page.locator('[data-testid="sweep-progress"][data-total="5"]').waitFor({ timeout: 60_000 });
  await idle(240_000);
  assert.equal(await b.page.getByTestId('tradeoff-error').count(), 0);
  assert.equal(await attr('sweep-done', 'data-settings'), '5');
  const points = Number(await chart.getAttribute('data-points'));
  assert.equal(points, 6);
  const series = (await chart.getAttribute('data-series')).split(',');
  for (const s of ['original', 'unstructured', 'stun:0.5']) assert.ok(series.includes(s), `series ${s} in ${series}`);
  assert.ok((await chart.locator('.recharts-scatter-symbol').count()) >= points);

  const rows = await csvRows();
  assert.equal(rows[0], TRADEOFF_CSV_HEADER);
  assert.equal(rows.length, 1 + points);
  const parsed = rows.slice(1).map((r) => r.split(','));
  for (const r of parsed) {
    assert.equal(r.length, 10);
    assert.equal(r[9], 'true');
    assert.ok(Number(r[8]) > 1, `perplexity ${r[8]}`);
    assert.ok(Number(r[7]) <= Number(r[6]));
  }
  const original = parsed.find((r) => r[4] === 'none' && Number(r[3]) === 0);
  assert.ok(original, 'the original model is a row');
  assert.ok(parsed.some((r) => Number(r[8]) === single), 'the single measured point is a row');
  const unstructured = parsed.filter((r) => Number(r[1]) === 0 && r[4] !== 'none');
  assert.equal(unstructured.length, 2, 'unstructured only at both S');
  // More sparsity costs quality on the demo model: S = 60 % unstructured is worse than the original.
  const u60 = unstructured.find((r) => Math.abs(Number(r[3]) - 0.6) < 0.02);
  assert.ok(u60 && Number(u60[8]) > Number(original[8]), `unstructured 60 % ${u60?.[8]} vs original ${original[8]}`);

  // The calibration panel's pass: its statistics are kept with the session (the built-in calibration text).
  await b.page.getByTestId('calib-run').click();
  const calib = b.page.getByTestId('calib-result');
  await calib.waitFor({ timeout: 60_000 });
  assert.equal(await b.page.getByTestId('calib-error').count(), 0);
  assert.equal(await calib.getAttribute('data-tokens'), String(4 * 64));
  await b.page.locator('[data-testid="session"][data-statistics="calibration.txt"]').waitFor({ timeout: 20_000 });

  // The chart as drawn (looked at by the test author).
  await chart.scrollIntoViewIfNeeded();
  await chart.screenshot({ path: join(ARTIFACTS, 'tradeoff-demo-chart.png') });

  // The session is saved with its points; after a reload it is listed and reopening it brings them back.
  await b.page.locator(`[data-testid="session"][data-points="${points}"]`).waitFor({ timeout: 10_000 });
  await b.page.waitForTimeout(600); // the last save is debounced
  await b.page.reload();
  const session = b.page.locator(`[data-testid="session"][data-points="${points}"]`).first();
  await session.waitFor({ timeout: 20_000 });
  await session.getByTestId('session-open').click();
  const asked = b.page.getByTestId('session-message').filter({ hasText: /Load .* to reopen/ });
  const reopened = b.page.getByTestId('session-message').filter({ hasText: /Reopened the session/ });
  await asked.or(reopened).waitFor({ timeout: 30_000 });
  if (await asked.count()) {
    await b.page.locator('[data-testid="demo-card"][data-available="true"]').waitFor({ timeout: 20_000 });
    await b.page.getByTestId('demo-button').click();
  }
  await reopened.waitFor({ timeout: 60_000 });
  // The statistics come back without a calibration pass: same text (SHA-256) and settings.
  await b.page.getByTestId('session-message').filter({ hasText: /Calibration statistics restored \(calibration\.txt, 4 windows\)/ }).waitFor({ timeout: 20_000 });
  await b.page.getByTestId('calib-result').waitFor({ timeout: 10_000 });
  assert.equal(await b.page.getByTestId('calib-result').getAttribute('data-tokens'), String(4 * 64));
  await b.page.locator(`[data-testid="tradeoff-chart"][data-points="${points}"]`).waitFor({ timeout: 20_000 });
  assert.equal(await b.page.getByTestId('sweep-totals').inputValue(), '40, 60');
  assert.equal((await csvRows()).length, 1 + points);
  await chart.scrollIntoViewIfNeeded();
  await chart.screenshot({ path: join(ARTIFACTS, 'tradeoff-demo-chart-reopened.png') });
  assert.deepEqual(b.foreignRequests(new URL(BASE).origin), []);
});
