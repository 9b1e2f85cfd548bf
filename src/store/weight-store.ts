import { MoePruneError, throwIfAborted } from '../core/errors.ts';
import { RateMeter, type LongTask } from '../core/progress.ts';
import { MapFileSet, unreadableFile, type FileSet } from '../formats/bytes.ts';
import type { CheckpointSummary } from '../models/types.ts';
import { IdbFileSource } from './idb-file-source.ts';
import type { ChunkKv } from './kv.ts';
import {
  chunkCount,
  DEFAULT_CHUNK_SIZE,
  expectedChunkLength,
  isModelKey,
  keys,
  matchesFiles,
  newLocalId,
  type FileIdentity,
  type ModelRecord,
  type StoredFile,
} from './records.ts';
import { reopenSources, savedSourcesOf, type ReopenableDir, type ReopenableFile, type SavedSource, type SourceHandleStore } from './source-handles.ts';
import type { StorageAccess } from './storage-access.ts';
import { formatBytes } from '../core/format.ts';

/** A file handed to ingest: its name inside the checkpoint folder, identity, and the Blob to copy from. */
export interface SourceFile extends FileIdentity {
  readonly blob: Blob;
  /** How to reopen the file after a reload, when the browser gave a handle for it, and the folder it came in. */
  readonly handle?: ReopenableFile;
  readonly root?: ReopenableDir;
}

/** Per-file and overall progress of one ingest; bytes already stored before a resume count as done. */
export interface IngestProgress {
  readonly modelId: string;
  readonly file: string;
  readonly fileIndex: number;
  readonly fileCount: number;
  readonly fileDone: number;
  readonly fileTotal: number;
  readonly done: number;
  readonly total: number;
  /** Bytes that were already stored and verified when this run started (non-zero on resume). */
  readonly resumedBytes: number;
  readonly bytesPerSec: number;
  readonly etaSec: number | undefined;
}

export interface IngestOptions extends LongTask {
  readonly onIngest?: (p: IngestProgress) => void;
  readonly summary?: CheckpointSummary | null;
}

export interface IngestResult {
  readonly record: ModelRecord;
  /** The same files were already fully stored: nothing was copied again. */
  readonly reused: boolean;
  /** An interrupted ingest of the same files was continued. */
  readonly resumed: boolean;
  readonly writtenBytes: number;
  readonly skippedBytes: number;
  /** Whether the browser agreed to keep our data under storage pressure. */
  readonly persisted: boolean;
}

export interface StoredModel {
  readonly record: ModelRecord;
  /** Bytes of verified chunks; equals record.totalBytes when complete. */
  readonly storedBytes: number;
  /** Incomplete, and the source files can be reopened from saved handles (no new drop needed to resume). */
  readonly reopenable: boolean;
}

export interface StorageUsage {
  readonly usage: number | null;
  readonly quota: number | null;
  readonly persisted: boolean;
  readonly models: readonly StoredModel[];
}

export interface WeightStoreOptions {
  readonly storage?: StorageAccess;
  readonly chunkSize?: number;
  /**
   * How chunk values are written. 'blob' (default) stores Blob slices of the source file: the browser
   * copies the bytes into IndexedDB itself, without passing them through script memory, which measured
   * several times faster in Chromium. 'bytes' stores ArrayBuffers read in script (for stores that cannot
   * hold Blobs). Reads accept both, so a store may mix them.
   */
  readonly chunkFormat?: 'blob' | 'bytes';
  /** Keeps the source files' handles of an unfinished ingest, so it can resume after a reload without a new drop. */
  readonly handles?: SourceHandleStore;
  readonly now?: () => number;
  readonly newId?: () => string;
}

function errorName(e: unknown): string {
  return e instanceof Error || e instanceof DOMException ? e.name : '';
}

/** Chunk indices of one stored file whose chunk exists and has the length its position requires. */
async function verifiedChunks(kv: ChunkKv, id: string, f: StoredFile): Promise<{ ok: boolean[]; bytes: number }> {
  const [lengths, present] = await Promise.all([
    kv.get<number[]>(keys.fileLengths(id, f.name)),
    kv.keysWithPrefix(keys.chunkPrefix(id, f.name)),
  ]);
  const presentSet = new Set(present);
  const ok: boolean[] = [];
  let bytes = 0;
  for (let i = 0; i < f.chunkCount; i++) {
    const want = expectedChunkLength(f.size, f.chunkSize, i);
    const good = lengths?.[i] === want && presentSet.has(keys.chunk(id, f.name, i));
    ok.push(good);
    if (good) bytes += want;
  }
  return { ok, bytes };
}

/**
 * Chunked weight store: each file is split into chunks of at most `chunkSize` bytes, one record each,
 * with a per-file table of written chunk lengths updated in the same transaction as the chunk. So a
 * crash, reload or full quota leaves only whole, verified chunks, and an ingest can resume from them.
 */
export class WeightStore {
  private readonly chunkSize: number;
  private readonly chunkFormat: 'blob' | 'bytes';
  private readonly now: () => number;
  private readonly newId: () => string;

  constructor(
    private readonly kv: ChunkKv,
    private readonly opts: WeightStoreOptions = {},
  ) {
    this.chunkSize = opts.chunkSize ?? DEFAULT_CHUNK_SIZE;
    if (!Number.isSafeInteger(this.chunkSize) || this.chunkSize <= 0)
      throw new MoePruneError('InvalidArgument', `chunk size must be a positive integer, got ${this.chunkSize}`);
    this.chunkFormat = opts.chunkFormat ?? 'blob';
    this.now = opts.now ?? Date.now;
    this.newId = opts.newId ?? newLocalId;
  }

  async getModel(id: string): Promise<ModelRecord | undefined> {
    return this.kv.get<ModelRecord>(keys.model(id));
  }

  /** Every stored model (complete or not), newest first, with how many bytes of it are stored. */
  async listModels(): Promise<StoredModel[]> {
    const ids = (await this.kv.keysWithPrefix(keys.allModels)).filter(isModelKey);
    const records = (await this.kv.getMany<ModelRecord>(ids)).filter((r): r is ModelRecord => r !== undefined);
    const out: StoredModel[] = [];
    for (const record of records) {
      const reopenable = !record.complete && (await this.savedSources(record.id)) !== undefined;
      out.push({ record, storedBytes: await this.storedBytes(record), reopenable });
    }
    return out.sort((a, b) => b.record.createdAt - a.record.createdAt);
  }

  async storedBytes(record: ModelRecord): Promise<number> {
    let n = 0;
    for (const f of record.files) n += (await verifiedChunks(this.kv, record.id, f)).bytes;
    return n;
  }

  /** The stored model made of exactly these files (same names, sizes and modification times), if any. */
  async findMatching(files: readonly FileIdentity[]): Promise<ModelRecord | undefined> {
    return (await this.listModels()).map((m) => m.record).find((r) => matchesFiles(r, files));
  }

  async usage(): Promise<StorageUsage> {
    const [est, persisted, models] = await Promise.all([
      this.opts.storage?.estimate() ?? Promise.resolve(null),
      this.opts.storage?.persisted() ?? Promise.resolve(false),
      this.listModels(),
    ]);
    return { usage: est?.usage ?? null, quota: est?.quota ?? null, persisted, models };
  }

  async setSummary(id: string, summary: CheckpointSummary): Promise<void> {
    const r = await this.getModel(id);
    if (!r) throw new MoePruneError('MissingFile', `no stored model with id ${id}`);
    await this.kv.setMany([[keys.model(id), { ...r, summary, updatedAt: this.now() }]]);
  }

  private async savedSources(id: string): Promise<readonly SavedSource[] | undefined> {
    return this.opts.handles?.load(id).catch(() => undefined);
  }

  /**
   * The source files of an unfinished ingest, opened again from the handles saved when it started (asks for
   * read permission where needed: call from a click). Feed them to `ingest` to resume.
   */
  async reopenSources(id: string): Promise<SourceFile[]> {
    const r = await this.getModel(id);
    if (!r) throw new MoePruneError('MissingFile', `no stored model with id ${id}`);
    const saved = await this.savedSources(id);
    if (!saved) throw new MoePruneError('MissingFile', 'the browser gave no reopenable handles for these files; drop the same files again to resume', r.name);
    return reopenSources(saved, r.files);
  }

  /** Deletes the model's chunks, then its record (so a failed delete can simply be retried). */
  async deleteModel(id: string): Promise<void> {
    try {
      await this.opts.handles?.drop(id);
      await this.kv.deletePrefix(keys.modelPrefix(id));
      await this.kv.delete(keys.model(id));
    } catch (e) {
      throw new MoePruneError('StorageError', `deleting stored model ${id} failed (${(e as Error).message})`, undefined, { cause: e });
    }
  }

  /** The stored files as a FileSet; refuses an incomplete model rather than failing later mid-read. */
  async openFileSet(id: string): Promise<FileSet> {
    const r = await this.getModel(id);
    if (!r) throw new MoePruneError('MissingFile', `no stored model with id ${id}`);
    if (!r.complete)
      throw new MoePruneError('StorageError', 'this model is only partly stored; drop the same files again to finish storing it', r.name);
    return new MapFileSet(r.files.map((f) => new IdbFileSource(this.kv, r.id, f)));
  }

  /**
   * Copies `files` into the store chunk by chunk (memory stays at about two chunks whatever the file
   * size). If the same files are already stored, nothing is copied; if an earlier ingest of them was
   * interrupted, only missing or short chunks are written.
   */
  async ingest(name: string, files: readonly SourceFile[], task: IngestOptions = {}): Promise<IngestResult> {
    const { signal } = task;
    if (files.length === 0) throw new MoePruneError('InvalidArgument', 'no files to store', name);
    const seen = new Set<string>();
    for (const f of files) {
      if (seen.has(f.name)) throw new MoePruneError('InvalidArgument', 'the same file name appears twice in the selection', f.name);
      seen.add(f.name);
    }
    throwIfAborted(signal);

    const existing = await this.findMatching(files);
    if (existing?.complete) {
      if (task.summary && !existing.summary) await this.setSummary(existing.id, task.summary);
      const record = (await this.getModel(existing.id)) ?? existing;
      return { record, reused: true, resumed: false, writtenBytes: 0, skippedBytes: record.totalBytes, persisted: false };
    }

    const t0 = this.now();
    const record: ModelRecord = existing
      ? { ...existing, summary: task.summary ?? existing.summary, updatedAt: t0 }
      : {
          id: this.newId(),
          name,
          mode: 'stored',
          files: files.map((f) => ({
            name: f.name,
            size: f.size,
            lastModified: f.lastModified,
            chunkSize: this.chunkSize,
            chunkCount: chunkCount(f.size, this.chunkSize),
          })),
          totalBytes: files.reduce((s, f) => s + f.size, 0),
          summary: task.summary ?? null,
          complete: false,
          createdAt: t0,
          updatedAt: t0,
        };

    const plan = await Promise.all(record.files.map((f) => verifiedChunks(this.kv, record.id, f)));
    const resumedBytes = plan.reduce((s, p) => s + p.bytes, 0);
    await this.checkSpace(name, record.totalBytes - resumedBytes);
    const persisted = (await this.opts.storage?.persist().catch(() => false)) ?? false;

    try {
      await this.kv.setMany([[keys.model(record.id), record]]);
    } catch (e) {
      throw this.writeError(e, name, 'saving the model record', 0, record.totalBytes);
    }
    // Best effort: without handles a resume simply needs the files dropped again.
    const saved = savedSourcesOf(files);
    if (this.opts.handles && saved) await this.opts.handles.save(record.id, saved).catch(() => undefined);

    const meter = new RateMeter();
    let done = resumedBytes;
    let written = 0;
    meter.push(this.now(), 0);
    const byName = new Map(files.map((f) => [f.name, f]));

    for (let fi = 0; fi < record.files.length; fi++) {
      const sf = record.files[fi]!;
      const src = byName.get(sf.name)!;
      const { ok } = plan[fi]!;
      const lengths: number[] = ((await this.kv.get<number[]>(keys.fileLengths(record.id, sf.name))) ?? []).slice();
      let fileDone = ok.reduce((s, good, i) => s + (good ? expectedChunkLength(sf.size, sf.chunkSize, i) : 0), 0);
      const report = (): void => {
        const p: IngestProgress = {
          modelId: record.id,
          file: sf.name,
          fileIndex: fi,
          fileCount: record.files.length,
          fileDone,
          fileTotal: sf.size,
          done,
          total: record.totalBytes,
          resumedBytes,
          bytesPerSec: meter.rate(),
          etaSec: (() => {
            const r = meter.rate();
            return r > 0 ? (record.totalBytes - done) / r : undefined;
          })(),
        };
        task.onIngest?.(p);
        task.onProgress?.({ phase: 'ingest', done, total: record.totalBytes, unit: 'bytes', file: sf.name });
      };
      report();

      const todo = ok.flatMap((good, i) => (good ? [] : [i]));
      const chunkValue = (i: number): Promise<Blob | ArrayBuffer> => {
        const start = i * sf.chunkSize;
        const slice = src.blob.slice(start, start + expectedChunkLength(sf.size, sf.chunkSize, i));
        if (this.chunkFormat === 'blob') return Promise.resolve(slice);
        const p = slice.arrayBuffer();
        p.catch(() => undefined); // a failed read-ahead is reported when it is awaited, not as unhandled
        return p;
      };
      // 'bytes': read the next chunk while the current one is written, so at most two chunks are in memory.
      let next: Promise<Blob | ArrayBuffer> | undefined = todo.length ? chunkValue(todo[0]!) : undefined;
      for (let t = 0; t < todo.length; t++) {
        const i = todo[t]!;
        let buf: Blob | ArrayBuffer;
        try {
          throwIfAborted(signal);
          buf = await next!;
        } catch (e) {
          next = undefined;
          throw unreadableFile(e, sf.name);
        }
        next = t + 1 < todo.length ? chunkValue(todo[t + 1]!) : undefined;
        const want = expectedChunkLength(sf.size, sf.chunkSize, i);
        const got = buf instanceof Blob ? buf.size : buf.byteLength;
        if (got !== want)
          throw new MoePruneError('TruncatedFile', `chunk ${i} has ${got} bytes, expected ${want}; the file changed after it was selected`, sf.name);
        lengths[i] = want;
        try {
          await this.kv.setMany([
            [keys.chunk(record.id, sf.name, i), buf],
            [keys.fileLengths(record.id, sf.name), lengths],
          ]);
        } catch (e) {
          throw this.writeError(e, sf.name, `writing chunk ${i}`, done, record.totalBytes);
        }
        done += want;
        fileDone += want;
        written += want;
        meter.push(this.now(), written);
        report();
      }
    }

    // Re-verify from the store itself before declaring the model complete.
    const check = await Promise.all(record.files.map((f) => verifiedChunks(this.kv, record.id, f)));
    const stored = check.reduce((s, c) => s + c.bytes, 0);
    if (stored !== record.totalBytes)
      throw new MoePruneError('StorageError', `after storing, ${stored} of ${record.totalBytes} bytes verify; drop the same files again to repair`, name);
    const final: ModelRecord = { ...record, complete: true, updatedAt: this.now() };
    await this.kv.setMany([[keys.model(record.id), final]]);
    await this.opts.handles?.drop(record.id).catch(() => undefined);
    return { record: final, reused: false, resumed: existing !== undefined, writtenBytes: written, skippedBytes: resumedBytes, persisted };
  }

  private async checkSpace(name: string, needed: number): Promise<void> {
    const est = await this.opts.storage?.estimate().catch(() => null);
    if (!est || needed <= 0) return;
    const free = Math.max(0, est.quota - est.usage);
    if (needed > free)
      throw new MoePruneError(
        'StorageFull',
        `storing needs ${formatBytes(needed)} but the browser lets this page store only ${formatBytes(free)} more ` +
          `(quota ${formatBytes(est.quota)}, used ${formatBytes(est.usage)}); delete a stored model, free disk space, ` +
          `or choose "read from the dropped files", which copies nothing`,
        name,
      );
  }

  private writeError(e: unknown, file: string, what: string, done: number, total: number): MoePruneError {
    if (e instanceof MoePruneError) return e;
    const kept = `${formatBytes(done)} of ${formatBytes(total)} already stored are kept`;
    if (errorName(e) === 'QuotaExceededError' || /quota/i.test((e as Error)?.message ?? ''))
      return new MoePruneError(
        'StorageFull',
        `the browser's storage for this page is full (its quota ran out while ${what}); ${kept}, and other stored models are untouched. Delete a stored model or free disk space, then drop the same files again to resume`,
        file,
        { cause: e },
      );
    // Chromium copies a Blob chunk when the transaction commits; a source file changed since the drop fails there.
    const msg = (e as Error)?.message ?? String(e);
    if (errorName(e) === 'NotReadableError' || /InvalidBlob/.test(msg))
      return new MoePruneError(
        'FileChanged',
        `the file changed on disk (or was moved) after it was selected, so the browser cannot copy it (${msg}; while ${what}); ${kept}. Select the checkpoint again to resume`,
        file,
        { cause: e },
      );
    return new MoePruneError(
      'StorageError',
      `IndexedDB failed while ${what} (${(e as Error)?.message ?? String(e)}); ${kept}. If the file changed on disk since it was selected, select it again; then drop the same files to resume`,
      file,
      {
      cause: e,
    });
  }
}
