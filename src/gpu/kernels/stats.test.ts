import { expect, it } from 'vitest';
import { describeGpu } from '../../../tests/gpu-harness.ts';
import { expectClose, readF32, readU32, uploadF32, values } from './kernel-test-data.ts';
import { coactivation, coactivationReference, colSumSq, colSumSqReference } from './stats.ts';

describeGpu('statistics kernels', (gpu) => {
  it('column sums of squares over all rows, then over an expert’s gathered rows, accumulating (T=37, H=101)', async () => {
    const ctx = gpu();
    const [T, H, stride, off] = [37, 101, 103, 2];
    const x = values(off + T * stride, 81, 3);
    const ids = Uint32Array.from([0, 0, 0, 4, 9, 36, 17, 2]); // entries 3.. are this expert's tokens
    const rows = ids.subarray(3);
    const acc0 = values(H, 82);
    const [xv, iv, acc] = [await uploadF32(ctx, x), await uploadF32(ctx, ids), await uploadF32(ctx, acc0)];
    await colSumSq(ctx, { x: xv, rows: T, cols: H, acc, xOffset: off, xStride: stride });
    await colSumSq(ctx, { x: xv, rows: rows.length, cols: H, acc, xOffset: off, xStride: stride, gather: { ids: iv, offset: 3 } });
    const want = acc0.slice();
    colSumSqReference(x, Array.from({ length: T }, (_, i) => i), H, want, off, stride);
    colSumSqReference(x, rows, H, want, off, stride);
    const got = await readF32(ctx, acc, H);
    expectClose(got, want, 1e-5);
    expect(got[0]! - acc0[0]!).toBeGreaterThan(1);
    for (const b of [xv, iv, acc]) ctx.pool.release(b.buffer);
  });

  it('co-activation counts [E, E] from top-k ids, accumulated over two chunks (E=7, k=3)', async () => {
    const ctx = gpu();
    const [T, k, E] = [37, 3, 7];
    const ids = new Uint32Array(T * k);
    for (let t = 0; t < T; t++) for (let j = 0; j < k; j++) ids[t * k + j] = (t + j * 3) % E;
    const [iv, co] = [await uploadF32(ctx, ids), await uploadF32(ctx, new Uint32Array(E * E))];
    await coactivation(ctx, iv, T, k, E, co);
    await coactivation(ctx, iv, T, k, E, co);
    const want = new Uint32Array(E * E);
    coactivationReference(ids, T, k, E, want);
    coactivationReference(ids, T, k, E, want);
    const got = await readU32(ctx, co, E * E);
    expect([...got]).toEqual([...want]);
    expect(got[0]).toBeGreaterThan(0);
    ctx.pool.release(iv.buffer);
    ctx.pool.release(co.buffer);
  });
});
