import { MoePruneError, throwIfAborted } from '../../core/errors.ts';
import type { ProgressSink } from '../../core/progress.ts';
import { byteSize, DTYPE_BITS, type DType, type Shape } from '../dtype.ts';
import { readAhead } from '../../core/read-ahead.ts';

export { readAhead };

/** Where written bytes go: a file on disk (Node), a File System Access writable, a download blob, memory. */
export interface ByteSink {
  write(bytes: Uint8Array): Promise<void>;
  close(): Promise<void>;
  /**
   * True when the sink no longer reads `bytes` once write() has resolved (it wrote or copied them), so the caller
   * may refill the array. Absent or false: the sink may keep it (a stream queue), so every write needs a fresh one.
   */
  readonly releasesOnWrite?: boolean;
}

/**
 * A tensor to write: its bytes are produced on demand, in any number of pieces, so nothing is held whole. A piece's
 * array must not be refilled before the writer is done with it (`onWritten`): the writer still holds one while the
 * next is produced.
 */
export interface WriterTensor {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: Shape;
  data(): AsyncIterable<Uint8Array>;
}

const DTYPE_ORDER = new Map(Object.keys(DTYPE_BITS).map((d, i) => [d, i]));

/**
 * The official writer's order: descending dtype (enum order, i.e. widest first), then name. Every tensor then
 * starts at a multiple of its element size once the data buffer is 8-aligned.
 */
export function officialOrder<T extends { name: string; dtype: DType }>(tensors: readonly T[]): T[] {
  return [...tensors].sort((a, b) => DTYPE_ORDER.get(b.dtype)! - DTYPE_ORDER.get(a.dtype)! || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** The 8-byte length + JSON header (padded with spaces to a multiple of 8), and the tensors in data order. */
export function buildHeader(
  tensors: readonly { name: string; dtype: DType; shape: Shape }[],
  metadata: Record<string, string> | null = { format: 'pt' },
): { bytes: Uint8Array; order: string[]; dataBytes: number } {
  const ordered = officialOrder(tensors);
  const seen = new Set<string>();
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let off = 0;
  for (const t of ordered) {
    if (seen.has(t.name)) throw new MoePruneError('DuplicateTensor', `tensor "${t.name}" written twice`);
    seen.add(t.name);
    const len = byteSize(t.dtype, t.shape);
    header[t.name] = { dtype: t.dtype, shape: [...t.shape], data_offsets: [off, off + len] };
    off += len;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.byteLength / 8) * 8;
  const bytes = new Uint8Array(8 + padded).fill(0x20, 8 + json.byteLength);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(padded), true);
  bytes.set(json, 8);
  return { bytes, order: ordered.map((t) => t.name), dataBytes: off };
}

export interface WriteOptions {
  readonly metadata?: Record<string, string> | null;
  readonly signal?: AbortSignal;
  readonly onBytes?: (written: number) => void;
  readonly file?: string;
  readonly onProgress?: ProgressSink;
  /** Called with each tensor piece once the sink is done with it (only for a sink that `releasesOnWrite`). */
  readonly onWritten?: (piece: Uint8Array) => void;
}

/** Every tensor's pieces in file order, tagged with the tensor's position in `order`. */
async function* piecesInOrder(tensors: readonly WriterTensor[]): AsyncGenerator<{ index: number; piece: Uint8Array }> {
  for (let index = 0; index < tensors.length; index++) for await (const piece of tensors[index]!.data()) yield { index, piece };
}

/**
 * Streams one .safetensors file into `sink`, reading the next piece (of this tensor or the next) while the current
 * one is written; checks each tensor produced exactly its declared byte count.
 */
export async function writeSafetensors(sink: ByteSink, tensors: readonly WriterTensor[], opts: WriteOptions = {}): Promise<number> {
  const { bytes, order, dataBytes } = buildHeader(tensors, opts.metadata === undefined ? { format: 'pt' } : opts.metadata);
  const byName = new Map(tensors.map((t) => [t.name, t]));
  const ordered = order.map((n) => byName.get(n)!);
  const expected = ordered.map((t) => byteSize(t.dtype, t.shape));
  const wrongSize = (i: number, n: number): MoePruneError =>
    new MoePruneError('IoError', `tensor "${ordered[i]!.name}" produced ${n} bytes, expected ${expected[i]}`, opts.file);
  await sink.write(bytes);
  let written = bytes.byteLength;
  const total = bytes.byteLength + dataBytes;
  let cur = 0;
  let got = 0;
  // Tensors before `upTo` are finished: each must have produced exactly its size (none at all for those skipped).
  const finish = (upTo: number): void => {
    for (; cur < upTo; cur++, got = 0) if (got !== expected[cur]) throw wrongSize(cur, got);
  };
  for await (const { index, piece } of readAhead(piecesInOrder(ordered))) {
    throwIfAborted(opts.signal);
    finish(index);
    got += piece.byteLength;
    if (got > expected[index]!) throw wrongSize(index, got);
    await sink.write(piece);
    if (sink.releasesOnWrite) opts.onWritten?.(piece);
    written += piece.byteLength;
    opts.onBytes?.(written);
    opts.onProgress?.({ phase: 'write', done: written, total, unit: 'bytes', file: opts.file });
  }
  finish(ordered.length);
  return written;
}

/** Collects everything written (tests, small files). */
export class MemorySink implements ByteSink {
  private readonly parts: Uint8Array[] = [];
  closed = false;
  async write(bytes: Uint8Array): Promise<void> {
    this.parts.push(bytes.slice());
  }
  async close(): Promise<void> {
    this.closed = true;
  }
  bytes(): Uint8Array {
    const n = this.parts.reduce((s, p) => s + p.byteLength, 0);
    const out = new Uint8Array(n);
    let o = 0;
    for (const p of this.parts) {
      out.set(p, o);
      o += p.byteLength;
    }
    return out;
  }
}

/** Yields one in-memory array as tensor data. */
export async function* once(bytes: Uint8Array): AsyncIterable<Uint8Array> {
  yield bytes;
}
