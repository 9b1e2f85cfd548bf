// Faults and bad input in the page, met the way a user meets them: the browser API that fails is stubbed from the test
// side (IndexedDB put, the picked folder's writable), or the files themselves are damaged or changed on disk. Each
// fault gets one message naming the file or the step, and nothing already stored or exported is lost.
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { baseUrl, openBrowser } from './browser.mjs';
import { fixtureFiles, loadFixture, summaryOf } from './fixtures.mjs';

const BASE = baseUrl();
const PICKED = 'picked-faults';
const TMP = mkdtempSync(join(tmpdir(), 'moe-prune-faults-e2e-'));
let b;

before(async () => {
  b = await openBrowser();
  b.page.on('dialog', (d) => void d.accept());
  // The folder picker is a native dialog: an origin-private folder stands in for the one the user picks.
  await b.page.addInitScript((picked) => {
    window.showDirectoryPicker = async () => (await navigator.storage.getDirectory()).getDirectoryHandle(picked, { create: true });
  }, PICKED);
});
after(async () => {
  await b?.close();
  rmSync(TMP, { recursive: true, force: true });
});

/** A copy of a fixture's files in a folder of its own (to damage, or to change on disk while the page holds them). */
function copyFixture(name, edit = () => {}) {
  const dir = mkdtempSync(join(TMP, `${name}-`));
  for (const f of fixtureFiles(name)) cpSync(f, join(dir, f.split('/').pop()));
  edit(dir);
  return dir;
}
const filesIn = (dir) => readdirSync(dir).sort().map((f) => join(dir, f));

/** Overwrites element `index` of an F32 tensor in a shard on disk. */
function pokeF32(dir, shard, tensor, index, value) {
  const path = join(dir, shard);
  const buf = readFileSync(path);
  const n = Number(buf.readBigUInt64LE(0));
  const t = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'))[tensor];
  assert.equal(t.dtype, 'F32');
  buf.writeFloatLE(value, 8 + n + t.data_offsets[0] + 4 * index);
  writeFileSync(path, buf);
}

async function freshPage() {
  await b.page.goto(`${BASE}/`);
  const rows = b.page.getByTestId('stored-model');
  await b.page.getByTestId('stored-models').waitFor();
  // The list loads from IndexedDB after the first render, together with the usage line: wait for that.
  await b.page.getByTestId('storage-usage').waitFor();
  while ((await rows.count()) > 0) {
    const id = await rows.first().getAttribute('data-id');
    await rows.first().getByTestId('stored-delete').click();
    await b.page.locator(`[data-testid="stored-model"][data-id="${id}"]`).waitFor({ state: 'detached' });
  }
}

async function waitReady() {
  await b.page.locator('[data-testid="plan-panel"][data-ready="true"]').waitFor({ timeout: 30_000 });
}

const banner = () => b.page.getByTestId('error-banner').last();
const bannerText = () => banner().locator('.banner-text').innerText();

test('storage quota exhausted mid-ingest: the file is named, the earlier stored model stays listed and opens', { timeout: 90_000 }, async () => {
  const { page } = b;
  await freshPage();
  await loadFixture(page, 'phimoe');
  await page.getByTestId('store-button').click();
  await page.getByTestId('notice').filter({ hasText: 'is stored in this browser' }).waitFor({ timeout: 60_000 });
  // The list refreshes after the notice: wait for the stored row itself.
  const keptRow = page.locator('[data-testid="stored-model"][data-complete="true"]');
  await keptRow.waitFor();
  const kept = await keptRow.getAttribute('data-id');
  assert.ok(kept);

  // From now on IndexedDB takes three more chunk records, then refuses with the browser's quota error.
  await page.evaluate(() => {
    const put = IDBObjectStore.prototype.put;
    let chunks = 0;
    IDBObjectStore.prototype.put = function (value, key) {
      if ((value instanceof Blob || value instanceof ArrayBuffer) && ++chunks > 3) throw new DOMException('The quota has been exceeded.', 'QuotaExceededError');
      return put.call(this, value, key);
    };
  });
  await loadFixture(page, 'olmoe');
  await page.getByTestId('store-button').click();
  await banner().waitFor({ timeout: 60_000 });
  const text = await bannerText();
  assert.equal(await banner().getAttribute('data-code'), 'StorageFull');
  assert.match(text, /the browser's storage for this page is full/);
  const names = fixtureFiles('olmoe').map((f) => f.split('/').pop());
  assert.ok(names.some((n) => text.startsWith(`${n}:`)), `the message names the file being stored: ${text}`);
  assert.doesNotMatch(text, /\[StorageFull\]/, 'no internal code on the page');

  // The earlier model is untouched: listed complete, and it opens from the store after a reload (stub gone).
  await page.locator(`[data-testid="stored-model"][data-id="${kept}"][data-complete="true"]`).waitFor();
  await page.locator('[data-testid="stored-model"][data-complete="false"]').waitFor();
  await page.reload();
  await page.locator(`[data-testid="stored-model"][data-id="${kept}"]`).getByTestId('stored-open').click();
  await summaryOf(page, 'phimoe').waitFor();
  assert.equal(await page.getByTestId('mode').innerText(), 'Stored in this browser');
});

test('a shard changed on disk while the page reads it in place is named', { timeout: 90_000 }, async () => {
  const { page } = b;
  const dir = copyFixture('mixtral');
  await freshPage();
  await page.getByTestId('model-files').setInputFiles(filesIn(dir));
  await summaryOf(page, 'mixtral').waitFor();
  await waitReady();
  await page.locator('[data-testid="eval-panel"][data-available="true"]').waitFor({ timeout: 10_000 });
  // The user rewrites a shard (other size, new time) after dropping it; calibration reads every layer's weights.
  const shard = join(dir, 'model-00003-of-00003.safetensors');
  writeFileSync(shard, Buffer.concat([readFileSync(shard), Buffer.alloc(64)]));
  await page.getByTestId('calib-file').setInputFiles({ name: 'calib.txt', mimeType: 'text/plain', buffer: Buffer.from('the river ran past the mill. '.repeat(40)) });
  await page.getByTestId('calib-count').fill('2');
  await page.getByTestId('calib-length').fill('16');
  await page.getByTestId('calib-run').click();
  const err = page.getByTestId('calib-error');
  await err.waitFor({ timeout: 30_000 });
  assert.match(await err.innerText(), /^model-00003-of-00003\.safetensors: the file changed on disk \(or was moved\) after it was dropped/);
});

test('a file changed on disk before it is stored is named, and nothing half-read is marked complete', { timeout: 90_000 }, async () => {
  const { page } = b;
  const dir = copyFixture('qwen2_moe');
  await freshPage();
  await page.getByTestId('model-files').setInputFiles(filesIn(dir));
  await summaryOf(page, 'qwen2_moe').waitFor();
  const shard = readdirSync(dir).find((f) => f.endsWith('.safetensors'));
  writeFileSync(join(dir, shard), Buffer.concat([readFileSync(join(dir, shard)), Buffer.alloc(64)]));
  await page.getByTestId('store-button').click();
  await banner().waitFor({ timeout: 60_000 });
  const text = await bannerText();
  assert.ok(text.startsWith(`${shard}: `), `the message names the changed file: ${text}`);
  assert.equal(await banner().getAttribute('data-code'), 'FileChanged');
  assert.match(text, /the file changed on disk \(or was moved\) after it was selected, so the browser cannot copy it/);
  assert.equal(await page.locator('[data-testid="stored-model"][data-complete="true"]').count(), 0);
});

test('disk full while exporting into a picked folder: the shard is named, the unfinished folder removed, an earlier export kept', { timeout: 90_000 }, async () => {
  const { page } = b;
  await freshPage();
  await page.evaluate((picked) => navigator.storage.getDirectory().then((r) => r.removeEntry(picked, { recursive: true })).catch(() => undefined), PICKED);
  await loadFixture(page, 'mixtral');
  await waitReady();
  const setKeep = async (k) => {
    await page.getByTestId('keep-input').fill(String(k));
    await page.locator(`[data-testid="heatmap"][data-clusters="${k}"]`).waitFor({ timeout: 5_000 });
  };
  const target = page.getByTestId('export-target').locator('[data-value="folder"]');
  await setKeep(3);
  await target.click();
  await page.locator('[data-testid="export-target"] [data-value="folder"][aria-checked="true"]').waitFor();
  await page.getByTestId('export-button').click();
  await page.getByTestId('export-done').waitFor({ timeout: 30_000 });
  const listing = () =>
    page.evaluate(async (picked) => {
      const root = await (await navigator.storage.getDirectory()).getDirectoryHandle(picked);
      const out = {};
      for await (const [name, h] of root.entries()) {
        out[name] = {};
        for await (const [f, fh] of h.entries()) out[name][f] = new Uint8Array(await (await fh.getFile()).arrayBuffer()).reduce((s, x) => (s * 31 + x) >>> 0, 0);
      }
      return out;
    }, PICKED);
  const before = await listing();
  assert.equal(Object.keys(before).length, 1);
  assert.match(Object.keys(before)[0], /-pruned-3$/);

  // The disk takes 30 kB more, then every write fails as Chromium reports a full disk.
  await page.evaluate(() => {
    const write = FileSystemWritableFileStream.prototype.write;
    let left = 30_000;
    FileSystemWritableFileStream.prototype.write = async function (data) {
      const n = typeof data === 'string' ? data.length : (data.byteLength ?? data.size ?? 0);
      if ((left -= n) < 0) throw new DOMException('The operation failed because the disk is full.', 'QuotaExceededError');
      return write.call(this, data);
    };
  });
  await setKeep(2);
  await page.getByTestId('export-button').click();
  await banner().waitFor({ timeout: 30_000 });
  const text = await bannerText();
  assert.match(text, /^[^/]+-pruned-2\/model-0000\d-of-00003\.safetensors: the disk is full; the unfinished export folder is removed/);
  assert.equal(await page.getByTestId('export-done').count(), 0, 'no success notice for the failed export');
  assert.deepEqual(await listing(), before, 'the unfinished folder is removed and the earlier export is byte-identical');
});

test('bad input in the page: config counts, tokenizer.json, a text shorter than one window, NaN weights', { timeout: 120_000 }, async () => {
  const { page } = b;
  // config.json says 3 decoder layers; the shards hold 2.
  const badConfig = copyFixture('mixtral', (dir) => {
    const p = join(dir, 'config.json');
    writeFileSync(p, JSON.stringify({ ...JSON.parse(readFileSync(p, 'utf8')), num_hidden_layers: 3 }));
  });
  await freshPage();
  await page.getByTestId('model-files').setInputFiles(filesIn(badConfig));
  await banner().waitFor();
  assert.match(await bannerText(), /^config\.json: num_hidden_layers is 3 but the tensors hold 2 decoder layer\(s\)/);

  // No tokenizer.json: calibration and perplexity say what is missing; a malformed one is named when it is read.
  const noTok = copyFixture('mixtral', (dir) => rmSync(join(dir, 'tokenizer.json')));
  await page.goto(`${BASE}/`);
  await page.getByTestId('model-files').setInputFiles(filesIn(noTok));
  await summaryOf(page, 'mixtral').waitFor();
  assert.match(await page.getByTestId('eval-unavailable').innerText(), /tokenizer\.json/);
  const badTok = copyFixture('mixtral', (dir) => writeFileSync(join(dir, 'tokenizer.json'), '{"version": "1.0", "model": {'));
  await page.goto(`${BASE}/`);
  await page.getByTestId('model-files').setInputFiles(filesIn(badTok));
  await waitReady();
  await page.locator('[data-testid="eval-panel"][data-available="true"]').waitFor({ timeout: 10_000 });
  const calib = async (name, text, length) => {
    await page.getByTestId('calib-file').setInputFiles({ name, mimeType: 'text/plain', buffer: Buffer.from(text) });
    await page.getByTestId('calib-text-name').filter({ hasText: name }).waitFor();
    await page.getByTestId('calib-count').fill('2');
    await page.getByTestId('calib-length').fill(String(length));
    await page.getByTestId('calib-run').click();
    const err = page.getByTestId('calib-error');
    await err.waitFor({ timeout: 30_000 });
    return err.innerText();
  };
  assert.match(await calib('calib.txt', 'the river ran past the mill. '.repeat(40), 16), /^tokenizer\.json: not valid JSON/);

  // A text shorter than one window: both numbers and the file.
  await page.goto(`${BASE}/`);
  await loadFixture(page, 'mixtral');
  await waitReady();
  await page.locator('[data-testid="eval-panel"][data-available="true"]').waitFor({ timeout: 10_000 });
  assert.match(await calib('tiny.txt', 'It is a truth.', 64), /^tiny\.txt: the text has \d+ tokens, fewer than one window of 64/);

  // A NaN weight: perplexity names the tensor and its layer instead of showing NaN.
  const nan = copyFixture('mixtral', (dir) => pokeF32(dir, 'model-00003-of-00003.safetensors', 'model.layers.1.self_attn.o_proj.weight', 0, Number.NaN));
  await page.goto(`${BASE}/`);
  await page.getByTestId('model-files').setInputFiles(filesIn(nan));
  await waitReady();
  await page.locator('[data-testid="eval-panel"][data-available="true"]').waitFor({ timeout: 10_000 });
  await page.getByTestId('heldout-file').setInputFiles({ name: 'heldout.txt', mimeType: 'text/plain', buffer: Buffer.from('She walked to the village and bought bread. '.repeat(20)) });
  await page.getByTestId('heldout-text-name').filter({ hasText: 'heldout.txt' }).waitFor();
  await page.getByTestId('ppl-measure').click();
  const pplErr = page.locator('[data-testid="ppl-error"], [data-testid="eval-ppl-error"]').first();
  await pplErr.waitFor({ timeout: 30_000 });
  assert.match(
    await pplErr.innerText(),
    /model-00003-of-00003\.safetensors: weight "model\.layers\.1\.self_attn\.o_proj\.weight" \(layer 1\) holds 1 NaN value\(s\) \(the first at element 0\)/,
  );
  assert.equal(await page.locator('[data-testid="ppl-after"][data-value="NaN"]').count(), 0);
  assert.deepEqual(b.foreignRequests(BASE), []);
});
