import { MoePruneError, throwIfAborted } from '../core/errors.ts';
import type { ByteSource } from '../formats/bytes.ts';
import type { ChunkKv } from './kv.ts';
import { expectedChunkLength, keys, type StoredFile } from './records.ts';

function chunkBytes(v: unknown): Uint8Array | undefined {
  if (v instanceof ArrayBuffer) return new Uint8Array(v);
  if (v instanceof Uint8Array) return v;
  return undefined;
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
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0)
      throw new MoePruneError('InvalidArgument', `bad byte range ${offset}+${length}`, this.name);
    if (offset + length > this.size)
      throw new MoePruneError('TruncatedFile', `needs bytes ${offset}..${offset + length} but the file has ${this.size}`, this.name);
    const out = new Uint8Array(length);
    if (length === 0) return out;
    const cs = this.file.chunkSize;
    const first = Math.floor(offset / cs);
    const last = Math.floor((offset + length - 1) / cs);
    // Fetch a bounded batch per transaction so a huge range does not hold every chunk twice.
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
      idx.forEach((i, j) => {
        const bytes = chunkBytes(values[j]);
        const want = expectedChunkLength(this.size, cs, i);
        if (!bytes)
          throw new MoePruneError('TruncatedFile', `stored chunk ${i} is missing; drop the same files again to finish storing`, this.name);
        if (bytes.byteLength !== want)
          throw new MoePruneError('TruncatedFile', `stored chunk ${i} has ${bytes.byteLength} bytes, expected ${want}; drop the same files again to repair it`, this.name);
        const chunkStart = i * cs;
        const from = Math.max(offset, chunkStart) - chunkStart;
        const to = Math.min(offset + length, chunkStart + want) - chunkStart;
        out.set(bytes.subarray(from, to), chunkStart + from - offset);
      });
    }
    return out;
  }
}
