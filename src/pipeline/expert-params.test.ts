import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { openNodeFileSet } from '../cli/node-files.ts';
import { catalogueCheckpoint } from '../models/catalogue.ts';
import type { ExpertIndex, LayerIndex } from '../models/types.ts';
import { expertParamSource } from './expert-params.ts';

const MODELS = fileURLToPath(new URL('../../fixtures/models', import.meta.url));

describe('expertParamSource: a spare array is refilled instead of a fresh one', () => {
  it('fills `into` with the same values a fresh chunk has, across tensor boundaries, and ignores a spare of another length', async () => {
    for (const model of ['mixtral-bf16', 'mixtral', 'qwen3_moe-fused']) {
      const cat = await catalogueCheckpoint(await openNodeFileSet(join(MODELS, model)));
      const layer = cat.moeLayers[0]!.layer as LayerIndex;
      // 300 does not divide the tensors' sizes: some chunks span the end of one tensor and the start of the next.
      const src = expertParamSource(cat, layer, 300);
      expect(src.chunkCount).toBeGreaterThan(2);
      for (const e of [0, 1] as ExpertIndex[])
        for (let c = 0; c < src.chunkCount; c++) {
          const fresh = await src.chunk(e, c);
          const spare = new Float32Array(fresh.length).fill(Number.NaN);
          const reused = await src.chunk(e, c, undefined, spare);
          expect(reused).toBe(spare);
          expect([...reused]).toEqual([...fresh]);
          const other = new Float32Array(fresh.length + 1);
          const ignored = await src.chunk(e, c, undefined, other);
          expect(ignored).not.toBe(other);
          expect([...ignored]).toEqual([...fresh]);
        }
    }
  });
});

describe('expertParamSource.bf16Chunk: stored bits for bfloat16 experts', () => {
  it('reads the bits into the given array (shared memory too), and they widen to the chunk values, across tensor ends', async () => {
    const cat = await catalogueCheckpoint(await openNodeFileSet(join(MODELS, 'mixtral-bf16')));
    const layer = cat.moeLayers[0]!.layer as LayerIndex;
    const src = expertParamSource(cat, layer, 300);
    expect(src.bf16Chunk).toBeDefined();
    for (const e of [0, 3] as ExpertIndex[])
      for (let c = 0; c < src.chunkCount; c++) {
        const values = await src.chunk(e, c);
        const into = new Uint16Array(new SharedArrayBuffer(values.length * 2 + 8), 8, values.length);
        const bits = await src.bf16Chunk!(e, c, undefined, into);
        expect(bits).toBe(into);
        expect([...new Float32Array(Uint32Array.from(bits, (b) => b << 16).buffer)]).toEqual([...values]);
      }
  });

  it('is absent when the experts are not bfloat16 (the float chunks are used)', async () => {
    for (const model of ['mixtral', 'qwen3_moe-fused']) {
      const cat = await catalogueCheckpoint(await openNodeFileSet(join(MODELS, model)));
      const dtypes = new Set([...cat.tensors.values()].map((t) => t.dtype));
      expect(dtypes.has('BF16')).toBe(false);
      expect(expertParamSource(cat, cat.moeLayers[0]!.layer as LayerIndex, 300).bf16Chunk).toBeUndefined();
    }
  });
});
