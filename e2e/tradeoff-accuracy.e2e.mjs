// Task accuracy in the trade-off explorer on the generated mixtral checkpoint (4 experts, top-2): a dropped ARC file in
// the evaluation panel, "measure too" ticked, a sweep (original, unstructured only and STUN at S = 50 %); the y axis
// switched to accuracy shows the same three points; the original's accuracy equals `moe-prune eval --task`; the points'
// CSV keeps its header and the accuracy goes to a CSV of its own, and to the export's report and model card; another task leaves the accuracy chart empty; the
// plan's accuracy measured in the evaluation panel shows beside the plan panel's perplexity; the session keeps the axis.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { exportZip } from './archive.mjs';
import { baseUrl, browserPerFile } from './browser.mjs';
import { ARTIFACTS, loadFixture, REPO } from './fixtures.mjs';
import { TRADEOFF_CSV_HEADER } from './studio.mjs';

const BASE = baseUrl();
const ARC = join(REPO, 'fixtures', 'tasks', 'arc.jsonl');
const PIQA = join(REPO, 'fixtures', 'tasks', 'piqa.jsonl');
const ACC_HEADER = 'expertsPerLayer,expertSparsity,unstructuredSparsity,totalSparsity,method,similarity,params,nonzeroParams,task,acc,acc_norm';
const b = browserPerFile();

async function download(testid) {
  const [d] = await Promise.all([b.page.waitForEvent('download'), b.page.getByTestId(testid).click()]);
  const path = join(ARTIFACTS, d.suggestedFilename());
  await d.saveAs(path);
  return { name: d.suggestedFilename(), rows: readFileSync(path, 'utf8').trimEnd().split('\n') };
}

test('mixtral: a sweep with a task, then the y axis switched to accuracy', { timeout: 300_000 }, async () => {
  await b.page.goto(`${BASE}/`);
  await loadFixture(b.page, 'mixtral');
  await b.page.locator('[data-testid="plan-panel"][data-ready="true"]').waitFor({ timeout: 20_000 });
  await b.page.locator('[data-testid="tradeoff-panel"][data-available="true"]').waitFor({ timeout: 20_000 });
  await b.page.getByTestId('task-file').setInputFiles({ name: 'arc.jsonl', mimeType: 'application/json', buffer: readFileSync(ARC) });
  await b.page.getByTestId('task-text-name').filter({ hasText: 'arc.jsonl' }).waitFor();

  const chart = b.page.getByTestId('tradeoff-chart');
  assert.equal(await b.page.getByTestId('tradeoff-acc-csv').isDisabled(), true);
  await b.page.getByTestId('sweep-with-task').check();
  await b.page.getByTestId('sweep-totals').fill('50');
  await b.page.getByTestId('sweep-shares').fill('0, 50');
  await b.page.getByTestId('sweep-expert-only').uncheck();
  await b.page.getByTestId('sweep-run').click();
  await b.page.getByTestId('sweep-progress').waitFor({ timeout: 10_000 });
  await b.page.locator('[data-testid="tradeoff-panel"][data-running=""]').waitFor({ timeout: 180_000 });
  assert.equal(await b.page.getByTestId('tradeoff-error').count(), 0);
  assert.equal(await b.page.getByTestId('sweep-done').getAttribute('data-settings'), '3');
  assert.equal(await chart.getAttribute('data-y'), 'perplexity');
  assert.equal(await chart.getAttribute('data-points'), '3');

  // The y axis: accuracy of the same three points (radio group, arrow keys as the x axis).
  const y = b.page.getByTestId('tradeoff-y-axis');
  await y.locator('[data-value="accuracy"]').click();
  assert.equal(await y.locator('[aria-checked="true"]').getAttribute('data-value'), 'accuracy');
  assert.equal(await chart.getAttribute('data-y'), 'accuracy');
  assert.equal(await chart.getAttribute('data-points'), '3');
  assert.deepEqual((await chart.getAttribute('data-series')).split(',').sort(), ['original', 'stun:0.5', 'unstructured']);
  assert.match(await chart.innerText(), /task accuracy, acc \(higher is better\)/);
  await chart.screenshot({ path: join(ARTIFACTS, 'tradeoff-accuracy.png') });

  // The points' CSV is unchanged; accuracy has its own, one row per point, the original's equal to the CLI's.
  const ppl = await download('tradeoff-csv');
  assert.equal(ppl.rows[0], TRADEOFF_CSV_HEADER);
  assert.equal(ppl.rows.length, 4);
  const acc = await download('tradeoff-acc-csv');
  assert.match(acc.name, /-tradeoff-accuracy\.csv$/);
  assert.equal(acc.rows[0], ACC_HEADER);
  assert.equal(acc.rows.length, 4);
  const r = spawnSync(process.execPath, [join(REPO, 'bin', 'moe-prune.mjs'), 'eval', join(REPO, 'fixtures', 'models', 'mixtral'), '--task', ARC, '--json'], { cwd: REPO, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const cli = JSON.parse(r.stdout);
  const original = acc.rows.slice(1).map((row) => row.split(',')).find((c) => c[4] === 'none' && c[0] === '4');
  assert.ok(original, acc.rows.join('\n'));
  for (const row of acc.rows.slice(1)) assert.ok(row.includes(',"arc.jsonl, 2 items",'), row);
  assert.equal(Number(original.at(-2)), cli.acc);
  assert.equal(Number(original.at(-1)), cli.acc_norm);

  // The export's report and model card carry each point's accuracy and name the task.
  const dir = join(ARTIFACTS, 'export-tradeoff-accuracy');
  rmSync(dir, { recursive: true, force: true });
  await exportZip(b.page, dir, { artifacts: ARTIFACTS });
  const report = JSON.parse(readFileSync(join(dir, 'prune-report.json'), 'utf8'));
  assert.equal(report.tradeoff.task, 'arc.jsonl, 2 items');
  assert.equal(report.tradeoff.points.length, 3);
  const row = report.tradeoff.points.find((p) => p.method === 'none' && p.expertsPerLayer === 4);
  assert.deepEqual([row.acc, row.acc_norm], [cli.acc, cli.acc_norm]);
  assert.ok(report.tradeoff.points.every((p) => typeof p.acc === 'number'));
  assert.match(readFileSync(join(dir, 'README.md'), 'utf8'), /zero-shot accuracy \(acc \/ acc_norm\) on arc\.jsonl, 2 items/);

  // Back to perplexity: the three points again; another task has no measured accuracy, so the accuracy chart empties.
  await y.locator('[data-value="perplexity"]').click();
  assert.equal(await chart.getAttribute('data-points'), '3');
  await b.page.getByTestId('task-file').setInputFiles({ name: 'piqa.jsonl', mimeType: 'application/json', buffer: readFileSync(PIQA) });
  await b.page.getByTestId('task-text-name').filter({ hasText: 'piqa.jsonl' }).waitFor();
  await b.page.locator('[data-testid="session"][data-points="3"]').waitFor({ timeout: 10_000 });
  const savedAt = await b.page.getByTestId('session').first().getAttribute('data-saved');
  await y.locator('[data-value="accuracy"]').click();
  assert.equal(await chart.getAttribute('data-points'), '0');
  assert.equal(await b.page.getByTestId('tradeoff-acc-csv').isDisabled(), true);

  // The plan's accuracy measured in the evaluation panel shows beside the plan panel's perplexity.
  assert.equal(await b.page.getByTestId('ppl-task-acc').count(), 0);
  await b.page.getByTestId('task-measure-after').click();
  await b.page.locator('[data-testid="task-acc-after"][data-acc]:not([data-acc=""])').waitFor({ timeout: 60_000 });
  const line = b.page.getByTestId('ppl-task-acc');
  await line.waitFor({ timeout: 10_000 });
  assert.equal(await line.getAttribute('data-acc'), await b.page.getByTestId('task-acc-after').getAttribute('data-acc'));
  assert.equal(await line.getAttribute('data-acc-before'), await b.page.getByTestId('task-acc-before').getAttribute('data-acc'));
  assert.match(await line.innerText(), /Task accuracy on piqa\.jsonl \(2 items\)/);

  // The session keeps the y axis and "measure too"; reopened after a reload (the task file is gone, so the accuracy
  // chart is empty), perplexity shows the three points again.
  await b.page.waitForFunction((t) => document.querySelector('[data-testid="session"]')?.getAttribute('data-saved') !== t, savedAt, { timeout: 10_000 });
  await b.page.reload();
  const session = b.page.locator('[data-testid="session"][data-name]').first();
  await session.waitFor({ timeout: 20_000 });
  await session.getByTestId('session-open').click();
  await b.page.getByTestId('session-message').filter({ hasText: /Load .* to reopen/ }).waitFor();
  await loadFixture(b.page, 'mixtral');
  await b.page.getByTestId('session-message').filter({ hasText: /Reopened the session/ }).waitFor({ timeout: 20_000 });
  assert.equal(await y.locator('[aria-checked="true"]').getAttribute('data-value'), 'accuracy');
  assert.equal(await b.page.getByTestId('sweep-with-task').isChecked(), true);
  assert.equal(await chart.getAttribute('data-points'), '0');
  await y.locator('[data-value="perplexity"]').click();
  assert.equal(await chart.getAttribute('data-points'), '3');
});
