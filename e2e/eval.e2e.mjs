// Calibration and perplexity in the page: a generated checkpoint calibrated on a dropped text file (routing counts
// per expert add up), perplexity before/after an expert plan equal to what `moe-prune eval` / `prune --eval-text`
// print for the same windows, "after" marked stale when the plan changes; then the demo model on the built-in
// samples, with a cancelled run. After calibration, the plan can cluster by co-activation (same experts as
// `moe-prune prune --similarity coactivation --calib-text`) or the mixed distance.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { baseUrl, browserPerFile } from './browser.mjs';
import { ARTIFACTS, expected, fixtureDir, loadFixture, REPO, SAMPLE_TEXT } from './fixtures.mjs';

const BASE = baseUrl();
const TEXT = SAMPLE_TEXT;

const b = browserPerFile();

const attr = (testid, name) => b.page.getByTestId(testid).getAttribute(name);
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

test('mixtral fixture: calibration on a dropped text, perplexity before/after K = 3 equals the CLI', { timeout: 60_000 }, async () => {
  const exp = expected('mixtral');
  const dir = join(ARTIFACTS, 'eval-mixtral');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const textFile = join(dir, 'sentences.txt');
  writeFileSync(textFile, TEXT);

  await b.page.goto(`${BASE}/`);
  await loadFixture(b.page, 'mixtral');
  await b.page.locator('[data-testid="plan-panel"][data-ready="true"]').waitFor({ timeout: 20_000 });
  await b.page.locator('[data-testid="eval-panel"][data-available="true"]').waitFor({ timeout: 10_000 });
  // Co-activation similarity waits for a calibration run.
  assert.equal(await attr('similarity', 'data-calibrated'), 'false');
  assert.equal(await b.page.getByTestId('similarity').locator('[data-value="coactivation"]').isDisabled(), true);
  assert.equal(await b.page.getByTestId('similarity').locator('[aria-checked="true"]').getAttribute('data-value'), 'router');

  // Calibration: 4 × 16 tokens of the user's file.
  const buffer = Buffer.from(TEXT);
  await b.page.getByTestId('calib-file').setInputFiles({ name: 'sentences.txt', mimeType: 'text/plain', buffer });
  await b.page.getByTestId('calib-text-name').filter({ hasText: 'sentences.txt' }).waitFor();
  await setNumber('calib-count', 4);
  await setNumber('calib-length', 16);
  await b.page.getByTestId('calib-run').click();
  const result = b.page.getByTestId('calib-result');
  await result.waitFor({ timeout: 30_000 });
  assert.equal(await b.page.getByTestId('calib-error').count(), 0);

  const tokens = Number(await result.getAttribute('data-tokens'));
  const moeLayers = Number(await result.getAttribute('data-moe-layers'));
  const topK = Number(await result.getAttribute('data-top-k'));
  assert.equal(tokens, 4 * 16);
  assert.equal(moeLayers, exp.moe_layers.length);
  assert.equal(topK, exp.top_k);
  // Every token picks top-k distinct experts in every MoE layer.
  assert.equal(Number(await result.getAttribute('data-routed-total')), tokens * topK * moeLayers);
  assert.equal(Number((await b.page.getByTestId('calib-routed-total').innerText()).replace(/,/g, '')), tokens * topK * moeLayers);
  const perLayer = b.page.getByTestId('routed-layer');
  assert.equal(await perLayer.count(), moeLayers);
  for (let i = 0; i < moeLayers; i++) {
    const counts = (await perLayer.nth(i).getAttribute('data-counts')).split(',').map(Number);
    assert.equal(counts.length, exp.num_experts);
    assert.equal(
      counts.reduce((a, c) => a + c, 0),
      tokens * topK,
    );
  }
  // The chart shows the selected layer's counts, one bar per expert that got tokens.
  const chart = b.page.getByTestId('routed-chart');
  const shown = (await chart.getAttribute('data-counts')).split(',').map(Number);
  assert.equal(Number(await chart.getAttribute('data-sum')), tokens * topK);
  await chart.locator('.recharts-bar-rectangle').first().waitFor();
  assert.equal(await chart.locator('.recharts-bar-rectangle path').count(), shown.filter((c) => c > 0).length);
  assert.equal(Number(await attr('coactivation', 'data-n')), exp.num_experts);
  assert.ok(Number(await attr('coactivation', 'data-max')) > 0, 'some experts were chosen together');
  // The same counts as a table, opened from the keyboard: one row per expert, in expert order.
  await b.page.getByTestId('routed-chart-table-toggle').focus();
  await b.page.keyboard.press('Enter');
  assert.equal(await b.page.getByTestId('routed-chart-table-toggle').getAttribute('aria-pressed'), 'true');
  const routedRows = b.page.getByTestId('routed-table-grid').locator('tbody tr');
  assert.deepEqual(await routedRows.evaluateAll((rs) => rs.map((r) => Number(r.cells[1].textContent))), shown);
  assert.equal(await b.page.getByTestId('routed-chart-table').getAttribute('tabindex'), '0');

  // Perplexity: the same file as held-out text, 4 windows of 16, before and after keeping 3 of 4 experts.
  await b.page.getByTestId('heldout-file').setInputFiles({ name: 'sentences.txt', mimeType: 'text/plain', buffer });
  await b.page.getByTestId('heldout-text-name').filter({ hasText: 'sentences.txt' }).waitFor();
  await setNumber('heldout-length', 16);
  await setNumber('heldout-windows', 4);
  await b.page.getByTestId('keep-input').fill('3');
  await b.page.locator('[data-testid="heatmap"][data-clusters="3"]').waitFor({ timeout: 5_000 });
  // The heatmap as a table: n × n numbers in the picture's order, none negative, '—' on the diagonal, each row's role.
  await b.page.getByTestId('heatmap-table-toggle').click();
  const hmCells = await b.page.getByTestId('heatmap-table-grid').evaluate((t) => [...t.tBodies[0].rows].map((r) => [...r.cells].map((c) => c.textContent)));
  assert.equal(hmCells.length, exp.num_experts);
  assert.equal(hmCells.filter((r) => r[1] === 'kept' || r[1] === 'averaged into one slot').length >= 3, true);
  hmCells.forEach((r, i) => {
    assert.equal(r.length, 2 + exp.num_experts);
    r.slice(2).forEach((v, j) => (i === j ? assert.equal(v, '—') : assert.ok(Number(v) >= 0, `cell ${i},${j}: ${v}`)));
  });
  await b.page.getByTestId('ppl-measure').click();
  await b.page.locator('[data-testid="ppl-after"][data-stale="false"]:not([data-value=""])').waitFor({ timeout: 30_000 });
  assert.equal(await b.page.getByTestId('ppl-error').count(), 0);
  const pBefore = Number(await attr('ppl-before', 'data-value'));
  const pAfter = Number(await attr('ppl-after', 'data-value'));
  assert.ok(Number.isFinite(pBefore) && pBefore > 1, `before ${pBefore}`);
  assert.ok(Number.isFinite(pAfter) && pAfter > 1, `after ${pAfter}`);
  assert.equal(Number(await attr('ppl-before', 'data-tokens')), 4 * 15);
  const change = Number(await attr('ppl-change', 'data-value'));
  assert.ok(Math.abs(change - (100 * (pAfter - pBefore)) / pBefore) < 1e-9);

  // The CLI on the same file and window rule prints the same numbers (before: eval; after: prune --eval-text).
  const ev = cli(['eval', fixtureDir('mixtral'), '--text', textFile, '--seq-len', '16', '--max-windows', '4', '--json']);
  assert.equal(ev.tokens, 4 * 15);
  assert.ok(rel(pBefore, ev.perplexity) < 1e-4, `page ${pBefore} vs CLI ${ev.perplexity}`);
  const out = join(dir, 'pruned');
  const pr = cli(['prune', fixtureDir('mixtral'), '--out', out, '--experts-per-layer', '3', '--eval-text', textFile, '--seq-len', '16', '--max-windows', '4', '--json', '--force']);
  const keptPage = await b.page.getByTestId('layer-kept').allInnerTexts();
  assert.deepEqual(keptPage.map((t) => t.trim().split(/\s+/).map(Number)), Object.values(pr.report.keptExperts), 'page and CLI plan the same experts');
  assert.ok(rel(pAfter, pr.report.perplexity.after) < 1e-4, `page after ${pAfter} vs CLI ${pr.report.perplexity.after}`);
  assert.ok(rel(pBefore, pr.report.perplexity.before) < 1e-4);

  // The step strip: loaded, calibrated, planned and evaluated are done; stage 2 and the export have not run and say
  // what they will cost (GPU memory and time from the calibration's layers; the export's disk).
  const step = (id) => b.page.locator(`[data-testid="flow-step"][data-step="${id}"]`);
  for (const id of ['load', 'calibrate', 'plan', 'evaluate']) assert.equal(await step(id).getAttribute('data-state'), 'done', id);
  assert.equal(await step('unstructured').getAttribute('data-state'), 'not-started');
  assert.match(await step('unstructured').innerText(), /GPU ≈ .+ · ≈ \d+ (s|min)/);
  assert.match(await step('export').innerText(), /disk \d/);

  // Moving the slider does not re-measure; it marks "after" stale until the same plan is back.
  await b.page.getByTestId('keep-input').fill('2');
  await b.page.locator('[data-testid="ppl-after"][data-stale="true"]').waitFor();
  assert.equal(await step('evaluate').getAttribute('data-state'), 'stale');
  assert.match(await step('evaluate').innerText(), /a setting changed/);
  assert.equal(await b.page.getByTestId('ppl-progress').count(), 0);
  assert.equal(Number(await attr('ppl-after', 'data-value')), pAfter);
  await b.page.getByTestId('keep-input').fill('3');
  await b.page.locator('[data-testid="ppl-after"][data-stale="false"]').waitFor();
  assert.equal(await step('evaluate').getAttribute('data-state'), 'done');

  // Co-activation similarity from this calibration: the plan and heatmap follow, and match the CLI's.
  const keptRouter = await b.page.getByTestId('layer-kept').allInnerTexts();
  await b.page.locator('[data-testid="similarity"][data-calibrated="true"]').waitFor();
  await b.page.getByTestId('similarity').locator('[data-value="coactivation"]').click();
  await b.page.getByTestId('heatmap-title').filter({ hasText: 'Co-activation distances' }).waitFor();
  await b.page.locator('[data-testid="heatmap"][data-clusters="3"]').waitFor({ timeout: 5_000 });
  assert.equal(await b.page.getByTestId('plan-error').count(), 0);
  const coPr = cli(['prune', fixtureDir('mixtral'), '--out', out, '--experts-per-layer', '3', '--similarity', 'coactivation', '--calib-text', textFile, '--calib-samples', '4', '--calib-seq-len', '16', '--json', '--force']);
  assert.equal(coPr.report.settings.similarity, 'coactivation');
  // The report names the calibration text with its digest and sampling, so `--from-report` can repeat the run.
  const { sha256, ...calibration } = coPr.report.settings.calibration;
  assert.deepEqual(calibration, { text: 'sentences.txt', sampling: 'first', seed: 0, samples: 4, requested_samples: 4, seq_len: 16, tokens: 64 });
  assert.equal(sha256, createHash('sha256').update(buffer).digest('hex'));
  const keptCo = await b.page.getByTestId('layer-kept').allInnerTexts();
  assert.deepEqual(keptCo.map((t) => t.trim().split(/\s+/).map(Number)), Object.values(coPr.report.keptExperts), 'page and CLI cluster by the same co-activation');
  // Mixed: μ box appears; μ = 0 is the router plan again.
  await b.page.getByTestId('similarity').locator('[data-value="mixed"]').click();
  await b.page.getByTestId('heatmap-title').filter({ hasText: 'Mixed distances' }).waitFor();
  await setNumber('mix-weight', 0);
  await b.page.locator('[data-testid="heatmap"][data-clusters="3"]').waitFor({ timeout: 5_000 });
  assert.deepEqual(await b.page.getByTestId('layer-kept').allInnerTexts(), keptRouter);
  await b.page.getByTestId('plan-panel').screenshot({ path: join(ARTIFACTS, 'eval-plan-panel-coactivation-mixtral.png') });
  await b.page.getByTestId('similarity').locator('[data-value="router"]').click();
  await b.page.getByTestId('heatmap-title').filter({ hasText: 'Router distances' }).waitFor();
  await b.page.locator('[data-testid="ppl-after"][data-stale="false"]').waitFor();

  await b.page.getByTestId('plan-panel').screenshot({ path: join(ARTIFACTS, 'eval-plan-panel-mixtral.png') });
  await b.page.getByTestId('eval-panel').screenshot({ path: join(ARTIFACTS, 'eval-panel-mixtral.png') });
  rmSync(out, { recursive: true, force: true });
  assert.deepEqual(b.consoleErrors, []);
});

test('demo model: calibration and perplexity on the built-in samples; Cancel stops a run', { timeout: 60_000 }, async () => {
  await b.page.goto(`${BASE}/`);
  await b.page.locator('[data-testid="demo-card"][data-available="true"]').waitFor();
  await b.page.getByTestId('demo-button').click();
  await b.page.locator('[data-testid="plan-panel"][data-ready="true"]').waitFor({ timeout: 20_000 });
  await b.page.locator('[data-testid="eval-panel"][data-available="true"]').waitFor({ timeout: 10_000 });
  assert.equal(await b.page.getByTestId('calib-source').locator('[aria-checked="true"]').getAttribute('data-value'), 'sample');

  // A tiny run (1 window of 2 tokens) leaves experts without tokens: the warning names every one of them.
  await setNumber('calib-count', 1);
  await setNumber('calib-length', 2);
  await b.page.getByTestId('calib-run').click();
  const callout = b.page.getByTestId('calib-unrouted');
  await callout.waitFor({ timeout: 30_000 });
  const zeros = [];
  for (const el of await b.page.getByTestId('routed-layer').all()) {
    const layer = await el.getAttribute('data-layer');
    (await el.getAttribute('data-counts')).split(',').forEach((c, e) => c === '0' && zeros.push(`model.layers.${layer}.block_sparse_moe.experts.${e}`));
  }
  assert.ok(zeros.length >= 4 * (8 - 4), `at most 4 of 8 experts per layer can get 2 tokens × top-2 (${zeros.length} unrouted)`);
  assert.equal(Number(await callout.getAttribute('data-count')), zeros.length);
  const listed = await callout.locator('li').allInnerTexts();
  assert.deepEqual(listed.slice(0, Math.min(40, zeros.length)), zeros.slice(0, 40));
  await b.page.getByTestId('calib-result').screenshot({ path: join(ARTIFACTS, 'eval-unrouted-demo.png') });

  await setNumber('calib-count', 8);
  await setNumber('calib-length', 64);
  await b.page.getByTestId('calib-run').click();
  const result = b.page.getByTestId('calib-result');
  await result.and(b.page.locator('[data-tokens="512"]')).waitFor({ timeout: 30_000 });
  assert.equal(Number(await result.getAttribute('data-tokens')), 8 * 64);
  assert.equal(Number(await result.getAttribute('data-routed-total')), 8 * 64 * 2 * 4);
  assert.ok(b.requests.some((u) => u.endsWith('/demo/calibration.txt')));

  await setNumber('heldout-length', 64);
  await setNumber('heldout-windows', 4);
  await b.page.getByTestId('ppl-measure-before').click();
  await b.page.locator('[data-testid="ppl-before"]:not([data-value=""])').waitFor({ timeout: 30_000 });
  const p = Number(await attr('ppl-before', 'data-value'));
  // The trained demo model predicts Austen far better than chance over its 4096-token vocabulary.
  assert.ok(Number.isFinite(p) && p > 1 && p < 200, `demo perplexity ${p}`);
  assert.ok(b.requests.some((u) => u.endsWith('/demo/heldout.txt')));
  assert.deepEqual(b.foreignRequests(BASE), []);
  await b.page.getByTestId('eval-panel').screenshot({ path: join(ARTIFACTS, 'eval-panel-demo.png') });

  // Cancel: a longer run stops after the current layer, leaving the earlier result and no error.
  await setNumber('calib-count', 64);
  await setNumber('calib-length', 128);
  await b.page.getByTestId('calib-run').click();
  await b.page.getByTestId('calib-progress-step').filter({ hasText: /layer|embedding/ }).waitFor({ timeout: 10_000 });
  await b.page.getByTestId('calib-progress').screenshot({ path: join(ARTIFACTS, 'eval-progress-demo.png') });
  // The step strip shows the run (progress) and cancels it like the panel's own Cancel.
  const calibStep = b.page.locator('[data-testid="flow-step"][data-step="calibrate"]');
  assert.equal(await calibStep.getAttribute('data-state'), 'running');
  assert.match(await calibStep.innerText(), /running · (\d+ \/ \d+|starting…)/);
  assert.equal(await b.page.getByTestId('calib-progress-cancel').isEnabled(), true);
  await calibStep.getByTestId('flow-step-cancel').click();
  await b.page.getByTestId('calib-progress').waitFor({ state: 'detached', timeout: 20_000 });
  // The earlier result stays, but the settings on screen (64 × 128) are not the ones it ran with.
  assert.equal(await calibStep.getAttribute('data-state'), 'stale');
  assert.equal(await b.page.getByTestId('calib-error').count(), 0);
  assert.equal(Number(await result.getAttribute('data-tokens')), 8 * 64, 'the previous result stays');
  assert.deepEqual(b.consoleErrors, []);
});
