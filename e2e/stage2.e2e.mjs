// STUN stage 2 in the page: on the generated mixtral checkpoint, calibrate on a dropped text, set K and the total
// sparsity, see the split s_e / s_u (and the refusal of S < s_e), run Wanda, read the per-layer chart and the achieved
// numbers, measure perplexity with the masks applied on the fly, export; then the CLI repeats the page's run from its
// prune-report.json byte for byte, and the export is left for oracle/tests/test_browser_exports.py. On the demo model,
// a run is cancelled mid-way and nothing of it is kept.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { exportZip } from './archive.mjs';
import { baseUrl, browserPerFile } from './browser.mjs';
import { ARTIFACTS, expected, fixtureDir, loadFixture, REPO, SAMPLE_TEXT } from './fixtures.mjs';

const BASE = baseUrl();
const TEXT = SAMPLE_TEXT;
const TEXT_NAME = 'sentences.txt';

const b = browserPerFile();

const attr = (testid, name) => b.page.getByTestId(testid).getAttribute(name);
const checked = async (testid) => b.page.getByTestId(testid).locator('[aria-checked="true"]').getAttribute('data-value');
const rel = (a, x) => Math.abs(a - x) / Math.abs(x);

function cli(args) {
  const r = spawnSync(process.execPath, [join(REPO, 'bin', 'moe-prune.mjs'), ...args], { cwd: REPO, encoding: 'utf8' });
  assert.equal(r.status, 0, `moe-prune ${args[0]} failed: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

/** Types a value into a number box (React sees an input event). */
async function setNumber(testid, v) {
  await b.page.getByTestId(testid).fill(String(v));
  assert.equal(await b.page.getByTestId(testid).inputValue(), String(v));
}

/** Exports as one .zip download, unpacked into `dir`; returns the names of the files it holds. */
async function exportDownloads(dir) {
  return (await exportZip(b.page, dir, { artifacts: ARTIFACTS })).names;
}

test('mixtral: calibrate, K = 3 and S = 50 %, Wanda stage 2 with per-layer chart and perplexity, export; the CLI repeats it from the report byte for byte', { timeout: 180_000 }, async () => {
  const exp = expected('mixtral');
  await b.page.goto(`${BASE}/`);
  await loadFixture(b.page, 'mixtral');
  await b.page.locator('[data-testid="plan-panel"][data-ready="true"]').waitFor({ timeout: 20_000 });
  const panel = b.page.locator('[data-testid="stage2-panel"][data-available="true"]');
  await panel.waitFor({ timeout: 20_000 });

  // Defaults: the job's (UNSTRUCTURED_DEFAULTS, CALIBRATION_DEFAULTS).
  assert.equal(await checked('stage2-method'), 'wanda');
  assert.equal(await checked('stage2-nm'), 'none');
  assert.equal(await checked('stage2-scope'), 'experts');
  assert.equal(await checked('stage2-unrouted'), 'all-tokens');
  assert.equal(await b.page.getByTestId('stage2-sparsity-input').inputValue(), '50');
  assert.equal(await b.page.getByTestId('calib-count').inputValue(), '16');
  assert.equal(await b.page.getByTestId('calib-length').inputValue(), '128');
  assert.equal(await panel.getAttribute('data-state'), 'none');
  assert.equal(await attr('export-stage2', 'data-applied'), 'false');

  // OWL's M and λ appear only with OWL; OWL and a fixed N:M pattern exclude each other.
  assert.equal(await b.page.getByTestId('stage2-owl-m').count(), 0);
  await b.page.getByTestId('stage2-method').locator('[data-value="owl"]').click();
  await b.page.getByTestId('stage2-owl-m').waitFor();
  assert.equal(await b.page.getByTestId('stage2-owl-lambda').inputValue(), '0.08');
  assert.equal(await b.page.getByTestId('stage2-nm').locator('[data-value="2:4"]').isDisabled(), true);
  await b.page.getByTestId('stage2-method').locator('[data-value="wanda"]').click();
  await b.page.getByTestId('stage2-owl-m').waitFor({ state: 'detached' });
  // N:M fixes the ratio: the S slider is off and s_u is n/m.
  await b.page.getByTestId('stage2-nm').locator('[data-value="2:4"]').click();
  assert.equal(await b.page.getByTestId('stage2-sparsity-input').isDisabled(), true);
  assert.equal(Number(await attr('stage2-split', 'data-su')), 0.5);
  await b.page.getByTestId('stage2-nm').locator('[data-value="none"]').click();

  // Calibration on a dropped text: 4 windows of 16 tokens.
  const buffer = Buffer.from(TEXT);
  await b.page.getByTestId('calib-file').setInputFiles({ name: TEXT_NAME, mimeType: 'text/plain', buffer });
  await b.page.getByTestId('calib-text-name').filter({ hasText: TEXT_NAME }).waitFor();
  await setNumber('calib-count', 4);
  await setNumber('calib-length', 16);
  await b.page.getByTestId('calib-run').click();
  await b.page.getByTestId('calib-result').waitFor({ timeout: 30_000 });
  assert.match(await b.page.getByTestId('stage2-calib').innerText(), new RegExp(`${TEXT_NAME}.*4 × 16 tokens`));

  // The expert share is the plan's K: 3 of 4 experts removes a quarter of the routed-expert scope.
  await setNumber('stage2-keep-input', 3);
  assert.equal(await b.page.getByTestId('keep-input').inputValue(), '3', 'the plan panel follows');
  await b.page.locator('[data-testid="heatmap"][data-clusters="3"]').waitFor({ timeout: 5_000 });
  assert.equal(Number(await attr('stage2-split', 'data-se')), 0.25);
  // S below s_e is refused with the reason; S = 50 % leaves s_u = (0.5 − 0.25)/(1 − 0.25).
  await setNumber('stage2-sparsity-input', 20);
  const refusal = b.page.getByTestId('stage2-refusal');
  await refusal.waitFor();
  assert.match(await refusal.innerText(), /Expert pruning alone removes 25\.0 %.*at least 25 %/);
  assert.equal(await b.page.getByTestId('stage2-run').isDisabled(), true);
  await setNumber('stage2-sparsity-input', 50);
  await refusal.waitFor({ state: 'detached' });
  assert.ok(Math.abs(Number(await attr('stage2-split', 'data-su')) - 1 / 3) < 1e-12);
  assert.equal(await b.page.getByTestId('stage2-su').innerText(), '33.3 %');

  // Run: progress per layer, then the result.
  await b.page.getByTestId('stage2-run').click();
  const result = b.page.locator('[data-testid="stage2-result"][data-fresh="true"]');
  await result.waitFor({ timeout: 60_000 });
  assert.equal(await b.page.getByTestId('stage2-error').count(), 0);
  assert.equal(await b.page.getByTestId('stage2-progress').count(), 0);
  const achieved = Number(await attr('stage2-achieved', 'data-value'));
  assert.equal(Number(await attr('stage2-achieved', 'data-target')), 0.5);
  // ⌊in · s_u⌋ per row: 10 of 32 (gate/up) and 5 of 16 (down): 0.25 + 0.75 · 10/32.
  assert.equal(achieved, 0.25 + 0.75 * (10 / 32));
  assert.match(await b.page.getByTestId('stage2-achieved').innerText(), /48\.44 %/);
  const chart = b.page.getByTestId('stage2-chart');
  assert.equal(await chart.getAttribute('data-layers'), exp.moe_layers.join(','));
  assert.deepEqual((await chart.getAttribute('data-achieved')).split(',').map(Number), exp.moe_layers.map(() => achieved));
  await chart.locator('.recharts-bar-rectangle').first().waitFor();
  assert.equal(await chart.locator('.recharts-bar-rectangle').count(), 2 * exp.moe_layers.length, 'two bars per layer');
  assert.equal(await chart.locator('.recharts-legend-item').count(), 2);
  assert.match(await chart.innerText(), /decoder layer/);
  assert.match(await chart.innerText(), /sparsity \(% of parameters\)/);
  const routed = (await b.page.getByTestId('stage2-all-routed').count()) + (await b.page.getByTestId('stage2-unrouted-list').count());
  assert.equal(routed, 1, 'the panel says whether every expert got tokens, or names those without');
  assert.equal(await attr('export-stage2', 'data-applied'), 'true');

  // Perplexity with the masks applied on the fly, on the same text as held-out.
  await b.page.getByTestId('heldout-file').setInputFiles({ name: TEXT_NAME, mimeType: 'text/plain', buffer });
  await b.page.getByTestId('heldout-text-name').filter({ hasText: TEXT_NAME }).waitFor();
  await setNumber('heldout-length', 16);
  await setNumber('heldout-windows', 4);
  await b.page.getByTestId('stage2-ppl-measure').click();
  await b.page.locator('[data-testid="stage2-ppl-after"]:not([data-value=""])').waitFor({ timeout: 60_000 });
  assert.equal(await b.page.getByTestId('stage2-ppl-error').count(), 0);
  const pBefore = Number(await attr('stage2-ppl-before', 'data-value'));
  const pAfter = Number(await attr('stage2-ppl-after', 'data-value'));
  assert.ok(Number.isFinite(pBefore) && pBefore > 1 && Number.isFinite(pAfter) && pAfter > 1, `${pBefore} → ${pAfter}`);
  assert.equal(Number(await attr('stage2-ppl-before', 'data-tokens')), 4 * 15);
  assert.equal(await attr('export-stage2', 'data-perplexity'), 'true');
  await b.page.mouse.move(0, 0); // no chart tooltip in the screenshot
  await b.page.getByTestId('stage2-panel').screenshot({ path: join(ARTIFACTS, 'stage2-panel-mixtral.png') });

  // Export: the masked checkpoint, with the settings and the perplexity in the report.
  const dir = join(ARTIFACTS, 'export-stage2-mixtral');
  const names = await exportDownloads(dir);
  assert.ok(names.includes('prune-report.json'));
  assert.equal(await attr('export-done', 'data-stage2'), 'true');
  await b.page.screenshot({ path: join(ARTIFACTS, 'stage2-page-mixtral.png'), fullPage: true });
  const report = JSON.parse(readFileSync(join(dir, 'prune-report.json'), 'utf8'));
  assert.deepEqual(report.settings.unstructured, { method: 'wanda', sparsity: 0.5, nm: null, owl_m: 5, owl_lambda: 0.08, scope: 'experts', unrouted: 'all-tokens' });
  assert.equal(report.settings.keepPerLayer, 3);
  const sha = createHash('sha256').update(buffer).digest('hex');
  assert.deepEqual(report.settings.calibration, { text: TEXT_NAME, sha256: sha, sampling: 'first', seed: 0, requested_samples: 4, samples: 4, seq_len: 16, tokens: 64 });
  assert.equal(report.sparsity.achieved, achieved);
  assert.equal(report.perplexity.before, pBefore);
  assert.equal(report.perplexity.after, pAfter);
  assert.match(readFileSync(join(dir, 'README.md'), 'utf8'), /Measured perplexity/);

  // (a) The CLI repeats the page's run from its report (the calibration text beside it): identical shards.
  const repeat = join(ARTIFACTS, 'stage2-repeat');
  rmSync(repeat, { recursive: true, force: true });
  mkdirSync(repeat, { recursive: true });
  copyFileSync(join(dir, 'prune-report.json'), join(repeat, 'prune-report.json'));
  writeFileSync(join(repeat, TEXT_NAME), buffer);
  const out = join(repeat, 'cli');
  const held = join(repeat, 'heldout.txt');
  writeFileSync(held, buffer);
  const pr = cli(['prune', fixtureDir('mixtral'), '--out', out, '--from-report', join(repeat, 'prune-report.json'), '--eval-text', held, '--seq-len', '16', '--max-windows', '4', '--json']);
  const files = readdirSync(dir).filter((f) => f.endsWith('.safetensors') || f === 'config.json' || f === 'model.safetensors.index.json');
  assert.equal(files.filter((f) => f.endsWith('.safetensors')).length, exp.shards.length);
  for (const f of files) assert.ok(readFileSync(join(dir, f)).equals(readFileSync(join(out, f))), `${f} differs between the page and moe-prune --from-report`);
  assert.deepEqual(pr.report.sparsity.counts, report.sparsity.counts);
  assert.ok(rel(pAfter, pr.report.perplexity.after) < 1e-4, `page ${pAfter} vs CLI ${pr.report.perplexity.after}`);
  assert.ok(rel(pBefore, pr.report.perplexity.before) < 1e-4);
  rmSync(repeat, { recursive: true, force: true });

  // Changing a setting makes the result stale: the export refuses to write it until it runs again or is discarded.
  await setNumber('stage2-sparsity-input', 60);
  await b.page.locator('[data-testid="stage2-panel"][data-state="stale"]').waitFor();
  await b.page.getByTestId('stage2-stale').waitFor();
  assert.equal(await b.page.getByTestId('export-button').isDisabled(), true);
  await b.page.getByTestId('stage2-discard').click();
  await b.page.locator('[data-testid="stage2-panel"][data-state="none"]').waitFor();
  assert.equal(await b.page.getByTestId('export-button').isDisabled(), false);
  assert.equal(await attr('export-stage2', 'data-applied'), 'false');

  // OWL at S = 60 %: one ratio per layer, spread around s_u (their mean) by at most λ.
  await b.page.getByTestId('stage2-method').locator('[data-value="owl"]').click();
  const su = Number(await attr('stage2-split', 'data-su'));
  assert.ok(Math.abs(su - (0.6 - 0.25) / 0.75) < 1e-12);
  await b.page.getByTestId('stage2-run').click();
  await result.waitFor({ timeout: 60_000 });
  assert.equal(await b.page.getByTestId('stage2-error').count(), 0);
  const ratios = (await chart.getAttribute('data-ratios')).split(',').map(Number);
  assert.equal(ratios.length, exp.moe_layers.length);
  assert.ok(Math.abs(ratios.reduce((a, r) => a + r, 0) / ratios.length - su) < 1e-9, `OWL ratios ${ratios} average s_u ${su}`);
  for (const r of ratios) assert.ok(Math.abs(r - su) <= 0.08 + 1e-9, `ratio ${r} within λ of ${su}`);
  assert.match(await chart.innerText(), /OWL ratio applied to the rest/);
  await b.page.mouse.move(0, 0);
  await b.page.getByTestId('stage2-panel').screenshot({ path: join(ARTIFACTS, 'stage2-panel-owl-mixtral.png') });
  assert.deepEqual(b.consoleErrors, []);
  assert.deepEqual(b.foreignRequests(BASE), []);
});

test('demo model: a stage-2 run cancelled mid-way keeps nothing; the export stays the expert plan alone', { timeout: 180_000 }, async () => {
  await b.page.goto(`${BASE}/`);
  await b.page.locator('[data-testid="demo-card"][data-available="true"]').waitFor();
  await b.page.getByTestId('demo-button').click();
  await b.page.locator('[data-testid="plan-panel"][data-ready="true"]').waitFor({ timeout: 20_000 });
  await b.page.locator('[data-testid="stage2-panel"][data-available="true"]').waitFor({ timeout: 20_000 });
  // Unstructured only (all 8 experts kept), on the built-in sample, 8 windows of 128 tokens: a few seconds per layer
  // on a software GPU.
  await setNumber('stage2-keep-input', 8);
  assert.equal(Number(await attr('stage2-split', 'data-se')), 0);
  await setNumber('calib-count', 8);
  await setNumber('calib-length', 128);
  await b.page.getByTestId('stage2-run').click();
  const step = b.page.getByTestId('stage2-progress-step');
  await step.filter({ hasText: /wanda masks · layer 1 of 4/ }).waitFor({ timeout: 60_000 });
  assert.match(await b.page.getByTestId('stage2-progress-eta').innerText(), /about \d+ (s|min) left/);
  await b.page.getByTestId('stage2-progress').screenshot({ path: join(ARTIFACTS, 'stage2-progress-demo.png') });
  await b.page.getByTestId('stage2-progress-cancel').click();
  await b.page.getByTestId('stage2-progress').waitFor({ state: 'detached', timeout: 60_000 });
  await b.page.getByTestId('stage2-cancelled').waitFor();
  assert.equal(await b.page.getByTestId('stage2-error').count(), 0, 'cancel is not an error');
  assert.equal(await b.page.getByTestId('stage2-result').count(), 0, 'no half-done result');
  assert.equal(await attr('stage2-panel', 'data-state'), 'none');
  assert.equal(await attr('export-stage2', 'data-applied'), 'false');
  assert.equal(await b.page.getByTestId('error-banner').count(), 0);

  // One window of two tokens reaches at most 2 × top-2 of 8 experts per layer: the others are named, and with the
  // default policy scored on every token entering their layer.
  await setNumber('calib-count', 1);
  await setNumber('calib-length', 2);
  await b.page.getByTestId('stage2-run').click();
  await b.page.locator('[data-testid="stage2-result"][data-fresh="true"]').waitFor({ timeout: 60_000 });
  assert.equal(await b.page.getByTestId('stage2-cancelled').count(), 0, 'the cancelled notice goes with the next run');
  const list = b.page.getByTestId('stage2-unrouted-list');
  await list.waitFor();
  const names = await list.locator('li').allInnerTexts();
  assert.ok(names.length >= 4 * 4 && Number(await list.getAttribute('data-count')) === names.length, `${names.length} experts without tokens`);
  for (const n of names) assert.match(n, /^model\.layers\.[0-3]\.block_sparse_moe\.experts\.[0-7]$/);
  assert.match(await list.innerText(), /every token entering their layer/);
  assert.equal(Number(await attr('stage2-achieved', 'data-value')), 0.5, 'Wanda at 50 % of every row (in = 128, 512)');
  assert.deepEqual(b.consoleErrors, []);
});
