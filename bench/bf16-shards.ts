/**
 * Writing a synthetic checkpoint's shards, shared by the small bench model (synthetic.ts) and the scale one
 * (scale-checkpoint.ts): each shard a safetensors file of BF16 tensors whose bytes a generator streams, so no
 * tensor is ever held whole.
 */
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { shardFileName } from '../src/formats/safetensors/index-file.ts';
import { writeSafetensors, type ByteSink } from '../src/formats/safetensors/writer.ts';

export interface PlannedTensor {
  readonly name: string;
  readonly shape: number[];
  readonly byteLength: number;
}

/** A file as a sink; a short write is continued, not dropped. */
export async function fileSink(path: string): Promise<ByteSink> {
  const fh = await open(path, 'w');
  let pos = 0;
  return {
    async write(b) {
      for (let off = 0; off < b.byteLength; ) {
        const { bytesWritten } = await fh.write(b, off, b.byteLength - off, pos);
        off += bytesWritten;
        pos += bytesWritten;
      }
    },
    async close() {
      await fh.close();
    },
  };
}

/**
 * Writes `shards` into `dir` under the Hub's shard names, tensor bytes from `data` (called in file order, so a seeded
 * generator gives the same files every run); returns the weight map of the index file.
 */
export async function writeBf16Shards(
  dir: string,
  shards: readonly (readonly PlannedTensor[])[],
  data: (t: PlannedTensor) => AsyncIterable<Uint8Array>,
  onShard?: (name: string) => void,
): Promise<Map<string, string>> {
  const weightMap = new Map<string, string>();
  for (const [i, shard] of shards.entries()) {
    const name = shardFileName(i, shards.length);
    onShard?.(name);
    const sink = await fileSink(join(dir, name));
    try {
      await writeSafetensors(sink, shard.map((t) => ({ name: t.name, dtype: 'BF16' as const, shape: t.shape, data: () => data(t) })));
    } finally {
      await sink.close();
    }
    for (const t of shard) weightMap.set(t.name, name);
  }
  return weightMap;
}
