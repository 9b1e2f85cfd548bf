// The IndexedDB weight store seen from the page: ingest with progress, byte-identical read-back, survive
// a reload, resume an ingest interrupted by a reload, cancel, delete.
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, before, test } from 'node:test';
import { baseUrl, openBrowser } from './browser.mjs';
import { fixtureDir, fixtureFiles, loadFixture, summaryOf, tensorBytesOnDisk } from './fixtures.mjs';

let b;
const BASE = baseUrl();
// 4 KiB chunks make the ~100-200 kB fixtures span dozens of chunks; slowIngest pauses after each chunk write.
const url = (slow) => `${BASE}/?test=1&chunk=4096&slowIngest=${slow}`;

before(async () => {
  b = await openBrowser();
  b.page.on('dialog', (d) => void d.accept());
});
after(async () => {
  await b?.close();
});

const models = (page) => page.evaluate(() => window.__moePrune.models());
const readTensor = (page, id, name) => page.evaluate(([id, name]) => window.__moePrune.readTensor(id, name), [id, name]);
const weightMap = (name) => JSON.parse(readFileSync(join(fixtureDir(name), 'model.safetensors.index.json'), 'utf8')).weight_map;

async function assertTensorsMatchDisk(page, id, fixture, names) {
  for (const t of names) {
    const got = Buffer.from(await readTensor(page, id, t), 'base64');
    assert.ok(got.equals(tensorBytesOnDisk(fixture, t)), `${t} read back from the store differs from the file on disk`);
  }
}

test('ingest shows per-file and overall progress, then reads tensors back byte-identical', async () => {
  const { page } = b;
  await page.goto(url(40));
  await loadFixture(page, 'mixtral');
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
  const wm = weightMap('mixtral');
  const names = Object.keys(wm);
  // One tensor per shard, plus the embedding (16 kB, so it spans four 4 KiB chunks).
  const sample = [...new Set(Object.values(wm))].map((shard) => names.find((n) => wm[n] === shard));
  sample.push('model.embed_tokens.weight');
  await assertTensorsMatchDisk(page, m.id, 'mixtral', sample);
});

test('a stored model survives a reload and opens from the store', async () => {
  const { page } = b;
  await page.reload();
  const row = page.getByTestId('stored-model');
  await row.first().waitFor();
  assert.equal(await row.count(), 1);
  assert.equal(await row.first().getAttribute('data-complete'), 'true');
  await row.first().getByTestId('stored-open').click();
  await summaryOf(page, 'mixtral').waitFor();
  assert.equal(await page.getByTestId('mode').innerText(), 'Stored in this browser');
  await assertTensorsMatchDisk(page, null, 'mixtral', ['lm_head.weight']);
});

test('an ingest interrupted by a reload resumes where it stopped when the same files are selected again', async () => {
  const { page } = b;
  await page.goto(url(120));
  await loadFixture(page, 'qwen3_moe');
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

  await page.goto(url(5));
  await loadFixture(page, 'qwen3_moe');
  const button = page.getByTestId('store-button');
  assert.match(await button.innerText(), /^Resume storing \(.+ left\)$/);
  await button.click();
  await page.waitForFunction(() => /Resumed: .+ were already stored/.test(document.querySelector('[data-testid="ingest-progress"]')?.textContent ?? ''));
  await page.getByTestId('notice').filter({ hasText: 'resumed where it stopped' }).waitFor({ timeout: 60_000 });

  const done = (await models(page)).find((x) => x.id === partial.id);
  assert.equal(done.complete, true);
  assert.equal(done.storedBytes, done.totalBytes);
  assert.equal((await models(page)).length, 2, 'the resume continued the same record instead of making a copy');
  await assertTensorsMatchDisk(page, done.id, 'qwen3_moe', Object.keys(weightMap('qwen3_moe')));
});

test('cancel stops an ingest without an error and leaves a resumable record', async () => {
  const { page } = b;
  await page.goto(url(100));
  await loadFixture(page, 'olmoe');
  await page.getByTestId('store-button').click();
  await page.getByTestId('ingest-file').waitFor();
  await page.getByTestId('ingest-cancel').click();
  await page.getByTestId('ingest-progress').waitFor({ state: 'detached' });
  assert.equal(await page.getByTestId('error-banner').count(), 0);
  await page.locator('[data-testid="stored-model"][data-complete="false"]').waitFor();
  assert.match(await page.getByTestId('store-button').innerText(), /^Resume storing/);
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
    await page.goto(url(0));
    await page.getByTestId('model-files').setInputFiles(copies);
    await summaryOf(page, 'phimoe').waitFor();
    await page.getByTestId('store-button').click();
    await page.getByTestId('notice').filter({ hasText: 'is stored in this browser' }).waitFor({ timeout: 60_000 });
    const id = await page.evaluate(() => window.__moePrune.current().storedId);
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
  const before = await models(page);
  assert.equal(before.length, 4);
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

/** Drops a fixture's files as a folder handle, as Chromium hands over a dropped folder; an origin-private folder
 * stands in for the user's disk (Playwright's synthetic drops carry no handles). */
async function dropAsHandle(page, fixture) {
  const files = fixtureFiles(fixture).map((p) => ({ name: basename(p), base64: readFileSync(p).toString('base64') }));
  await page.evaluate(async ([folder, files]) => {
    const root = await navigator.storage.getDirectory();
    await root.removeEntry(folder, { recursive: true }).catch(() => undefined);
    const dir = await root.getDirectoryHandle(folder, { create: true });
    for (const f of files) {
      const w = await (await dir.getFileHandle(f.name, { create: true })).createWritable();
      await w.write(Uint8Array.from(atob(f.base64), (c) => c.charCodeAt(0)));
      await w.close();
    }
    await window.__moePrune.dropHandle(dir);
  }, [fixture, files]);
}

const removeHandleFolder = (page, folder) => page.evaluate((folder) => navigator.storage.getDirectory().then((root) => root.removeEntry(folder, { recursive: true })), folder);

test('an ingest interrupted by a reload resumes from the dropped folder itself, with no new drop', async () => {
  const { page } = b;
  const fixture = 'qwen2_moe';
  await page.goto(url(120));
  // Chromium hands a dropped folder over as a handle; an origin-private folder stands in for the user's disk
  // (Playwright's synthetic drops carry no handles).
  await dropAsHandle(page, fixture);
  await summaryOf(page, 'qwen2_moe').waitFor();
  assert.equal((await page.evaluate(() => window.__moePrune.current())).name, fixture, 'named after the dropped folder');
  await page.getByTestId('store-button').click();
  await page.waitForFunction(() => {
    const bar = document.querySelector('[data-testid="ingest-overall-bar"]');
    return bar && Number(bar.getAttribute('data-done')) > 0.3 * Number(bar.getAttribute('data-total'));
  }, undefined, { timeout: 60_000 });
  assert.equal(await savedHandleCount(page), 1, 'the handles of the unfinished ingest are kept');
  await page.goto(url(5));

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
  await removeHandleFolder(page, fixture);
});

test('a checkpoint read in place is listed after a reload and opens again from the same files, copying nothing', async () => {
  const { page } = b;
  const fixture = 'deepseek_v2';
  await page.goto(url(0));
  for (const m of await models(page)) await page.locator(`[data-testid="stored-model"][data-id="${m.id}"]`).getByTestId('stored-delete').click();
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="stored-model"]').length === 0);
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
  await assertTensorsMatchDisk(page, null, fixture, Object.keys(weightMap(fixture)).slice(0, 6));
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
  await removeHandleFolder(page, fixture);
});
