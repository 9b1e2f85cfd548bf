/**
 * The small key-value surface the weight store needs. The browser implementation is IndexedDB
 * (idb-kv.ts); tests use MemoryKv. Keeping the store behind this interface lets the chunk logic run
 * and be tested in Node without a browser. Chunk values are Blobs or ArrayBuffers; everything else is
 * small structured-cloneable metadata.
 */
export interface ChunkKv {
  get<T>(key: string): Promise<T | undefined>;
  getMany<T>(keys: readonly string[]): Promise<Array<T | undefined>>;
  /** Writes all entries in one transaction: either all of them land or none does. */
  setMany(entries: ReadonlyArray<readonly [string, unknown]>): Promise<void>;
  /** Keys that start with `prefix`, in key order. */
  keysWithPrefix(prefix: string): Promise<string[]>;
  /** Deletes every key that starts with `prefix` (one transaction). */
  deletePrefix(prefix: string): Promise<void>;
  delete(key: string): Promise<void>;
}

/** A QuotaExceededError like the one a browser raises; MemoryKv throws it when its byte budget runs out. */
export function quotaExceeded(message: string): Error {
  if (typeof DOMException === 'function') return new DOMException(message, 'QuotaExceededError');
  const e = new Error(message);
  e.name = 'QuotaExceededError';
  return e;
}

function valueBytes(v: unknown): number {
  if (v instanceof Blob) return v.size;
  if (v instanceof ArrayBuffer) return v.byteLength;
  if (ArrayBuffer.isView(v)) return v.byteLength;
  return 64; // small metadata records; their exact size does not matter for quota tests
}

/** In-memory ChunkKv with an optional byte budget, for unit tests and Node. */
export class MemoryKv implements ChunkKv {
  readonly map = new Map<string, unknown>();
  /** Number of setMany calls that completed; tests use it to assert what was (re)written. */
  writes = 0;
  /** Called before each setMany; tests throw from it to simulate a failure mid-ingest. */
  beforeSet: ((entries: ReadonlyArray<readonly [string, unknown]>) => void) | undefined;

  constructor(private readonly budgetBytes = Number.POSITIVE_INFINITY) {}

  usedBytes(): number {
    let n = 0;
    for (const v of this.map.values()) n += valueBytes(v);
    return n;
  }

  async get<T>(key: string): Promise<T | undefined> {
    return this.map.get(key) as T | undefined;
  }

  async getMany<T>(keys: readonly string[]): Promise<Array<T | undefined>> {
    return keys.map((k) => this.map.get(k) as T | undefined);
  }

  async setMany(entries: ReadonlyArray<readonly [string, unknown]>): Promise<void> {
    this.beforeSet?.(entries);
    let after = this.usedBytes();
    for (const [k, v] of entries) after += valueBytes(v) - (this.map.has(k) ? valueBytes(this.map.get(k)) : 0);
    if (after > this.budgetBytes) throw quotaExceeded('memory budget exhausted');
    // Copy like IndexedDB's structured clone; Blobs are immutable, so holding the same one is a faithful copy.
    for (const [k, v] of entries) this.map.set(k, v instanceof Blob ? v : v instanceof ArrayBuffer ? v.slice(0) : structuredClone(v));
    this.writes++;
  }

  async keysWithPrefix(prefix: string): Promise<string[]> {
    return [...this.map.keys()].filter((k) => k.startsWith(prefix)).sort();
  }

  async deletePrefix(prefix: string): Promise<void> {
    for (const k of [...this.map.keys()]) if (k.startsWith(prefix)) this.map.delete(k);
  }

  async delete(key: string): Promise<void> {
    this.map.delete(key);
  }
}
