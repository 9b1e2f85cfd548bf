import { MoePruneError, throwIfAborted } from '../core/errors.ts';
import { checkRange, type ByteSource } from '../formats/bytes.ts';
import type { ChunkKv } from './kv.ts';
import { expectedChunkLength, keys, type StoredFile } from './records.ts';

/** A stored chunk is a Blob (written from a file slice) or an ArrayBuffer (written from bytes). */
function chunkSize(v: unknown): number | undefined {
  if (v instanceof Blob) return v.size;
  if (v instanceof ArrayBuffer) return v.byteLength;
  if (v instanceof Uint8Array) return v.byteLength;
  return undefined;
}

async function chunkRange(v: Blob | ArrayBuffer | Uint8Array, from: number, to: number): Promise<Uint8Array> {
  if (v instanceof Blob) return new Uint8Array(await v.slice(from, to).arrayBuffer());
  return (v instanceof ArrayBuffer ? new Uint8Array(v) : v).subarray(from, to);
}

/** One stored file read back by byte range; a read touches only the chunks the range overlaps. */
export class IdbFileSource implements ByteSource {
  readonly name: string;
  readonly size: number;

  constructor(
    private readonly kv: ChunkKv,
    private readonly modelId: string,
    private readonly file: StoredFile,
  ) {
    this.name = file.name;
    this.size = file.size;
  }

  async read(offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array> {
    throwIfAborted(signal);
    checkRange(this.name, this.size, offset, length);
    const out = new Uint8Array(length);
    if (length === 0) return out;
    const cs = this.file.chunkSize;
    const first = Math.floor(offset / cs);
    const last = Math.floor((offset + length - 1) / cs);
    // Fetch a bounded batch per transaction so a huge range never holds all of its byte chunks at once.
    const batch = 16;
    for (let start = first; start <= last; start += batch) {
      throwIfAborted(signal);
      const idx: number[] = [];
      for (let i = start; i <= Math.min(last, start + batch - 1); i++) idx.push(i);
      let values: unknown[];
      try {
        values = await this.kv.getMany(idx.map((i) => keys.chunk(this.modelId, this.name, i)));
      } catch (e) {
        throw new MoePruneError('StorageError', `reading the stored copy failed (${(e as Error).message})`, this.name, { cause: e });
      }
      for (let j = 0; j < idx.length; j++) {
        const i = idx[j]!;
        const value = values[j];
        const have = chunkSize(value);
        const want = expectedChunkLength(this.size, cs, i);
        if (have === undefined)
          throw new MoePruneError('TruncatedFile', `stored chunk ${i} is missing; drop the same files again to finish storing`, this.name);
        if (have !== want)
          throw new MoePruneError('TruncatedFile', `stored chunk ${i} has ${have} bytes, expected ${want}; drop the same files again to repair it`, this.name);
        const chunkStart = i * cs;
        const from = Math.max(offset, chunkStart) - chunkStart;
        const to = Math.min(offset + length, chunkStart + want) - chunkStart;
        let part: Uint8Array;
        try {
          part = await chunkRange(value as Blob | ArrayBuffer | Uint8Array, from, to);
        } catch (e) {
          throw new MoePruneError('StorageError', `reading stored chunk ${i} failed (${(e as Error).message}); delete the model and store it again`, this.name, { cause: e });
        }
        out.set(part, chunkStart + from - offset);
      }
    }
    return out;
  }
}
