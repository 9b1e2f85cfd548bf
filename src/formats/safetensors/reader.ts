import { MoePruneError, throwIfAborted } from '../../core/errors.ts';
import type { ByteSource } from '../bytes.ts';
import { decodeToF32 } from '../dtype.ts';
import { MAX_HEADER_BYTES, parseHeader, type TensorInfo } from './header.ts';
import { notSafetensorsReason } from './sniff.ts';

export type { TensorInfo } from './header.ts';

/** Largest tensor we agree to read into one ArrayBuffer; bigger ones are read by rows or chunks. */
export const MAX_WHOLE_READ_BYTES = 1 << 30;

/** An opened .safetensors file: the validated header, with tensor bytes read on demand. */
export class SafetensorsFile {
  readonly tensors: ReadonlyMap<string, TensorInfo>;

  constructor(
    readonly source: ByteSource,
    readonly headerLength: number,
    readonly metadata: Record<string, string> | null,
    tensorList: readonly TensorInfo[],
  ) {
    this.tensors = new Map(tensorList.map((t) => [t.name, t]));
  }

  get name(): string {
    return this.source.name;
  }
  /** Absolute file offset where the data buffer begins. */
  get dataStart(): number {
    return 8 + this.headerLength;
  }

  info(name: string): TensorInfo {
    const t = this.tensors.get(name);
    if (!t) throw new MoePruneError('MissingTensor', `no tensor "${name}" in this file`, this.name);
    return t;
  }

  /** `length` bytes of a tensor from byte `offset` inside it: the one place tensor bytes are located in the file. */
  async readRange(name: string, offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array> {
    return this.source.read(this.fileOffset(name, offset, length), length, signal);
  }

  /** readRange into the caller's array (read in place when the source can, otherwise copied once). */
  async readRangeInto(name: string, offset: number, into: Uint8Array, signal?: AbortSignal): Promise<void> {
    const at = this.fileOffset(name, offset, into.byteLength);
    if (this.source.readInto) await this.source.readInto(at, into, signal);
    else into.set(await this.source.read(at, into.byteLength, signal));
  }

  private fileOffset(name: string, offset: number, length: number): number {
    const t = this.info(name);
    if (offset < 0 || length < 0 || offset + length > t.byteLength)
      throw new MoePruneError('InvalidArgument', `bytes ${offset}..${offset + length} out of range for "${name}" of ${t.byteLength} bytes`, this.name);
    return this.dataStart + t.begin + offset;
  }

  /** All bytes of a tensor (refused above MAX_WHOLE_READ_BYTES: use readRows or chunks). */
  async readBytes(name: string, signal?: AbortSignal): Promise<Uint8Array> {
    const t = this.info(name);
    if (t.byteLength > MAX_WHOLE_READ_BYTES)
      throw new MoePruneError('InvalidArgument', `tensor "${name}" is ${t.byteLength} bytes; read it by rows or chunks`, this.name);
    return this.readRange(name, 0, t.byteLength, signal);
  }

  /** Bytes of rows [rowStart, rowStart+rowCount) along dim 0 (a row = one slice of the remaining dims). */
  async readRows(name: string, rowStart: number, rowCount: number, signal?: AbortSignal): Promise<Uint8Array> {
    const t = this.info(name);
    const rows = t.shape[0] ?? 1;
    if (rowStart < 0 || rowCount < 0 || rowStart + rowCount > rows)
      throw new MoePruneError('InvalidArgument', `rows ${rowStart}..${rowStart + rowCount} out of range for "${name}" with ${rows} rows`, this.name);
    const rowBytes = rows === 0 ? 0 : t.byteLength / rows;
    return this.readRange(name, rowStart * rowBytes, rowCount * rowBytes, signal);
  }

  /** Streams a tensor's bytes in pieces of at most `maxBytes` (aligned to the element size). */
  async *chunks(name: string, maxBytes = 8 << 20, signal?: AbortSignal): AsyncGenerator<{ offset: number; bytes: Uint8Array }> {
    const t = this.info(name);
    const step = Math.max(8, maxBytes - (maxBytes % 8));
    for (let off = 0; off < t.byteLength; off += step) {
      throwIfAborted(signal);
      const len = Math.min(step, t.byteLength - off);
      yield { offset: off, bytes: await this.readRange(name, off, len, signal) };
    }
  }

  async readF32(name: string, signal?: AbortSignal): Promise<Float32Array> {
    const t = this.info(name);
    return decodeToF32(t.dtype, await this.readBytes(name, signal), `${this.name}:${name}`);
  }

  async readRowsF32(name: string, rowStart: number, rowCount: number, signal?: AbortSignal): Promise<Float32Array> {
    const t = this.info(name);
    return decodeToF32(t.dtype, await this.readRows(name, rowStart, rowCount, signal), `${this.name}:${name}`);
  }
}

/** Reads and validates the header of a .safetensors file without touching its tensor data. */
export async function openSafetensors(src: ByteSource, signal?: AbortSignal): Promise<SafetensorsFile> {
  const prefix = src.size >= 8 ? await src.read(0, 8, signal) : new Uint8Array(0);
  // A file of another format is called that, in plain words, before its first bytes are read as a header length.
  const foreign = notSafetensorsReason(prefix);
  if (foreign) throw new MoePruneError('NotSafetensors', `not a safetensors file: ${foreign}`, src.name);
  let headerBytes: Uint8Array | null = null;
  if (prefix.byteLength === 8) {
    const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
    if (n <= BigInt(MAX_HEADER_BYTES) && 8 + Number(n) <= src.size) headerBytes = await src.read(8, Number(n), signal);
  }
  const parsed = parseHeader(src.name, prefix, headerBytes, src.size);
  return new SafetensorsFile(src, parsed.headerLength, parsed.metadata, parsed.tensors);
}
