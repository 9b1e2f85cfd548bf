// The IndexedDB weight store seen from the page: ingest with progress, byte-identical read-back, survive
// a reload, resume an ingest interrupted by a reload, cancel, delete. Each test starts from an empty store; what was
// stored is read by the test itself from IndexedDB, and slow ingests come from a test-side brake on IndexedDB.
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { test } from 'node:test';
import { baseUrl, browserPerFile } from './browser.mjs';
import { fixtureDir, fixtureFiles, loadFixture, summaryOf, tensorBytesOnDisk } from './fixtures.mjs';
import { writeManyShardCheckpoint } from './many-shards.mjs';
import { dropFolderAsHandle, installWriteBrake, slowWrites, storedModels, storedTensor } from './store-probe.mjs';

const BASE = baseUrl();

const b = browserPerFile(async (b) => {
  b.page.on('dialog', (d) => void d.accept());
  await installWriteBrake(b.page);
});

/**
 * Every test starts from an empty store: the page's databases and origin-private files are deleted from a page of the
 * same origin that is not the app (the app keeps its databases open), then the app is loaded.
 */
async function fresh(page) {
  await page.route(`${BASE}/__blank`, (r) => r.fulfill({ contentType: 'text/html', body: '<!doctype html><link rel="icon" href="data:,">' }));
  await page.goto(`${BASE}/__blank`);
  await page.evaluate(async () => {
    const gone = (name) =>
      new Promise((ok, fail) => {
        const r = indexedDB.deleteDatabase(name);
        r.onsuccess = () => ok();
        r.onerror = () => fail(r.error);
        r.onblocked = () => undefined; // the app page just left may hold it open until the browser evicts it
      });
    for (const { name } of await indexedDB.databases()) await gone(name);
    const root = await navigator.storage.getDirectory();
    for await (const name of root.keys()) await root.removeEntry(name, { recursive: true });
  });
  await page.goto(`${BASE}/`);
}

const models = (page) => storedModels(page);
const weightMap = (name) => JSON.parse(readFileSync(join(fixtureDir(name), 'model.safetensors.index.json'), 'utf8')).weight_map;

async function assertTensorsMatchDisk(page, id, fixture, names) {
  for (const t of names) {
    const got = await storedTensor(page, id, t);
    assert.ok(got.equals(tensorBytesOnDisk(fixture, t)), `${t} read back from the store differs from the file on disk`);
  }
}

/** Loads a fixture and stores it at full speed; returns its stored id. */
async function storeFixture(page, fixture) {
  await loadFixture(page, fixture);
  await page.getByTestId('store-button').click();
  await page.getByTestId('notice').filter({ hasText: 'is stored in this browser' }).waitFor({ timeout: 60_000 });
  return (await models(page)).find((m) => m.complete).id; // the newest complete one
}

test('ingest shows per-file and overall progress, then reads tensors back byte-identical', async () => {
  const { page } = b;
  await fresh(page);
  await loadFixture(page, 'mixtral');
  await slowWrites(page, 300);
  await page.getByTestId('store-button').click();
  const progress = page.getByTestId('ingest-progress');
  await progress.getByTestId('ingest-file').waitFor();
  assert.match(await progress.getByTestId('ingest-file').innerText(), /\.json|\.safetensors/);
  await page.waitForFunction(() => /B\/s · .+ left/.test(document.querySelector('[data-testid="ingest-overall"]')?.textContent ?? ''));
  assert.match(await progress.innerText(), /File \d+ of 8/);
  assert.equal(await page.getByTestId('ingest-cancel').isVisible(), true);
  await page.getByTestId('notice').filter({ hasText: 'is stored in this browser' }).waitFor({ timeout: 60_000 });
  assert.equal(await progress.count(), 0);
  assert.equal(await page.getByTestId('mode').innerText(), 'Stored in this browser');

  const [m] = await models(page);
  assert.equal(m.complete, true);
  assert.equal(m.storedBytes, m.totalBytes);
  await assertTensorsMatchDisk(page, m.id, 'mixtral', Object.keys(weightMap('mixtral')));
});

test('a tensor spanning several 8 MiB store chunks reads back byte-identical', { timeout: 120_000 }, async () => {
  const { page } = b;
  const dir = join(process.env.E2E_ARTIFACTS ?? tmpdir(), 'store-many-shards');
  const gen = writeManyShardCheckpoint(dir);
  try {
    await fresh(page);
    await page.getByTestId('model-files').setInputFiles(readdirSync(dir).map((f) => join(dir, f)));
    await summaryOf(page, 'mixtral').waitFor({ timeout: 30_000 });
    await page.getByTestId('store-button').click();
    await page.getByTestId('notice').filter({ hasText: 'is stored in this browser' }).waitFor({ timeout: 90_000 });
    const [m] = await models(page);
    assert.equal(m.storedBytes, m.totalBytes);
    for (const t of ['model.embed_tokens.weight', 'lm_head.weight']) {
      const got = await storedTensor(page, m.id, t);
      assert.ok(got.length > 8 * 1024 * 1024 && got.equals(gen.tensorBytes.get(t)), `${t} (${got.length} bytes) byte for byte`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a stored model survives a reload and opens from the store', async () => {
  const { page } = b;
  await fresh(page);
  const id = await storeFixture(page, 'mixtral');
  await page.reload();
  const row = page.getByTestId('stored-model');
  await row.first().waitFor();
  assert.equal(await row.count(), 1);
  assert.equal(await row.first().getAttribute('data-complete'), 'true');
  await row.first().getByTestId('stored-open').click();
  await summaryOf(page, 'mixtral').waitFor();
  assert.equal(await page.getByTestId('mode').innerText(), 'Stored in this browser');
  assert.equal(await page.locator('[data-testid="stored-model"].active').getAttribute('data-id'), id);
  // The page reads its weights from the store: the plan panel computes router distances from them.
  await page.locator('[data-testid="plan-panel"][data-ready="true"]').waitFor({ timeout: 20_000 });
  await assertTensorsMatchDisk(page, id, 'mixtral', ['lm_head.weight']);
});

test('an ingest interrupted by a reload resumes where it stopped when the same files are selected again', async () => {
  const { page } = b;
  await fresh(page);
  await loadFixture(page, 'qwen3_moe');
  await slowWrites(page, 400);
  await page.getByTestId('store-button').click();
  await page.waitForFunction(() => {
    const bar = document.querySelector('[data-testid="ingest-overall-bar"]');
    return bar && Number(bar.getAttribute('data-done')) > 0.3 * Number(bar.getAttribute('data-total'));
  }, undefined, { timeout: 60_000 });
  await page.screenshot({ path: join(process.env.E2E_ARTIFACTS ?? '.', 'ingest-progress.png') });
  await page.reload();

  await page.locator('[data-testid="stored-model"][data-complete="false"]').waitFor();
  const partial = (await models(page)).find((x) => !x.complete);
  assert.ok(partial.storedBytes > 0.3 * partial.totalBytes && partial.storedBytes < partial.totalBytes, JSON.stringify(partial));
  assert.match(await page.getByTestId('stored-partial').innerText(), /Incomplete: .+ of .+ stored/);

  await loadFixture(page, 'qwen3_moe');
  const button = page.getByTestId('store-button');
  assert.match(await button.innerText(), /^Resume storing \(.+ left\)$/);
  await slowWrites(page, 50);
  await button.click();
  await page.waitForFunction(() => /Resumed: .+ were already stored/.test(document.querySelector('[data-testid="ingest-progress"]')?.textContent ?? ''));
  await page.getByTestId('notice').filter({ hasText: 'resumed where it stopped' }).waitFor({ timeout: 60_000 });

  const all = await models(page);
  const done = all.find((x) => x.id === partial.id);
  assert.equal(done.complete, true);
  assert.equal(done.storedBytes, done.totalBytes);
  assert.equal(all.length, 1, 'the resume continued the same record instead of making a copy');
  await assertTensorsMatchDisk(page, done.id, 'qwen3_moe', Object.keys(weightMap('qwen3_moe')));
});

test('cancel stops an ingest without an error and leaves a resumable record', async () => {
  const { page } = b;
  await fresh(page);
  await loadFixture(page, 'olmoe');
  await slowWrites(page, 400);
  await page.getByTestId('store-button').click();
  await page.getByTestId('ingest-file').waitFor();
  await page.getByTestId('ingest-cancel').click();
  await page.getByTestId('ingest-progress').waitFor({ state: 'detached' });
  assert.equal(await page.getByTestId('error-banner').count(), 0);
  await page.locator('[data-testid="stored-model"][data-complete="false"]').waitFor();
  assert.match(await page.getByTestId('store-button').innerText(), /^Resume storing/);
  const [m] = await models(page);
  assert.ok(m.storedBytes < m.totalBytes, 'cancel stopped the copy before the end');
});

test('the stored copy is independent of the source files: it reads back after they are changed and deleted', async () => {
  const { page } = b;
  const dir = mkdtempSync(join(tmpdir(), 'moe-prune-src-'));
  try {
    const copies = fixtureFiles('phimoe').map((p) => {
      const to = join(dir, basename(p));
      copyFileSync(p, to);
      return to;
    });
    await fresh(page);
    await page.getByTestId('model-files').setInputFiles(copies);
    await summaryOf(page, 'phimoe').waitFor();
    await page.getByTestId('store-button').click();
    await page.getByTestId('notice').filter({ hasText: 'is stored in this browser' }).waitFor({ timeout: 60_000 });
    const [{ id }] = await models(page);
    // Overwrite every shard with other bytes of the same size, then delete the folder.
    for (const p of copies.filter((p) => p.endsWith('.safetensors'))) writeFileSync(p, Buffer.alloc(readFileSync(p).length, 0x5a));
    rmSync(dir, { recursive: true, force: true });
    await page.reload();
    await assertTensorsMatchDisk(page, id, 'phimoe', Object.keys(weightMap('phimoe')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('delete removes stored models and their bytes', async () => {
  const { page } = b;
  await fresh(page);
  await storeFixture(page, 'mixtral');
  await storeFixture(page, 'phimoe');
  const before = await models(page);
  assert.equal(before.length, 2);
  for (const m of before) {
    await page.locator(`[data-testid="stored-model"][data-id="${m.id}"]`).getByTestId('stored-delete').click();
    await page.locator(`[data-testid="stored-model"][data-id="${m.id}"]`).waitFor({ state: 'detached' });
  }
  assert.deepEqual(await models(page), []);
  const leftover = await page.evaluate(
    () =>
      new Promise((ok, fail) => {
        const r = indexedDB.open('moe-prune-studio');
        r.onerror = () => fail(r.error);
        r.onsuccess = () => {
          const q = r.result.transaction('weights').objectStore('weights').count();
          q.onsuccess = () => ok(q.result);
          q.onerror = () => fail(q.error);
        };
      }),
  );
  assert.equal(leftover, 0);
  assert.match(await page.getByTestId('stored-models').innerText(), /Nothing stored/);
  assert.deepEqual(b.foreignRequests(BASE), []);
});

/** File handles kept for resuming an unfinished ingest (the 'ingest:' entries of the page's handle database). */
const savedHandleCount = (page) =>
  page.evaluate(
    () =>
      new Promise((ok, fail) => {
        const r = indexedDB.open('moe-prune-studio-handles');
        r.onupgradeneeded = () => r.result.createObjectStore('handles');
        r.onerror = () => fail(r.error);
        r.onsuccess = () => {
          const q = r.result.transaction('handles').objectStore('handles').count(IDBKeyRange.bound('ingest:', 'ingest:\uffff'));
          q.onsuccess = () => (ok(q.result), r.result.close());
          q.onerror = () => fail(q.error);
        };
      }),
  );

const dropAsHandle = (page, fixture) => dropFolderAsHandle(page, fixture, fixtureFiles(fixture));

test('an ingest interrupted by a reload resumes from the dropped folder itself, with no new drop', async () => {
  const { page } = b;
  const fixture = 'qwen2_moe';
  await fresh(page);
  // Chromium hands a dropped folder over as a handle; the test stands in for it (see dropFolderAsHandle).
  await dropAsHandle(page, fixture);
  await summaryOf(page, 'qwen2_moe').waitFor();
  assert.equal(await page.getByTestId('model-name').innerText(), fixture, 'named after the dropped folder');
  await slowWrites(page, 400);
  await page.getByTestId('store-button').click();
  await page.waitForFunction(() => {
    const bar = document.querySelector('[data-testid="ingest-overall-bar"]');
    return bar && Number(bar.getAttribute('data-done')) > 0.3 * Number(bar.getAttribute('data-total'));
  }, undefined, { timeout: 60_000 });
  assert.equal(await savedHandleCount(page), 1, 'the handles of the unfinished ingest are kept');
  await page.reload();

  const row = page.locator('[data-testid="stored-model"][data-complete="false"]');
  await row.waitFor();
  assert.match(await row.getByTestId('stored-partial').innerText(), /Resume reads the same files again/);
  const [partial] = await models(page);
  assert.ok(partial.storedBytes > 0 && partial.storedBytes < partial.totalBytes, JSON.stringify(partial));
  await row.getByTestId('stored-resume').click();
  await page.getByTestId('notice').filter({ hasText: 'resumed where it stopped' }).waitFor({ timeout: 60_000 });
  assert.equal(await page.getByTestId('error-banner').count(), 0);
  const [done] = await models(page);
  assert.deepEqual([done.id, done.complete, done.storedBytes], [partial.id, true, partial.totalBytes], 'the same record was completed');
  assert.equal(await page.getByTestId('mode').innerText(), 'Stored in this browser');
  await assertTensorsMatchDisk(page, done.id, fixture, Object.keys(weightMap(fixture)));
  assert.equal(await savedHandleCount(page), 0, 'handles are forgotten once the copy is complete');
  assert.equal(await page.getByTestId('stored-resume').count(), 0);
});

test('a checkpoint read in place is listed after a reload and opens again from the same files, copying nothing', async () => {
  const { page } = b;
  const fixture = 'deepseek_v2';
  await fresh(page);
  await dropAsHandle(page, fixture);
  await summaryOf(page, 'deepseek_v2').waitFor();
  await page.locator(`[data-testid="recent-model"]`).filter({ hasText: fixture }).waitFor();
  await page.reload();

  const row = page.locator('[data-testid="recent-model"]').filter({ hasText: fixture });
  await row.waitFor();
  assert.match(await row.innerText(), /\d+ files · .+ · \d+ experts × \d+ layers/);
  await page.getByTestId('recent-in-place').screenshot({ path: join(process.env.E2E_ARTIFACTS ?? '.', 'recent-in-place.png') });
  await row.getByTestId('recent-open').click();
  await summaryOf(page, 'deepseek_v2').waitFor();
  assert.equal(await page.getByTestId('mode').innerText(), 'Reading the dropped files · nothing copied');
  // Its weights are read from the reopened files: the plan panel computes the router distances from them.
  await page.locator('[data-testid="plan-panel"][data-ready="true"]').waitFor({ timeout: 20_000 });
  assert.deepEqual(await models(page), [], 'nothing was copied into the store');
  assert.equal(await page.locator('[data-testid="recent-model"]').filter({ hasText: fixture }).count(), 1, 'reopening does not list it twice');

  // The file changed on disk since: refused by name, the page stays usable, Forget removes the entry.
  await page.evaluate(async (folder) => {
    const dir = await (await navigator.storage.getDirectory()).getDirectoryHandle(folder);
    const w = await (await dir.getFileHandle('config.json')).createWritable();
    await w.write('{}');
    await w.close();
  }, fixture);
  await page.reload();
  await row.getByTestId('recent-open').click();
  const banner = page.getByTestId('error-banner');
  await banner.waitFor();
  assert.match(await banner.innerText(), /config\.json.*changed on disk/s);
  await row.getByTestId('recent-forget').click();
  await row.waitFor({ state: 'detached' });
  assert.deepEqual(b.foreignRequests(BASE), []);
});
