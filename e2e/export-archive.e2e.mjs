// Export as one streamed .zip download, on a checkpoint of many shards generated here (never committed): the archive
// the browser saved holds every file with the CLI's bytes, tensors larger than the 8 MiB I/O piece included, and the
// page counts exactly what the archive holds. A cancel mid-export fails the download.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { exportZip, readZip } from './archive.mjs';
import { baseUrl, openBrowser } from './browser.mjs';
import { ARTIFACTS, REPO, summaryOf } from './fixtures.mjs';
import { writeManyShardCheckpoint } from './many-shards.mjs';

const BASE = baseUrl();
const SOURCE = join(ARTIFACTS, 'many-shards');
let b;
let generated;

before(async () => {
  generated = writeManyShardCheckpoint(SOURCE);
  b = await openBrowser();
  // The folder picker is a native dialog: the test answers it with a folder of its own in the origin-private file
  // system; the page's picker call and folder writer run as for a user.
  await b.page.addInitScript(() => {
    window.showDirectoryPicker = async () => (await navigator.storage.getDirectory()).getDirectoryHandle('picked', { create: true });
  });
});
after(async () => {
  await b?.close();
  rmSync(SOURCE, { recursive: true, force: true });
});

async function loadGenerated() {
  await b.page.goto(`${BASE}/`);
  await b.page.getByTestId('model-files').setInputFiles(readdirSync(SOURCE).map((f) => join(SOURCE, f)));
  await summaryOf(b.page, 'mixtral').waitFor({ timeout: 30_000 });
  await b.page.locator('[data-testid="plan-panel"][data-ready="true"]').waitFor({ timeout: 30_000 });
  await b.page.getByTestId('keep-input').fill('3');
  await b.page.locator('[data-testid="heatmap"][data-clusters="3"]').waitFor({ timeout: 10_000 });
}

/** `moe-prune prune` of the generated checkpoint at K = 3 into `out` (what the page's export must equal). */
function cliExport(out) {
  rmSync(out, { recursive: true, force: true });
  const r = spawnSync(process.execPath, [join(REPO, 'bin', 'moe-prune.mjs'), 'prune', SOURCE, '--out', out, '--experts-per-layer', '3', '--cpu', '--quiet'], { cwd: REPO, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return readdirSync(out).sort();
}

function tensorOf(file, name) {
  const buf = readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const t = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'))[name];
  return t ? buf.subarray(8 + n + t.data_offsets[0], 8 + n + t.data_offsets[1]) : null;
}

test('a 41-shard checkpoint exports as ONE .zip download holding every file with the CLI bytes (tensors above 8 MiB too)', { timeout: 180_000 }, async () => {
  assert.ok(generated.shards >= 40 && generated.bigBytes > 8 * 1024 * 1024);
  await loadGenerated();
  const dir = join(ARTIFACTS, 'export-many-shards');
  const { names, zipName, zipPath } = await exportZip(b.page, dir, { timeout: 120_000, artifacts: ARTIFACTS });
  assert.match(zipName, /-pruned-3\.zip$/);
  assert.ok(names.length >= 40, `${names.length} files in the archive`);
  assert.match(await b.page.getByTestId('export-done').innerText(), new RegExp(`${names.length} files into ${zipName.replace('.', '\\.')}`));

  const cli = join(ARTIFACTS, 'cli-many-shards-k3');
  const cliFiles = cliExport(cli);
  assert.deepEqual([...names].sort(), cliFiles, 'the archive holds the files the CLI writes');
  // The report and model card name the tool and the time; everything else is the same bytes.
  for (const f of cliFiles.filter((f) => f !== 'prune-report.json' && f !== 'README.md'))
    assert.ok(readFileSync(join(dir, f)).equals(readFileSync(join(cli, f))), `${f} differs between the page's archive and the CLI`);
  JSON.parse(readFileSync(join(dir, 'prune-report.json'), 'utf8'));

  // The tensors larger than one 8 MiB piece arrive whole (the untouched embedding and LM head equal the source).
  const index = JSON.parse(readFileSync(join(dir, 'model.safetensors.index.json'), 'utf8')).weight_map;
  for (const t of ['model.embed_tokens.weight', 'lm_head.weight']) {
    const got = tensorOf(join(dir, index[t]), t);
    assert.equal(got.length, generated.tensorBytes.get(t).length);
    assert.ok(got.equals(generated.tensorBytes.get(t)), `${t} (${got.length} bytes) byte for byte`);
  }
  rmSync(cli, { recursive: true, force: true });
  // The test-side reader is no pushover: the same archive without its central directory is refused.
  const zip = readFileSync(zipPath);
  assert.throws(() => readZip(zip.subarray(0, zip.length - 200)), /central-directory|ZIP64|central directory/);
  assert.deepEqual(b.consoleErrors, []);
  assert.deepEqual(b.foreignRequests(BASE), []);
});

test('cancel mid-export: the download fails (no readable archive is left), and the next export completes', { timeout: 180_000 }, async () => {
  await loadGenerated();
  const errorsBefore = b.consoleErrors.length;
  // Slow every read of the dropped files from the test side, so Cancel lands mid-archive.
  await b.page.evaluate(() => {
    const original = Blob.prototype.arrayBuffer;
    window.__restoreReads = () => (Blob.prototype.arrayBuffer = original);
    Blob.prototype.arrayBuffer = async function () {
      await new Promise((r) => setTimeout(r, 150));
      return original.call(this);
    };
  });
  const btn = b.page.getByTestId('export-target').locator('[data-value="downloads"]');
  await btn.click();
  const started = b.page.waitForEvent('download', { timeout: 30_000 });
  await b.page.getByTestId('export-button').click();
  const d = await started;
  await b.page.locator('[data-testid="export-progress"][data-phase="export"]').waitFor({ timeout: 30_000 });
  await b.page.getByTestId('export-cancel').click();
  const stopped = b.page.getByTestId('export-stopped');
  await stopped.waitFor({ timeout: 20_000 });
  assert.match(await stopped.innerText(), /cancelled/i);
  assert.equal(await b.page.getByTestId('export-done').count(), 0, 'no success notice after cancel');
  assert.notEqual(await d.failure(), null, 'the browser marks the cut-short download as failed');
  await b.page.evaluate(() => window.__restoreReads());

  const { names } = await exportZip(b.page, join(ARTIFACTS, 'export-many-shards-after-cancel'), { timeout: 120_000, artifacts: ARTIFACTS });
  assert.ok(names.length >= 40);
  assert.equal(await b.page.getByTestId('export-stopped').count(), 0, 'the cancelled notice is cleared by the next export');
  assert.deepEqual(b.consoleErrors.slice(errorsBefore), []);
});

test('the same checkpoint exported into a picked folder: every file in the folder has the CLI bytes', { timeout: 180_000 }, async () => {
  await b.page.goto(`${BASE}/`);
  await b.page.evaluate(async () => (await navigator.storage.getDirectory()).removeEntry('picked', { recursive: true }).catch(() => undefined));
  await loadGenerated();
  await b.page.getByTestId('export-target').locator('[data-value="folder"]').click();
  await b.page.getByTestId('export-button').click();
  await b.page.getByTestId('export-done').waitFor({ timeout: 120_000 });
  // What the user finds in the folder they picked, read back file by file.
  const files = await b.page.evaluate(async () => {
    const picked = await (await navigator.storage.getDirectory()).getDirectoryHandle('picked');
    const out = {};
    for await (const [folder, dir] of picked.entries()) {
      out[folder] = {};
      for await (const [name, fh] of dir.entries()) {
        const bytes = new Uint8Array(await (await fh.getFile()).arrayBuffer());
        let s = '';
        for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
        out[folder][name] = btoa(s);
      }
    }
    return out;
  });
  const folders = Object.keys(files);
  assert.equal(folders.length, 1, `one export folder (${folders})`);
  assert.match(folders[0], /-pruned-3$/);
  const got = Object.fromEntries(Object.entries(files[folders[0]]).map(([n, b64]) => [n, Buffer.from(b64, 'base64')]));
  const cli = join(ARTIFACTS, 'cli-many-shards-k3-folder');
  const cliFiles = cliExport(cli);
  assert.deepEqual(Object.keys(got).sort(), cliFiles, 'the folder holds the files the CLI writes, and no EXPORT_INCOMPLETE');
  for (const f of cliFiles.filter((f) => f !== 'prune-report.json' && f !== 'README.md'))
    assert.ok(got[f].equals(readFileSync(join(cli, f))), `${f} differs between the picked folder and the CLI`);
  const index = JSON.parse(got['model.safetensors.index.json'].toString('utf8')).weight_map;
  const embed = got[index['model.embed_tokens.weight']];
  assert.ok(embed.length > 8 * 1024 * 1024, 'a shard larger than one 8 MiB piece went through the folder writer');
  rmSync(cli, { recursive: true, force: true });
});
