// Which experts to drop, in the page: on the generated mixtral checkpoint, calibrate on a dropped text, compare every
// criterion at K = 3 (table rows, chart, per-layer errors), take a row whose kept experts differ from the plan on
// screen as the plan, see the plan panel follow, and export: the report names that row's criterion and keeps its
// experts.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { exportZip } from './archive.mjs';
import { baseUrl, browserPerFile } from './browser.mjs';
import { ARTIFACTS, loadFixture, SAMPLE_TEXT } from './fixtures.mjs';

const BASE = baseUrl();
const TEXT = SAMPLE_TEXT;

const b = browserPerFile();

async function setNumber(testid, v) {
  await b.page.getByTestId(testid).fill(String(v));
  assert.equal(await b.page.getByTestId(testid).inputValue(), String(v));
}

/** The plan panel's kept experts per layer, as "layer: e,e,e" joined by " · " (the comparison table's format). */
async function planKept() {
  const rows = b.page.getByTestId('layer-table').locator('tbody tr');
  const out = [];
  for (let i = 0; i < (await rows.count()); i++) {
    const r = rows.nth(i);
    const kept = (await r.getByTestId('layer-kept').innerText()).trim().split(/\s+/).join(',');
    out.push(`${await r.getAttribute('data-layer')}: ${kept}`);
  }
  return out.join(' · ');
}

test('mixtral: compare every criterion at K = 3, take one row as the plan, export names its criterion', { timeout: 240_000 }, async () => {
  await b.page.goto(`${BASE}/`);
  await loadFixture(b.page, 'mixtral');
  await b.page.locator('[data-testid="plan-panel"][data-ready="true"]').waitFor({ timeout: 20_000 });
  const panel = b.page.getByTestId('compare-panel');
  await panel.waitFor({ timeout: 20_000 });
  assert.equal(await panel.getAttribute('data-state'), 'none');

  await b.page.getByTestId('calib-file').setInputFiles({ name: 'sentences.txt', mimeType: 'text/plain', buffer: Buffer.from(TEXT) });
  await b.page.getByTestId('calib-text-name').filter({ hasText: 'sentences.txt' }).waitFor();
  await setNumber('calib-count', 4);
  await setNumber('calib-length', 16);

  // Perplexity on a few short held-out windows keeps the ten extra passes quick.
  await setNumber('heldout-length', 32);
  await setNumber('heldout-windows', 4);
  await setNumber('compare-keep-input', 3);
  await b.page.getByTestId('compare-perplexity').check();
  await b.page.getByTestId('compare-run').click();
  await b.page.locator('[data-testid="compare-panel"][data-state="fresh"]').waitFor({ timeout: 180_000 });

  // One row per criterion (mixtral's 4 experts allow the exhaustive search), each keeping 3 experts in both layers.
  const rows = b.page.getByTestId('compare-row');
  const criteria = [];
  for (let i = 0; i < (await rows.count()); i++) criteria.push(await rows.nth(i).getAttribute('data-criterion'));
  assert.deepEqual(criteria, ['stun-router', 'stun-coactivation', 'stun-mixed', 'reap', 'ean', 'frequency', 'random', 'exhaustive', 'output']);
  const kept = {};
  const errors = {};
  for (let i = 0; i < criteria.length; i++) {
    const row = rows.nth(i);
    kept[criteria[i]] = (await row.getByTestId('compare-kept').innerText()).trim();
    assert.match(kept[criteria[i]], /^0: \d,\d,\d · 1: \d,\d,\d$/, criteria[i]);
    errors[criteria[i]] = Number(await row.getAttribute('data-mean-error'));
    assert.ok(errors[criteria[i]] >= 0 && Number.isFinite(errors[criteria[i]]), `${criteria[i]}: mean error ${errors[criteria[i]]}`);
  }
  // The exhaustive search is best on each layer's own input; nothing beats it by more than float noise on layer 0.
  const head = await b.page.getByTestId('compare-table').locator('thead th').allInnerTexts();
  assert.deepEqual(head.slice(0, 5), ['criterion', 'kept experts per layer', 'mean error', 'layer 0', 'layer 1']);
  assert.ok(head.includes('perplexity'), 'a perplexity column when asked for');
  const layer0 = async (c) => Number((await b.page.locator(`[data-testid="compare-row"][data-criterion="${c}"] td`).nth(3).innerText()).trim());
  for (const c of criteria) assert.ok((await layer0('exhaustive')) <= (await layer0(c)) * (1 + 1e-3) + 1e-6, `exhaustive vs ${c} on layer 0`);
  const chart = b.page.getByTestId('compare-chart');
  assert.match(await chart.innerText(), /mean reconstruction error per criterion/i);
  assert.equal(await chart.locator('.recharts-bar-rectangle').count(), criteria.length);

  // Take as the plan a row whose kept experts differ from the plan on screen (REAP first if it does).
  const before = await planKept();
  const pick = ['reap', ...criteria].find((c) => kept[c] !== before);
  assert.ok(pick, `some criterion keeps other experts than the plan on screen (${before})`);
  const row = b.page.locator(`[data-testid="compare-row"][data-criterion="${pick}"]`);
  assert.equal(await row.getAttribute('data-current'), 'false');
  await row.getByTestId('compare-use').click();
  await b.page.locator(`[data-testid="compare-row"][data-criterion="${pick}"][data-current="true"]`).waitFor({ timeout: 5_000 });
  assert.equal(await planKept(), kept[pick], 'the plan panel shows the row’s kept experts');
  assert.equal(await b.page.getByTestId('keep-input').inputValue(), '3');
  assert.match(await b.page.getByTestId('compare-adopted').innerText(), new RegExp(`keeps what ${pick} keeps`));

  // The export writes that plan and names the criterion.
  const dir = join(ARTIFACTS, 'export-compare-mixtral');
  const { names } = await exportZip(b.page, dir, { artifacts: ARTIFACTS });
  assert.ok(names.includes('prune-report.json'));
  const report = JSON.parse(readFileSync(join(dir, 'prune-report.json'), 'utf8'));
  assert.equal(report.criterion, pick);
  assert.equal(kept[pick], Object.entries(report.keptExperts).map(([l, k]) => `${l}: ${k.join(',')}`).join(' · '));
});
