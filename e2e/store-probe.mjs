// What the page stored, read from the test side: IndexedDB opened from page.evaluate (the page's own code is not
// asked), and the browser APIs the store tests slow down or stand in for. Key layout: src/store/records.ts.
import { Buffer } from 'node:buffer';
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';

const DB = 'moe-prune-studio';
const STORE = 'weights';

/** Every stored model: { id, name, complete, totalBytes, storedBytes (bytes of the chunks actually in the store), files }. */
export function storedModels(page) {
  return page.evaluate(
    ([db, store]) =>
      new Promise((ok, fail) => {
        const r = indexedDB.open(db);
        r.onerror = () => fail(r.error);
        r.onsuccess = () => {
          const conn = r.result;
          if (!conn.objectStoreNames.contains(store)) return ok([]), conn.close();
          const s = conn.transaction(store).objectStore(store);
          const keysReq = s.getAllKeys();
          const valsReq = s.getAll();
          valsReq.onerror = () => fail(valsReq.error);
          valsReq.onsuccess = () => {
            const entries = keysReq.result.map((k, i) => [String(k), valsReq.result[i]]);
            const size = (v) => (v instanceof Blob ? v.size : v instanceof ArrayBuffer ? v.byteLength : ArrayBuffer.isView(v) ? v.byteLength : 0);
            const out = entries
              .filter(([k]) => /^model:[^:]+$/.test(k))
              .map(([, rec]) => ({
                id: rec.id,
                name: rec.name,
                complete: rec.complete,
                totalBytes: rec.totalBytes,
                createdAt: rec.createdAt,
                files: rec.files.map((f) => f.name),
                storedBytes: entries.filter(([k]) => k.startsWith(`model:${rec.id}:file:`) && /:chunk:\d+$/.test(k)).reduce((t, [, v]) => t + size(v), 0),
              }))
              .sort((a, b) => b.createdAt - a.createdAt);
            conn.close();
            ok(out);
          };
        };
      }),
    [DB, STORE],
  );
}

/** The stored bytes of one file of model `id`, its chunks joined in order. */
export async function storedFile(page, id, file) {
  const b64 = await page.evaluate(
    ([db, store, id, file]) =>
      new Promise((ok, fail) => {
        const r = indexedDB.open(db);
        r.onerror = () => fail(r.error);
        r.onsuccess = () => {
          const conn = r.result;
          const s = conn.transaction(store).objectStore(store);
          const prefix = `model:${id}:file:${file}:chunk:`;
          const range = IDBKeyRange.bound(prefix, prefix + '\uffff');
          const keysReq = s.getAllKeys(range);
          const valsReq = s.getAll(range);
          valsReq.onerror = () => fail(valsReq.error);
          valsReq.onsuccess = async () => {
            const parts = keysReq.result
              .map((k, i) => [Number(String(k).slice(prefix.length)), valsReq.result[i]])
              .sort((a, b) => a[0] - b[0])
              .map(([, v]) => (v instanceof Blob ? v : new Blob([v])));
            const bytes = new Uint8Array(await new Blob(parts).arrayBuffer());
            conn.close();
            let s2 = '';
            for (let i = 0; i < bytes.length; i += 0x8000) s2 += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
            ok(btoa(s2));
          };
        };
      }),
    [DB, STORE, id, file],
  );
  return Buffer.from(b64, 'base64');
}

/** One tensor's bytes as stored: the shard named by the stored index, parsed here. */
export async function storedTensor(page, id, tensor) {
  const index = JSON.parse((await storedFile(page, id, 'model.safetensors.index.json')).toString('utf8'));
  const shard = index.weight_map[tensor];
  if (!shard) throw new Error(`${tensor} is not in the stored weight map`);
  const buf = await storedFile(page, id, shard);
  const n = Number(buf.readBigUInt64LE(0));
  const t = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'))[tensor];
  return buf.subarray(8 + n + t.data_offsets[0], 8 + n + t.data_offsets[1]);
}

/**
 * Installs, on every page load, a test-side brake on IndexedDB: while `window.__slowWritesMs` is set, the page
 * learns of each finished read-write transaction that much later (the data is committed on time). An ingest then
 * takes long enough to watch, cancel or interrupt by a reload; the product's store code runs unchanged.
 */
export async function installWriteBrake(page) {
  await page.addInitScript(() => {
    const desc = Object.getOwnPropertyDescriptor(IDBTransaction.prototype, 'oncomplete');
    Object.defineProperty(IDBTransaction.prototype, 'oncomplete', {
      configurable: true,
      enumerable: desc.enumerable,
      get() {
        return desc.get.call(this);
      },
      set(fn) {
        const ms = window.__slowWritesMs ?? 0;
        const slowed =
          typeof fn === 'function' && ms > 0 && this.mode === 'readwrite'
            ? function (ev) {
                setTimeout(() => fn.call(this, ev), ms);
              }
            : fn;
        desc.set.call(this, slowed);
      },
    });
  });
}

export const slowWrites = (page, ms) => page.evaluate((ms) => (window.__slowWritesMs = ms), ms);

/**
 * Drops `paths` as one folder named `folder` the way Chromium delivers a dropped folder: a real drop event whose
 * DataTransferItem hands out a FileSystemDirectoryHandle. The folder is written into the origin-private file system
 * (standing in for the user's disk) and `DataTransferItem.prototype.getAsFileSystemHandle` is stubbed to return it,
 * since a synthetic drop carries no handle; the page's drop handler, walk and load run as for a user.
 */
export async function dropFolderAsHandle(page, folder, paths) {
  const files = paths.map((p) => ({ name: basename(p), base64: readFileSync(p).toString('base64') }));
  await page.evaluate(
    async ([folder, files]) => {
      const root = await navigator.storage.getDirectory();
      await root.removeEntry(folder, { recursive: true }).catch(() => undefined);
      const dir = await root.getDirectoryHandle(folder, { create: true });
      for (const f of files) {
        const w = await (await dir.getFileHandle(f.name, { create: true })).createWritable();
        await w.write(Uint8Array.from(atob(f.base64), (c) => c.charCodeAt(0)));
        await w.close();
      }
      DataTransferItem.prototype.getAsFileSystemHandle = async function () {
        return dir;
      };
      const dt = new DataTransfer();
      dt.items.add(new File([], folder));
      const ev = new DragEvent('drop', { bubbles: true, cancelable: true, dataTransfer: dt });
      document.querySelector('[data-testid="drop-zone"]').dispatchEvent(ev);
    },
    [folder, files],
  );
}
