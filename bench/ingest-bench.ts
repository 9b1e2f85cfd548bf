import { createIdbKv } from '../src/store/idb-kv.ts';
import { DEFAULT_CHUNK_SIZE } from '../src/store/records.ts';
import { WeightStore } from '../src/store/weight-store.ts';

/**
 * In-page ingest benchmark: the same random bytes are written through our store (File → Blob.slice chunk
 * records + length table, progress) and through plain IndexedDB puts of the same chunks already held in
 * memory as ArrayBuffers, in the same page, alternating, best of `repeats`. Random bytes, because Chrome compresses
 * IndexedDB values and constants would flatter both.
 */
export interface IngestBenchResult {
  readonly mb: number;
  readonly chunkSize: number;
  readonly repeats: number;
  readonly ourMs: number;
  readonly rawMs: number;
  readonly ourMBps: number;
  readonly rawMBps: number;
  /** ourMBps / rawMBps: 1.0 means our store costs nothing over a bare chunked write. */
  readonly ratio: number;
  /** The same ingest with chunkFormat 'bytes' (chunks read into script memory first), for comparison. */
  readonly ourBytesMBps: number;
}

const BENCH_DB = 'moe-prune-bench';
const RAW_DB = 'moe-prune-bench-raw';

function randomBytes(n: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) crypto.getRandomValues(out.subarray(i, Math.min(n, i + 65536)));
  return out;
}

function request<T>(r: IDBRequest<T>): Promise<T> {
  return new Promise((ok, fail) => {
    r.onsuccess = () => ok(r.result);
    r.onerror = () => fail(r.error);
  });
}

function deleteDb(name: string): Promise<void> {
  return new Promise((ok) => {
    const r = indexedDB.deleteDatabase(name);
    r.onsuccess = r.onerror = r.onblocked = () => ok();
  });
}

/** The baseline: one put per chunk, one transaction per chunk, bytes already in memory. */
async function rawWrite(bytes: Uint8Array<ArrayBuffer>, chunkSize: number): Promise<number> {
  await deleteDb(RAW_DB);
  const open = indexedDB.open(RAW_DB, 1);
  open.onupgradeneeded = () => open.result.createObjectStore('raw');
  const db = await request(open);
  const chunks: ArrayBuffer[] = [];
  for (let off = 0; off < bytes.byteLength; off += chunkSize) chunks.push(bytes.slice(off, off + chunkSize).buffer);
  const t0 = performance.now();
  for (let i = 0; i < chunks.length; i++) {
    const tx = db.transaction('raw', 'readwrite');
    tx.objectStore('raw').put(chunks[i], `chunk:${i}`);
    await new Promise<void>((ok, fail) => {
      tx.oncomplete = () => ok();
      tx.onerror = tx.onabort = () => fail(tx.error);
    });
  }
  const ms = performance.now() - t0;
  db.close();
  await deleteDb(RAW_DB);
  return ms;
}

async function ourWrite(bytes: Uint8Array<ArrayBuffer>, chunkSize: number, run: number, chunkFormat: 'blob' | 'bytes'): Promise<number> {
  // A database per run: idb-keyval keeps its connection open, so deleting the database would wait forever.
  const store = new WeightStore(createIdbKv(`${BENCH_DB}-${chunkFormat}-${run}`, 'weights'), { chunkSize, chunkFormat });
  const file = new File([bytes], 'model-00001-of-00001.safetensors', { lastModified: run });
  const t0 = performance.now();
  const res = await store.ingest('bench', [{ name: file.name, size: file.size, lastModified: file.lastModified, blob: file }]);
  const ms = performance.now() - t0;
  if (!res.record.complete || res.writtenBytes !== bytes.byteLength) throw new Error(`bench ingest wrote ${res.writtenBytes} of ${bytes.byteLength} bytes`);
  await store.deleteModel(res.record.id);
  return ms;
}

export async function runIngestBench(mb = 32, chunkSize = DEFAULT_CHUNK_SIZE, repeats = 2): Promise<IngestBenchResult> {
  const bytes = randomBytes(Math.round(mb * 1024 * 1024));
  let ourMs = Infinity;
  let rawMs = Infinity;
  let bytesMs = Infinity;
  for (let r = 0; r < repeats; r++) {
    rawMs = Math.min(rawMs, await rawWrite(bytes, chunkSize));
    ourMs = Math.min(ourMs, await ourWrite(bytes, chunkSize, r + 1, 'blob'));
    bytesMs = Math.min(bytesMs, await ourWrite(bytes, chunkSize, r + 1, 'bytes'));
  }
  const mbps = (ms: number) => bytes.byteLength / 1e6 / (ms / 1000);
  return { mb, chunkSize, repeats, ourMs, rawMs, ourMBps: mbps(ourMs), rawMBps: mbps(rawMs), ratio: mbps(ourMs) / mbps(rawMs), ourBytesMBps: mbps(bytesMs) };
}
