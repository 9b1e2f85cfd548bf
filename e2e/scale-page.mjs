#!/usr/bin/env node
// Opt-in scale check of the page, stage 1 and export (not part of `npm test`: many minutes on SwiftShader, and
// 6.33 GB of disk for the checkpoint, as much again for the browser's IndexedDB copy and 3.5 GB for the export):
// the Mixtral-shaped checkpoint of bench/scale-checkpoint.ts is stored in the browser (as scale-ingest.mjs does), the
// page is reloaded and the stored copy opened, the plan keeps 4 of 8 experts per layer with the default similarity,
// and *Export* into a folder resolves the representatives of the plan's clusters on the page's WebGPU adapter and
// streams the pruned checkpoint into the picked folder. The folder picker is answered from the test side with an
// origin-private folder. The JS heap and the RSS of every browser process are sampled throughout and must stay below
// one decoder layer's weights; the exported files are read back from the page 8 MiB at a time and must have the
// sizes and SHA-256 of `moe-prune prune --experts-per-layer 4 --cpu` on the same checkpoint.
// With --stage2 it then runs stage 2 (Wanda, 75 % of the routed experts' weights) with the smallest calibration the page
// allows (1 window of 2 tokens of the built-in sample), sampling it the same way, and exports again: the masks are
// written in place, so every file but the report and model card keeps the CLI's size. Stage 2 keeps one decoder
// layer resident on the adapter (on SwiftShader that is the GPU process's memory), so its RSS bound is two layers.
//   node e2e/scale-page.mjs [--stage2]   (builds the app into .bench-data/scale-page-dist; deletes the profile and the CLI's output)
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { REPO } from './serve.mjs';
import { ingestScale, mib, openScalePage, opfsDigestsInPage, scaleCheckpoint } from './scale.mjs';

const K = 4;
const STAGE2 = process.argv.includes('--stage2');
const PICKED = 'picked-folder';
const { ck, dir, layerBytes } = await scaleCheckpoint();

async function fileSha256(path) {
  const h = createHash('sha256');
  for await (const piece of createReadStream(path, { highWaterMark: 8 << 20 })) h.update(piece);
  return h.digest('hex');
}

// The reference export, before the browser starts (its RSS would count as the browser's otherwise).
const cliOut = join(REPO, '.bench-data', 'scale-page-cli');
const cli = {};
let cliReport;
let cliSeconds;
try {
  const t = performance.now();
  const r = spawnSync(process.execPath, [join(REPO, 'bin', 'moe-prune.mjs'), 'prune', dir, '--out', cliOut, '--experts-per-layer', String(K), '--cpu', '--force', '--quiet'], { cwd: REPO, encoding: 'utf8' });
  cliSeconds = (performance.now() - t) / 1000;
  assert.equal(r.status, 0, `moe-prune prune failed: ${r.stderr}`);
  for (const f of readdirSync(cliOut)) cli[f] = { size: statSync(join(cliOut, f)).size, sha256: await fileSha256(join(cliOut, f)) };
  cliReport = JSON.parse(readFileSync(join(cliOut, 'prune-report.json'), 'utf8'));
} finally {
  rmSync(cliOut, { recursive: true, force: true });
}
// The files that must match byte for byte; the report and model card name the tool and differ by design.
const weighed = Object.keys(cli).filter((f) => f !== 'prune-report.json' && f !== 'README.md');
assert.ok(weighed.filter((f) => f.endsWith('.safetensors')).length === ck.layers, `one shard per layer in the CLI's export (${Object.keys(cli)})`);

const { b, base, peak, step, close } = await openScalePage('scale-page', {
  initScript: (picked) => {
    window.showDirectoryPicker = async () => (await navigator.storage.getDirectory()).getDirectoryHandle(picked, { create: true });
  },
  initArg: PICKED,
});
const { page } = b;

/** *Export* into the picked folder; times and peaks of what runs before the first file is written (stage 1's
 * representatives, unless stage 2 resolved them already) and of the whole export. */
async function exportToFolder() {
  const target = page.getByTestId('export-target').locator('[data-value="folder"]');
  for (let i = 0; i < 3 && (await target.getAttribute('aria-checked')) !== 'true'; i++) {
    await target.click();
    await page.waitForTimeout(100);
  }
  assert.equal(await target.getAttribute('aria-checked'), 'true');
  await step();
  const t1 = performance.now();
  await page.getByTestId('export-button').click();
  // A previous export's notice goes when this one starts.
  await page.getByTestId('export-done').waitFor({ state: 'detached', timeout: 60_000 });
  // Stage 1's representatives are chosen before the first file is written (progress phase "export").
  const phases = new Set();
  let stage1Ms = null;
  let stage1Peak = null;
  const done = page.getByTestId('export-done');
  const deadline = Date.now() + 90 * 60_000;
  for (;;) {
    if (await done.count()) break;
    if (await page.getByTestId('export-stopped').count()) throw new Error(`export stopped: ${await page.getByTestId('export-stopped').innerText()}`);
    assert.ok(Date.now() < deadline, 'the export did not finish within 90 minutes');
    const phase = await page.getByTestId('export-progress').getAttribute('data-phase', { timeout: 1_000 }).catch(() => null);
    if (phase) phases.add(phase);
    if (phase === 'export' && stage1Ms === null) {
      stage1Ms = performance.now() - t1;
      stage1Peak = await step();
    }
    await page.waitForTimeout(250);
  }
  const totalMs = performance.now() - t1;
  const exportPeak = await step();
  assert.ok(stage1Ms !== null, `the export's progress never showed its writing phase (${[...phases]})`);
  assert.equal(await done.getAttribute('data-k'), String(K));
  return { stage1Ms, stage1Peak, totalMs, exportPeak, phases: [...phases] };
}
/** Stage 2 on the plan on screen with the smallest calibration, then a second export (see the header). */
async function stage2() {
  await page.evaluate((picked) => navigator.storage.getDirectory().then((r) => r.removeEntry(picked, { recursive: true })), PICKED);
  await page.locator('[data-testid="stage2-panel"][data-available="true"]').waitFor({ timeout: 60_000 });
  for (const [testid, v] of [['calib-count', 1], ['calib-length', 2]]) {
    await page.getByTestId(testid).fill(String(v));
    assert.equal(await page.getByTestId(testid).inputValue(), String(v));
  }
  // Keeping 4 of 8 experts already removes half the routed experts' weights: 75 % leaves Wanda half of the rest.
  const sparsity = 75;
  await page.getByTestId('stage2-sparsity-input').fill(String(sparsity));
  assert.equal(await page.getByTestId('stage2-sparsity-input').inputValue(), String(sparsity));
  await step();
  const t0 = performance.now();
  await page.locator('[data-testid="stage2-run"]:not([disabled])').click();
  const result = page.locator('[data-testid="stage2-result"][data-fresh="true"]');
  let lastLog = 0;
  for (const deadline = Date.now() + 120 * 60_000; !(await result.count()); await page.waitForTimeout(500)) {
    if (await page.getByTestId('stage2-error').count()) throw new Error(`stage 2 failed: ${await page.getByTestId('stage2-error').innerText()}`);
    assert.ok(Date.now() < deadline, 'stage 2 did not finish within 2 hours');
    if (Date.now() - lastLog > 30_000) {
      lastLog = Date.now();
      const at = await page.getByTestId('stage2-progress').innerText({ timeout: 1_000 }).catch(() => '');
      console.log(`stage 2 at ${((performance.now() - t0) / 1000).toFixed(0)} s: ${at.replace(/\s+/g, ' ')} (peak so far: heap ${mib(peak.heapTotal)}, RSS ${mib(peak.rss)})`);
    }
  }
  const stage2Ms = performance.now() - t0;
  const stage2Peak = await step();
  const achieved = Number(await page.getByTestId('stage2-achieved').getAttribute('data-value'));
  assert.ok(achieved > 0.5 && achieved <= sparsity / 100 + 1e-9, `achieved sparsity ${achieved} for a ${sparsity} % target`);
  const ex = await exportToFolder();
  assert.equal(await page.getByTestId('export-done').getAttribute('data-stage2'), 'true');
  const listing = await page.evaluate(async (picked) => {
    const out = {};
    const root = await (await navigator.storage.getDirectory()).getDirectoryHandle(picked);
    for await (const [, h] of root.entries()) {
      if (h.kind !== 'directory') continue;
      for await (const [f, fh] of h.entries()) if (fh.kind === 'file') out[f] = (await fh.getFile()).size;
    }
    return out;
  }, PICKED);
  assert.deepEqual(Object.keys(listing).sort(), Object.keys(cli).sort());
  for (const f of weighed.filter((f) => f.endsWith('.safetensors'))) assert.equal(listing[f], cli[f].size, `${f}: size after stage 2`);
  const out = { sparsity, achieved, stage2Seconds: stage2Ms / 1000, stage2Peak, exportSeconds: ex.totalMs / 1000, exportPeak: ex.exportPeak, phases: ex.phases };
  console.log(JSON.stringify({ stage2: out }, null, 2));
  console.log(`stage 2 (Wanda, ${sparsity} % target, achieved ${(100 * achieved).toFixed(2)} %, calibration 1 × 2 tokens): ${(stage2Ms / 1000).toFixed(0)} s [heap ${mib(stage2Peak.heapTotal)}, RSS ${mib(stage2Peak.rss)}]; export with masks ${(ex.totalMs / 1000).toFixed(0)} s [heap ${mib(ex.exportPeak.heapTotal)}, RSS ${mib(ex.exportPeak.rss)}]`);
  for (const [name, s] of Object.entries({ stage2: stage2Peak, export2: ex.exportPeak })) {
    assert.ok(s.heapTotal < layerBytes, `${name}: the page's JS heap peaked at ${mib(s.heapTotal)}, more than one layer's weights`);
    assert.ok(s.rss < 2 * layerBytes, `${name}: the browser's processes peaked at ${mib(s.rss)} RSS, more than two layers' weights`);
  }
}

try {
  const { storeMs } = await ingestScale(page, dir);
  const ingestPeak = await step();

  // Everything below reads the stored copy: after a reload the picked files are gone.
  const t0 = performance.now();
  await page.reload();
  await page.getByTestId('stored-model').first().getByTestId('stored-open').click();
  await page.locator('[data-testid="model-summary"][data-family="mixtral"]').waitFor({ timeout: 5 * 60_000 });
  assert.equal(await page.getByTestId('mode').innerText(), 'Stored in this browser');
  await page.locator('[data-testid="plan-panel"][data-ready="true"]').waitFor({ timeout: 30 * 60_000 });
  const planMs = performance.now() - t0;
  // The defaults are the brief's setting: half of the 8 experts, router similarity.
  assert.equal(await page.getByTestId('keep-input').inputValue(), String(K));
  await page.locator(`[data-testid="heatmap"][data-clusters="${K}"][data-n="8"]`).waitFor();
  assert.match(await page.getByTestId('heatmap-title').innerText(), /router/i);
  const distancesOn = await page.getByTestId('plan-device').innerText();
  const provisionalBefore = await page.getByTestId('layer-kept').evaluateAll((els) => els.map((e) => e.dataset.provisional));
  const adapter = await page.evaluate(async () => {
    const a = await navigator.gpu?.requestAdapter();
    return a ? `${a.info.vendor} ${a.info.architecture} ${a.info.description}`.trim() : 'none';
  });
  const planPeak = await step();

  const { stage1Ms, stage1Peak, totalMs, exportPeak, phases } = await exportToFolder();
  const provisionalAfter = await page.getByTestId('layer-kept').evaluateAll((els) => els.map((e) => e.dataset.provisional));
  assert.ok(provisionalAfter.every((p) => p === ''), `representatives resolved for every layer (${provisionalAfter})`);

  // Read back from the page, each file in 8 MiB pieces.
  const t2 = performance.now();
  const folders = await page.evaluate(opfsDigestsInPage, PICKED);
  const readMs = performance.now() - t2;
  const readPeak = await step();
  const names = Object.keys(folders);
  assert.equal(names.length, 1, `one export folder (${names})`);
  assert.match(names[0], new RegExp(`-pruned-${K}$`));
  const files = folders[names[0]];
  assert.deepEqual(Object.keys(files).sort(), Object.keys(cli).sort(), 'the page wrote the files the CLI wrote (and no marker is left)');
  for (const f of weighed) assert.deepEqual(files[f], cli[f], `${f}: the page's export differs from the CLI's`);
  const report = JSON.parse(
    await page.evaluate(
      async ([picked, folder]) => {
        const d = await (await (await navigator.storage.getDirectory()).getDirectoryHandle(picked)).getDirectoryHandle(folder);
        return (await (await d.getFileHandle('prune-report.json')).getFile()).text();
      },
      [PICKED, names[0]],
    ),
  );
  assert.deepEqual(report.keptExperts, cliReport.keptExperts, 'the page kept the experts the CLI kept');
  const exportedBytes = Object.values(files).reduce((s, f) => s + f.size, 0);

  const result = {
    bytes: ck.bytes, layerBytes, adapter, distancesOn, provisionalBefore, keptExperts: report.keptExperts, phases,
    cliSeconds, ingestSeconds: storeMs / 1000, reloadToPlanSeconds: planMs / 1000, stage1Seconds: stage1Ms / 1000,
    exportSeconds: (totalMs - stage1Ms) / 1000, exportedBytes, readBackSeconds: readMs / 1000,
    peaks: { ingest: ingestPeak, plan: planPeak, stage1: stage1Peak, export: exportPeak, readBack: readPeak, all: { ...peak } },
    matchedFiles: weighed,
  };
  console.log(JSON.stringify(result, null, 2));
  const p = (x) => `heap ${mib(x.heapUsed)} used / ${mib(x.heapTotal)}, RSS ${mib(x.rss)}`;
  console.log(
    `page (${adapter}): ingest ${(storeMs / 1000).toFixed(0)} s [${p(ingestPeak)}]; reload → plan ${(planMs / 1000).toFixed(0)} s [${p(planPeak)}]; ` +
      `stage-1 representatives ${(stage1Ms / 1000).toFixed(0)} s [${p(stage1Peak)}]; export of ${(exportedBytes / 1e9).toFixed(2)} GB ${((totalMs - stage1Ms) / 1000).toFixed(0)} s [${p(exportPeak)}]; ` +
      `read back ${(readMs / 1000).toFixed(0)} s; ${weighed.length} files equal to the CLI's (CLI ${cliSeconds.toFixed(0)} s); one decoder layer ${mib(layerBytes)}`,
  );
  for (const [name, s] of Object.entries({ ingest: ingestPeak, plan: planPeak, stage1: stage1Peak, export: exportPeak })) {
    assert.ok(s.heapTotal < layerBytes, `${name}: the page's JS heap peaked at ${mib(s.heapTotal)}, more than one layer's weights`);
    assert.ok(s.rss < layerBytes, `${name}: the browser's processes peaked at ${mib(s.rss)} RSS, more than one layer's weights`);
  }
  if (STAGE2) await stage2();
  assert.deepEqual(b.consoleErrors, []);
  assert.deepEqual(b.foreignRequests(base), []);
} finally {
  await close();
}
