import { expect, it } from 'vitest';
import { describeGpu } from '../../../tests/gpu-harness.ts';
import { releaseTensor } from '../tensor.ts';
import { readF32, uploadF32, uploadWeight, values } from './kernel-test-data.ts';
import { embed, embedReference } from './embed.ts';

describeGpu('embedding kernel', (gpu) => {
  for (const dtype of ['BF16', 'F16', 'F32'] as const) {
    it(`${dtype} table [1001, 101] in several parts, 37 ids, bit-exact widening`, async () => {
      const ctx = gpu();
      const [V, H, T] = [1001, 101, 37];
      const { t, exact } = await uploadWeight(ctx, values(V * H, 111), dtype, [V, H], 150 * H * 4);
      expect(t.parts.length).toBeGreaterThan(3);
      const ids = Uint32Array.from({ length: T }, (_, i) => (i * 271 + 1) % V);
      ids[0] = V - 1;
      const [iv, out] = [await uploadF32(ctx, ids), await uploadF32(ctx, new Float32Array(T * H))];
      await embed(ctx, t, iv, T, out, ids);
      expect([...(await readF32(ctx, out, T * H))]).toEqual([...embedReference(exact, H, ids)]);
      await expect(embed(ctx, t, iv, T, out, [V])).rejects.toThrow(/outside the vocabulary/);
      releaseTensor(ctx, t);
      ctx.pool.release(iv.buffer);
      ctx.pool.release(out.buffer);
    });
  }
});
