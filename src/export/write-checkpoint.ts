/**
 * Streams a pruned checkpoint into an output folder, shard by shard and tensor by tensor, in bounded pieces:
 * never a whole shard or a whole large tensor in memory. The folder is committed only after every file is
 * written, so a cancelled or failed export is never mistaken for a finished one.
 */
import { asUserError, MoePruneError, throwIfAborted } from '../core/errors.ts';
import type { LongTask } from '../core/progress.ts';
import { readText, type FileSet } from '../formats/bytes.ts';
import { dtypeBits } from '../formats/dtype.ts';
import { meanInDtype } from '../formats/mean.ts';
import { formatShardIndex, INDEX_FILE, shardFileName, SINGLE_FILE } from '../formats/safetensors/index-file.ts';
import { buildHeader, writeSafetensors, type ByteSink, type WriterTensor } from '../formats/safetensors/writer.ts';
import { shardOf, type Catalogue } from '../models/catalogue.ts';
import type { SafetensorsFile } from '../formats/safetensors/reader.ts';
import { maskedBytes, pieceMask, type MaskLookup } from './masks.ts';
import type { ByteRange, OutputTensor, Piece, TensorPlan } from './tensor-plan.ts';

/** Where an export goes: a folder on disk (CLI), a folder the user picked (File System Access), or downloads. */
export interface OutputFolder {
  create(name: string): Promise<ByteSink>;
  /** Every file is written: make the export visible as complete. */
  commit(): Promise<void>;
  /** Failure or cancel: remove or clearly mark what was written. */
  abort(): Promise<void>;
}

export interface ExportFiles {
  /** config.json text after the expert-count patch: every other byte kept (see config-text.ts). */
  readonly configText: string;
  /** Extra files written after the weights, in order (prune-report.json, README.md). */
  readonly extras: ReadonlyArray<{ name: string; text: string }>;
  /** Stage-2 masks: pruned weights are written as zeros (see masks.ts). */
  readonly masks?: MaskLookup;
}

export interface ExportResult {
  readonly files: Array<{ name: string; bytes: number }>;
  readonly shards: string[];
  readonly tensorBytes: number;
}

/** Files that describe the input's weights or its card: rewritten, never copied. */
const REWRITTEN = new Set(['config.json', INDEX_FILE, SINGLE_FILE, 'README.md', 'prune-report.json']);

const PIECE_BYTES = 8 << 20;

/**
 * Read buffers handed back by a sink that is done with them (`releasesOnWrite`): the copy then cycles through two
 * or three arrays instead of one fresh 8 MiB array per piece, which the collector spent seconds on per 3 GB.
 */
class PieceBuffers {
  private readonly free: ArrayBuffer[] = [];
  /** Set from the sink once it is open; otherwise every piece is a fresh array from the source. */
  reuse = false;

  async read(file: SafetensorsFile, tensor: string, offset: number, n: number, signal?: AbortSignal): Promise<Uint8Array> {
    if (!this.reuse) return file.readRange(tensor, offset, n, signal);
    const piece = new Uint8Array(this.free.pop() ?? new ArrayBuffer(PIECE_BYTES), 0, n);
    await file.readRangeInto(tensor, offset, piece, signal);
    return piece;
  }

  give(piece: Uint8Array): void {
    // Only whole buffers of this pool's size: a piece made elsewhere (masked, averaged) is simply dropped.
    if (piece.buffer instanceof ArrayBuffer && piece.buffer.byteLength === PIECE_BYTES && this.free.length < 4) this.free.push(piece.buffer);
  }
}

async function* readRange(cat: Catalogue, r: ByteRange, buffers: PieceBuffers, signal?: AbortSignal): AsyncGenerator<Uint8Array> {
  const file = shardOf(cat, r.tensor);
  for (let off = 0; off < r.length; off += PIECE_BYTES) {
    throwIfAborted(signal);
    yield await buffers.read(file, r.tensor, r.offset + off, Math.min(PIECE_BYTES, r.length - off), signal);
  }
}

/** Element-wise mean of equal-length ranges (see formats/mean.ts), read and written in aligned pieces. */
async function* meanRanges(cat: Catalogue, p: Extract<Piece, { kind: 'mean' }>, signal?: AbortSignal): AsyncGenerator<Uint8Array> {
  const len = p.ranges[0]!.length;
  if (p.ranges.some((r) => r.length !== len)) throw new MoePruneError('InvalidPlan', 'merged experts have different sizes');
  const elem = dtypeBits(p.dtype) / 8;
  const step = PIECE_BYTES - (PIECE_BYTES % elem);
  for (let off = 0; off < len; off += step) {
    throwIfAborted(signal);
    const n = Math.min(step, len - off);
    const parts: Uint8Array[] = [];
    for (const r of p.ranges) parts.push(await shardOf(cat, r.tensor).readRange(r.tensor, r.offset + off, n, signal));
    yield meanInDtype(p.dtype, parts, p.ranges[0]!.tensor);
  }
}

function tensorData(cat: Catalogue, t: OutputTensor, masks: MaskLookup | undefined, buffers: PieceBuffers, signal?: AbortSignal): () => AsyncIterable<Uint8Array> {
  return async function* () {
    for (const p of t.pieces) {
      const bytes = p.kind === 'copy' ? readRange(cat, p.range, buffers, signal) : meanRanges(cat, p, signal);
      const m = masks && pieceMask(cat, t, p, masks);
      yield* m ? maskedBytes(bytes, m, t.dtype, t.name) : bytes;
    }
  };
}

/** Output shards follow input shards (same order, empty ones dropped); a single-file input stays single-file. */
export function outputShards(cat: Catalogue, plan: TensorPlan): Array<{ name: string; tensors: OutputTensor[] }> {
  const inputs = [...cat.shards.keys()].sort();
  const groups = inputs.map((s) => plan.tensors.filter((t) => t.shard === s)).filter((g) => g.length > 0);
  if (!cat.indexFile && groups.length === 1) return [{ name: SINGLE_FILE, tensors: groups[0]! }];
  return groups.map((tensors, i) => ({ name: shardFileName(i, groups.length), tensors }));
}

export async function writePrunedCheckpoint(
  cat: Catalogue,
  input: FileSet,
  plan: TensorPlan,
  files: ExportFiles,
  out: OutputFolder,
  opts: LongTask = {},
): Promise<ExportResult> {
  const { signal, onProgress } = opts;
  const written: Array<{ name: string; bytes: number }> = [];
  const shards = outputShards(cat, plan);
  const copied = input.names().filter((n) => !REWRITTEN.has(n) && !n.endsWith('.safetensors') && !n.includes('/'));
  const copiedBytes = copied.reduce((s, n) => s + (input.get(n)?.size ?? 0), 0);
  // Progress counts whole files: shard headers included.
  const headers = shards.reduce((sum, sh) => sum + buildHeader(sh.tensors).bytes.byteLength, 0);
  const total = headers + plan.bytes + copiedBytes;
  let done = 0;
  const progress = (file: string, extra: number): void => onProgress?.({ phase: 'export', done: done + extra, total, unit: 'bytes', file });

  const writeFile = async (name: string, body: (sink: ByteSink) => Promise<number>): Promise<void> => {
    const sink = await out.create(name);
    let bytes: number;
    try {
      bytes = await body(sink);
    } finally {
      // Closed on failure too, so abort() can remove the file (no handle left open on a full disk or a cancel).
      await sink.close();
    }
    written.push({ name, bytes });
  };
  const writeText = (name: string, text: string): Promise<void> =>
    writeFile(name, async (sink) => {
      const b = new TextEncoder().encode(text);
      await sink.write(b);
      return b.byteLength;
    });

  try {
    const weightMap = new Map<string, string>();
    for (const shard of shards) {
      // Per shard: a sink that keeps what it is given never gets a buffer back, so nothing it holds is refilled.
      const buffers = new PieceBuffers();
      const tensors: WriterTensor[] = shard.tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, data: tensorData(cat, t, files.masks, buffers, signal) }));
      for (const t of shard.tensors) weightMap.set(t.name, shard.name);
      let before = 0;
      await writeFile(shard.name, async (sink) => {
        buffers.reuse = sink.releasesOnWrite === true;
        const n = await writeSafetensors(sink, tensors, { signal, file: shard.name, onBytes: (w) => progress(shard.name, (before = w)), onWritten: (p) => buffers.give(p) });
        return n;
      });
      done += before;
    }
    if (shards.length > 1 || cat.indexFile) {
      const meta = cat.indexFile ? await indexMetadata(input) : {};
      if ('total_parameters' in meta) meta.total_parameters = plan.params;
      await writeText(INDEX_FILE, formatShardIndex(weightMap, plan.bytes, meta));
    }
    await writeText('config.json', files.configText);
    for (const name of copied) {
      const src = input.get(name)!;
      await writeFile(name, async (sink) => {
        for (let off = 0; off < src.size; off += PIECE_BYTES) {
          throwIfAborted(signal);
          await sink.write(await src.read(off, Math.min(PIECE_BYTES, src.size - off), signal));
          progress(name, Math.min(src.size, off + PIECE_BYTES));
        }
        return src.size;
      });
      done += src.size;
    }
    for (const x of files.extras) await writeText(x.name, x.text);
    throwIfAborted(signal);
    await out.commit();
  } catch (e) {
    await out.abort().catch(() => undefined);
    throw asUserError(e);
  }
  return { files: written, shards: shards.map((s) => s.name), tensorBytes: plan.bytes };
}

async function indexMetadata(input: FileSet): Promise<Record<string, unknown>> {
  const src = input.get(INDEX_FILE);
  if (!src) return {};
  const j = JSON.parse(await readText(src)) as { metadata?: Record<string, unknown> };
  const { total_size: _drop, ...rest } = j.metadata ?? {};
  return rest;
}
