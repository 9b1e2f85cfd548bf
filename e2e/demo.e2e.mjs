// "Try the demo model" on a fresh profile: the page fetches the shipped demo checkpoint (public/demo/model) from
// its own origin, loads it like a dropped folder, keeps 4 of 8 experts per layer and exports it as one .zip download.
// The export is left in e2e/.artifacts/export-demo for the Python oracle, which loads it in transformers.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { exportZip } from './archive.mjs';
import { baseUrl, browserPerFile } from './browser.mjs';
import { ARTIFACTS, REPO, summaryOf } from './fixtures.mjs';
import { DIST } from './serve.mjs';

const BASE = baseUrl();
const b = browserPerFile();

test('the build ships the demo model and the button is enabled', { timeout: 60_000 }, async () => {
  await b.page.goto(`${BASE}/`);
  assert.ok(existsSync(join(DIST, 'demo', 'model', 'config.json')), 'public/demo/model is part of the build');
  await b.page.locator('[data-testid="demo-card"][data-available="true"]').waitFor();
  assert.equal(await b.page.getByTestId('demo-button').isDisabled(), false);
});

test('Try the demo model → keep 4 of 8 → export works, and the files pass moe-prune inspect', { timeout: 90_000 }, async () => {
  await b.page.goto(`${BASE}/`);
  await b.page.locator('[data-testid="demo-card"][data-available="true"]').waitFor();
  await b.page.getByTestId('demo-button').click();
  await summaryOf(b.page, 'mixtral').waitFor({ timeout: 20_000 });
  assert.equal(await b.page.getByTestId('model-name').innerText(), 'moe-demo');
  assert.equal(await b.page.getByTestId('summary-experts').innerText(), '8');
  await b.page.locator('[data-testid="plan-panel"][data-ready="true"]').waitFor({ timeout: 20_000 });
  // Every file was fetched from the page's own origin.
  assert.ok(b.requests.some((u) => u.endsWith('/demo/model/model.safetensors.index.json')));
  assert.deepEqual(b.foreignRequests(BASE), []);

  await b.page.getByTestId('keep-slider').fill('4');
  await b.page.locator('[data-testid="heatmap"][data-clusters="4"]').waitFor();
  assert.equal(await b.page.getByTestId('plan-experts').getAttribute('data-after'), '16'); // 4 kept × 4 MoE layers
  await b.page.getByTestId('plan-panel').screenshot({ path: join(ARTIFACTS, 'plan-panel-demo.png') });

  const dir = join(ARTIFACTS, 'export-demo');
  await b.page.locator('[data-testid="export-box"]').waitFor();
  const { names } = await exportZip(b.page, dir, { artifacts: ARTIFACTS });
  await b.page.locator('[data-testid="export-done"][data-k="4"]').waitFor();
  assert.ok(names.includes('prune-report.json') && existsSync(join(dir, 'prune-report.json')), 'the archive holds the report');

  const r = spawnSync(process.execPath, [join(REPO, 'bin', 'moe-prune.mjs'), 'inspect', dir, '--json'], { cwd: REPO, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const summary = JSON.parse(r.stdout);
  assert.equal(summary.expertsPerLayer, 4);
  const written = JSON.parse(readFileSync(join(dir, 'prune-report.json'), 'utf8'));
  for (const kept of Object.values(written.keptExperts)) assert.equal(kept.length, 4);
  assert.deepEqual(b.consoleErrors, []);
});
