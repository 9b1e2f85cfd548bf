// The trade-off explorer on the generated mixtral checkpoint (4 experts, top-2): load it and measure the setting on screen
// (K = 2 of 4 at S = 50 %: expert pruning alone), run a 2 × 2 sweep with the built-in texts (calibration runs by itself),
// read the chart's points and the CSV (exact header, one row per measured point), take screenshots of the chart (both x
// axes), reload, reopen the session and see its points again; store the model in the browser (the session stays),
// reload and reopen it from the store; then a sweep is cancelled and keeps what it measured.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { baseUrl, browserPerFile } from './browser.mjs';
import { ARTIFACTS, loadFixture } from './fixtures.mjs';
import { measureOnScreen, TRADEOFF_CSV_HEADER, tradeoffIdle } from './studio.mjs';

const BASE = baseUrl();
const b = browserPerFile();

const attr = (testid, name) => b.page.getByTestId(testid).getAttribute(name);

async function setText(testid, v) {
  await b.page.getByTestId(testid).fill(v);
  assert.equal(await b.page.getByTestId(testid).inputValue(), v);
}

async function openModel() {
  await loadFixture(b.page, 'mixtral');
  await b.page.locator('[data-testid="plan-panel"][data-ready="true"]').waitFor({ timeout: 20_000 });
  await b.page.locator('[data-testid="tradeoff-panel"][data-available="true"]').waitFor({ timeout: 20_000 });
}

async function csvRows() {
  const [download] = await Promise.all([b.page.waitForEvent('download'), b.page.getByTestId('tradeoff-csv').click()]);
  const path = join(ARTIFACTS, download.suggestedFilename());
  await download.saveAs(path);
  return readFileSync(path, 'utf8').trimEnd().split('\n');
}

/** Saves a chart through its frame's button; the file's bytes. */
async function saveChart(name, kind) {
  const [download] = await Promise.all([b.page.waitForEvent('download'), b.page.getByTestId(`${name}-${kind}`).click()]);
  assert.match(download.suggestedFilename(), new RegExp(`\\.${kind}$`));
  const path = join(ARTIFACTS, `${name}-saved.${kind}`);
  await download.saveAs(path);
  return readFileSync(path);
}

/** Parses an SVG file in the page: parse errors, its <text>s, the recharts symbols and embedded images it holds. */
async function readSvg(bytes) {
  return b.page.evaluate((text) => {
    const doc = new DOMParser().parseFromString(text, 'image/svg+xml');
    return {
      root: doc.documentElement.nodeName,
      errors: doc.getElementsByTagName('parsererror').length,
      width: Number(doc.documentElement.getAttribute('width')),
      texts: [...doc.querySelectorAll('text')].map((t) => t.textContent ?? ''),
      symbols: doc.querySelectorAll('.recharts-scatter-symbol').length,
      circles: doc.querySelectorAll('.recharts-scatter-symbol circle').length,
      images: [...doc.querySelectorAll('image')].map((i) => (i.getAttribute('href') ?? '').slice(0, 22)),
    };
  }, bytes.toString('utf8'));
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

const idle = (timeout) => tradeoffIdle(b.page, timeout);

test('mixtral: measure a point, a 2 × 2 sweep, chart and CSV, reload and reopen the session', { timeout: 300_000 }, async () => {
  await b.page.goto(`${BASE}/`);
  await openModel();
  const chart = b.page.getByTestId('tradeoff-chart');
  assert.equal(await chart.getAttribute('data-points'), '0');
  assert.equal(await b.page.getByTestId('tradeoff-csv').isDisabled(), true);

  // The setting on screen: K = 2 of 4 removes half the experts, S = 50 %: expert pruning alone.
  const single = await measureOnScreen(b.page);
  assert.equal(await chart.getAttribute('data-series'), 'experts');
  // Measuring chose the representatives from the weights: moving K away and back shows the final ones (none marked
  // provisional) and the measured setting stays measured, not stale.
  const provisionalBefore = await b.page.getByTestId('layer-kept').evaluateAll((cs) => cs.map((c) => c.getAttribute('data-provisional')));
  await b.page.getByTestId('keep-input').fill('3');
  await b.page.locator('[data-testid="tradeoff-current"][data-measured="false"]').waitFor({ timeout: 10_000 });
  await b.page.getByTestId('keep-input').fill('2');
  await b.page.locator('[data-testid="tradeoff-current"][data-measured="true"]').waitFor({ timeout: 10_000 });
  assert.deepEqual(await b.page.getByTestId('layer-kept').evaluateAll((cs) => cs.map((c) => c.getAttribute('data-provisional'))), provisionalBefore.map(() => ''));
  assert.equal(await b.page.getByTestId('layer-table-provisional').count(), 0);
  assert.equal(Number(await attr('tradeoff-current', 'data-perplexity')), single);

  // Keyboard: the chart adds no tab stop, the x-axis choice is one radio group that arrow keys move, the experts-per-layer
  // slider starts at top-k, and the pickers' buttons show a focus ring.
  assert.equal(await b.page.locator('svg[tabindex], .recharts-wrapper [tabindex="0"]').count(), 0);
  const axis = b.page.getByTestId('tradeoff-axis');
  assert.deepEqual(await axis.locator('button').evaluateAll((bs) => bs.map((x) => x.tabIndex)), [0, -1]);
  await axis.locator('[data-value="params"]').focus();
  await b.page.keyboard.press('ArrowRight');
  assert.equal(await axis.locator('[aria-checked="true"]').getAttribute('data-value'), 'sparsity');
  assert.equal(await b.page.evaluate(() => document.activeElement?.getAttribute('data-value')), 'sparsity');
  await b.page.keyboard.press('ArrowLeft');
  assert.equal(await axis.locator('[aria-checked="true"]').getAttribute('data-value'), 'params');
  assert.equal(await b.page.getByTestId('keep-slider').getAttribute('min'), '2');
  await b.page.getByTestId('model-files').focus();
  await b.page.keyboard.press('Shift+Tab');
  await b.page.keyboard.press('Tab');
  const ring = await b.page.getByTestId('model-files').evaluate((i) => getComputedStyle(i.closest('label')).outlineStyle);
  assert.equal(ring, 'solid');

  // A 2 × 2 sweep: S ∈ {50, 75} % × experts take {0, 50} % of S, plus the original model. Nothing else to press.
  await setText('sweep-totals', '50, 75');
  await setText('sweep-shares', '0, 50');
  await b.page.getByTestId('sweep-expert-only').uncheck();
  await b.page.getByTestId('sweep-run').click();
  const progress = b.page.getByTestId('sweep-progress');
  await progress.waitFor({ timeout: 10_000 });
  await b.page.locator('[data-testid="sweep-progress"][data-total="5"]').waitFor({ timeout: 60_000 });
  await b.page.getByTestId('sweep-eta').filter({ hasText: /about \d+ (s|min) left/ }).waitFor({ timeout: 120_000 });
  await idle();
  assert.equal(await b.page.getByTestId('tradeoff-error').count(), 0);
  assert.equal(await attr('sweep-done', 'data-settings'), '5');
  assert.equal(await chart.getAttribute('data-points'), '6');
  assert.deepEqual((await chart.getAttribute('data-series')).split(',').sort(), ['experts', 'original', 'stun:0.5', 'unstructured']);
  // recharts draws one symbol per point of each series, and the ring of the setting on screen.
  assert.ok((await chart.locator('.recharts-scatter-symbol').count()) >= 7);

  const rows = await csvRows();
  assert.equal(rows[0], TRADEOFF_CSV_HEADER);
  assert.equal(rows.length, 1 + 6);
  const parsed = rows.slice(1).map((r) => r.split(','));
  for (const r of parsed) {
    assert.equal(r.length, 10);
    assert.equal(r[9], 'true');
    assert.ok(Number(r[8]) > 1);
    assert.ok(Number(r[7]) <= Number(r[6]));
  }
  const original = parsed.find((r) => r[4] === 'none' && r[0] === '4');
  assert.ok(original, 'the original model is a row');
  const stun = parsed.filter((r) => r[0] === '3' && r[4] === 'wanda');
  assert.equal(stun.length, 2, 'STUN at K = 3 for both S');
  assert.ok(parsed.some((r) => r[0] === '2' && r[4] === 'none' && Number(r[8]) === single), 'the measured point is a row');
  // Pruning costs quality: every pruned point's perplexity differs from the original's.
  for (const r of parsed) if (r !== original) assert.notEqual(r[8], original[8]);

  // Screenshots of the chart, both x axes (looked at by the test author).
  await chart.scrollIntoViewIfNeeded();
  await chart.screenshot({ path: join(ARTIFACTS, 'tradeoff-chart-params.png') });
  await b.page.locator('[data-testid="session"][data-points="6"]').waitFor({ timeout: 10_000 });
  const savedAt = await b.page.getByTestId('session').first().getAttribute('data-saved');
  await b.page.getByTestId('tradeoff-axis').locator('[data-value="sparsity"]').click();
  await chart.screenshot({ path: join(ARTIFACTS, 'tradeoff-chart-sparsity.png') });

  // The chart saved as SVG and PNG: the SVG parses, has the title, both axis labels and the legend, and one symbol per
  // point drawn on the page; the PNG is a PNG of the chart's size (drawn at 2×).
  const svg = await readSvg(await saveChart('tradeoff', 'svg'));
  assert.equal(svg.root, 'svg');
  assert.equal(svg.errors, 0);
  const drawn = await chart.locator('.recharts-scatter-symbol').count();
  assert.equal(svg.symbols, drawn);
  assert.ok(svg.circles >= drawn, `${svg.circles} circles for ${drawn} symbols`);
  const all = svg.texts.join('\n');
  for (const t of ['Size against quality', 'total sparsity over the scope (%)', 'held-out perplexity (lower is better)', 'original model', 'unstructured only', 'STUN: experts take 50 % of S', 'Filled: measured'])
    assert.ok(all.includes(t), `the SVG says ${JSON.stringify(t)}`);
  assert.ok(!all.includes('PNG') && !all.includes('Save:'), 'the save buttons are not drawn');
  const png = await saveChart('tradeoff', 'png');
  assert.deepEqual(png.subarray(0, 8), PNG_SIGNATURE);
  assert.equal(png.readUInt32BE(16), Math.ceil(svg.width * 2), 'PNG width is twice the chart width');
  assert.ok(png.length > 5_000, `PNG of ${png.length} bytes`);

  // The plan's heatmap (a canvas under SVG) saves with its cells as an embedded image and its non-negative scale.
  const hm = await readSvg(await saveChart('heatmap', 'svg'));
  assert.equal(hm.errors, 0);
  assert.deepEqual(hm.images, ['data:image/png;base64,']);
  assert.ok(hm.texts.some((t) => t.includes('similar ←')) && hm.texts.some((t) => t.includes('→ different')));
  assert.ok(Number(await b.page.getByTestId('legend-min').textContent()) >= 0);
  assert.deepEqual((await saveChart('heatmap', 'png')).subarray(0, 8), PNG_SIGNATURE);

  // The per-layer chart: experts kept per MoE layer from the plan; the reconstruction error measured on request (one
  // value per MoE layer), saved with its legend.
  const layerPanel = b.page.getByTestId('layer-chart-panel');
  assert.equal(await layerPanel.getAttribute('data-recon'), 'none');
  await b.page.getByTestId('recon-measure').click();
  await b.page.locator('[data-testid="layer-chart-panel"][data-recon="measured"]').waitFor({ timeout: 120_000 });
  assert.equal(await b.page.getByTestId('recon-error').count(), 0);
  const kept = (await attr('layer-chart', 'data-kept')).split(',');
  const errors = (await attr('layer-chart', 'data-errors')).split(',');
  assert.equal(errors.length, kept.length);
  kept.forEach((k, i) => {
    if (k === '') return;
    const e = Number(errors[i]);
    // ‖y − ŷ‖² / ‖y‖² is ≥ 0 and may pass 1 (a pruned block's output can be further from y than 0 is).
    assert.ok(errors[i] !== '' && Number.isFinite(e) && e >= 0, `layer ${i}: error ${errors[i]}`);
  });
  assert.ok(errors.some((e) => Number(e) > 0), 'removing experts changes the outputs of the blocks');
  const layerSvg = await readSvg(await saveChart('layer-chart', 'svg'));
  assert.equal(layerSvg.errors, 0);
  assert.ok(layerSvg.texts.some((t) => t.includes('reconstruction error')));
  await b.page.getByTestId('layer-chart').screenshot({ path: join(ARTIFACTS, 'layer-chart.png') });

  // The session is saved (the axis too); after a reload it is listed, and reopening it (then loading the same files)
  // brings the points back.
  await b.page.waitForFunction((t) => document.querySelector('[data-testid="session"]')?.getAttribute('data-saved') !== t, savedAt, { timeout: 10_000 });
  await b.page.reload();
  const session = b.page.locator('[data-testid="session"][data-name]').first();
  await session.waitFor({ timeout: 20_000 });
  assert.equal(await session.getAttribute('data-points'), '6');
  await session.getByTestId('session-open').click();
  await b.page.getByTestId('session-message').filter({ hasText: /Load .* to reopen/ }).waitFor();
  await openModel();
  await b.page.getByTestId('session-message').filter({ hasText: /Reopened the session/ }).waitFor({ timeout: 20_000 });
  assert.equal(await chart.getAttribute('data-points'), '6');
  assert.equal(await b.page.getByTestId('sweep-totals').inputValue(), '50, 75');
  assert.equal(await b.page.getByTestId('tradeoff-axis').locator('[aria-checked="true"]').getAttribute('data-value'), 'sparsity');
  assert.equal((await csvRows()).length, 7);

  // Storing the model in the browser keeps the session (same files, another FileSet); after a reload, Reopen opens the
  // model from the browser's store by itself and brings the points back.
  await b.page.getByTestId('store-button').click();
  await b.page.locator('[data-testid="stored-model"][data-complete="true"]').waitFor({ timeout: 60_000 });
  await b.page.locator('[data-testid="tradeoff-panel"][data-available="true"]').waitFor({ timeout: 20_000 });
  await b.page.locator('[data-testid="tradeoff-chart"][data-points="6"]').waitFor({ timeout: 20_000 });
  await b.page.reload();
  await b.page.locator('[data-testid="session"][data-points="6"]').getByTestId('session-open').click();
  await b.page.locator('[data-testid="tradeoff-chart"][data-points="6"]').waitFor({ timeout: 30_000 });
  assert.equal(await b.page.getByTestId('sweep-totals').inputValue(), '50, 75');

  // A cancelled sweep keeps the points it measured and says so.
  await setText('sweep-totals', '30, 60');
  await b.page.getByTestId('sweep-run').click();
  await b.page.locator('[data-testid="sweep-progress"][data-done="1"]').waitFor({ timeout: 120_000 });
  await b.page.getByTestId('sweep-cancel').click();
  await b.page.getByTestId('sweep-cancelled').waitFor({ timeout: 60_000 });
  await idle();
  assert.ok(Number(await chart.getAttribute('data-points')) >= 6);
  assert.deepEqual(b.foreignRequests(new URL(BASE).origin), []);
});
