// Task accuracy in the page: a dropped ARC file scored on the mixtral fixture before and after the expert plan, equal
// to what `moe-prune eval --task` prints for the original and for the exported checkpoint; the exported report and
// model card carry the accuracy; then the demo model with its built-in task (public/demo/task.jsonl), a few items.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { exportZip } from './archive.mjs';
import { baseUrl, browserPerFile } from './browser.mjs';
import { ARTIFACTS, loadFixture, REPO } from './fixtures.mjs';

const BASE = baseUrl();
const ARC = join(REPO, 'fixtures', 'tasks', 'arc.jsonl');
const b = browserPerFile();

const attr = (testid, name) => b.page.getByTestId(testid).getAttribute(name);

function cli(args) {
  const r = spawnSync(process.execPath, [join(REPO, 'bin', 'moe-prune.mjs'), ...args], { cwd: REPO, encoding: 'utf8' });
  assert.equal(r.status, 0, `moe-prune ${args[0]} failed: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

test('mixtral fixture: a dropped ARC file, accuracy before/after equals the CLI; the export records it', { timeout: 120_000 }, async () => {
  await b.page.goto(`${BASE}/`);
  await loadFixture(b.page, 'mixtral');
  await b.page.locator('[data-testid="plan-panel"][data-ready="true"]').waitFor({ timeout: 20_000 });
  await b.page.locator('[data-testid="eval-panel"][data-available="true"]').waitFor({ timeout: 10_000 });

  // A line the task rules refuse is reported with its number.
  await b.page.getByTestId('task-file').setInputFiles({ name: 'bad.jsonl', mimeType: 'application/json', buffer: Buffer.from('{"context": "a", "choices": ["b", "c"], "answer": 0}\n{"context": "a"}\n') });
  await b.page.getByTestId('task-measure-before').click();
  const err = b.page.getByTestId('task-error');
  await err.waitFor({ timeout: 20_000 });
  assert.match(await err.innerText(), /bad\.jsonl: line 2: "choices" must be a list/);

  await b.page.getByTestId('task-file').setInputFiles({ name: 'arc.jsonl', mimeType: 'application/json', buffer: readFileSync(ARC) });
  await b.page.getByTestId('task-text-name').filter({ hasText: 'arc.jsonl' }).waitFor();
  await b.page.getByTestId('task-measure-after').click();
  await b.page.locator('[data-testid="task-acc-after"][data-acc]:not([data-acc=""])').waitFor({ timeout: 60_000 });
  assert.equal(await b.page.getByTestId('task-error').count(), 0);
  const cliBefore = cli(['eval', join(REPO, 'fixtures', 'models', 'mixtral'), '--task', ARC, '--json']);
  assert.equal(Number(await attr('task-acc-before', 'data-acc')), cliBefore.acc);
  assert.equal(Number(await attr('task-acc-before', 'data-acc-norm')), cliBefore.acc_norm);
  assert.equal(await attr('task-acc-before', 'data-n'), '2');
  await b.page.getByTestId('eval-panel').screenshot({ path: join(ARTIFACTS, 'task-mixtral.png') });

  // The export's report and model card carry both; "after" equals the exported checkpoint's own accuracy.
  const dir = join(ARTIFACTS, 'export-task-mixtral');
  rmSync(dir, { recursive: true, force: true });
  await exportZip(b.page, dir, { artifacts: ARTIFACTS });
  const report = JSON.parse(readFileSync(join(dir, 'prune-report.json'), 'utf8'));
  const cliAfter = cli(['eval', dir, '--task', ARC, '--json']);
  assert.equal(report.accuracy.task, 'arc.jsonl');
  assert.equal(report.accuracy.n, 2);
  assert.equal(report.accuracy.before.acc, cliBefore.acc);
  assert.equal(report.accuracy.after.acc, cliAfter.acc);
  assert.equal(report.accuracy.after.acc_norm, cliAfter.acc_norm);
  assert.equal(Number(await attr('task-acc-after', 'data-acc')), cliAfter.acc);
  assert.match(readFileSync(join(dir, 'README.md'), 'utf8'), /## Measured task accuracy/);
});

test('demo model: the built-in demo task, a few items, served by the page itself', { timeout: 120_000 }, async () => {
  await b.page.goto(`${BASE}/`);
  await b.page.locator('[data-testid="demo-card"][data-available="true"]').waitFor();
  await b.page.getByTestId('demo-button').click();
  await b.page.locator('[data-testid="eval-panel"][data-available="true"]').waitFor({ timeout: 60_000 });
  assert.match(await b.page.getByTestId('task-text-name').innerText(), /task\.jsonl: the demo task/);
  await b.page.getByTestId('task-limit').fill('4');
  await b.page.getByTestId('task-measure-before').click();
  await b.page.getByTestId('task-progress').waitFor({ timeout: 20_000 });
  await b.page.locator('[data-testid="task-acc-before"][data-acc]:not([data-acc=""])').waitFor({ timeout: 90_000 });
  assert.equal(await attr('task-acc-before', 'data-n'), '4');
  const acc = Number(await attr('task-acc-before', 'data-acc'));
  assert.ok(acc >= 0 && acc <= 1);
  const cliDemo = cli(['eval', join(REPO, 'public', 'demo', 'model'), '--task', join(REPO, 'public', 'demo', 'task.jsonl'), '--limit', '4', '--json']);
  assert.equal(acc, cliDemo.acc);
  assert.ok(b.requests.some((u) => u.endsWith('/demo/task.jsonl')));
});
