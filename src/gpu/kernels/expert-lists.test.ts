import { expect, it } from 'vitest';
import { describeGpu } from '../../../tests/gpu-harness.ts';
import { readF32, readU32, uploadF32, values } from './kernel-test-data.ts';
import { buildExpertLists, expertListsReference, readExpertOffsets, releaseExpertLists } from './expert-lists.ts';

/** Distinct experts per token, deterministic; expert 6 never chosen. */
function topk(tokens: number, k: number, experts: number): Uint32Array {
  const ids = new Uint32Array(tokens * k);
  for (let t = 0; t < tokens; t++) for (let j = 0; j < k; j++) ids[t * k + j] = (t * 5 + j * 2 + (t >> 3)) % (experts - 1);
  return ids;
}

describeGpu('expert token lists', (gpu) => {
  for (const T of [37, 100]) {
    it(`T=${T}, top-3 of 7 experts: offsets, ascending token lists and weights match the reference`, async () => {
      const ctx = gpu();
      const [k, E] = [3, 7];
      const ids = topk(T, k, E);
      for (let t = 0; t < T; t++) expect(new Set(ids.subarray(t * k, t * k + k)).size).toBe(k);
      const w = values(T * k, 71);
      const [iv, wv] = [await uploadF32(ctx, ids), await uploadF32(ctx, w)];
      const lists = await buildExpertLists(ctx, iv, wv, T, k, E);
      const want = expertListsReference(ids, w, T, k, E);
      const offsets = await readExpertOffsets(ctx, lists, E);
      expect([...offsets]).toEqual([...want.offsets]);
      expect(offsets[6]).toBe(offsets[7]); // the unrouted expert has an empty list
      expect([...(await readU32(ctx, lists.tokens, T * k))]).toEqual([...want.tokens]);
      expect([...(await readF32(ctx, lists.weights, T * k))]).toEqual([...want.weights]);
      releaseExpertLists(ctx, lists);
      ctx.pool.release(iv.buffer);
      ctx.pool.release(wv.buffer);
    });
  }
});
