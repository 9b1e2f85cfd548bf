import { expect, it } from 'vitest';
import { describeGpu } from '../../../tests/gpu-harness.ts';
import { expectClose, readF32, uploadF32, values } from './kernel-test-data.ts';
import { attention, attentionReference, type AttentionArgs } from './attention.ts';

describeGpu('attention kernel', (gpu) => {
  it('GQA 6/2 heads, head dim 40, windows of 13 (T = 37, last window partial)', async () => {
    const ctx = gpu();
    const shape = { tokens: 37, seqLen: 13, heads: 6, kvHeads: 2, qkDim: 40, vDim: 40, scale: 1 / Math.sqrt(40) };
    const q = values(37 * 6 * 40, 51, 2);
    const k = values(37 * 2 * 40, 52, 2);
    const v = values(37 * 2 * 40, 53);
    const [qv, kv, vv] = [await uploadF32(ctx, q), await uploadF32(ctx, k), await uploadF32(ctx, v)];
    const out = await uploadF32(ctx, new Float32Array(37 * 6 * 40));
    await attention(ctx, { q: qv, k: kv, v: vv, out, ...shape });
    const want = attentionReference(q, k, v, shape);
    const got = await readF32(ctx, out, want.length);
    expectClose(got, want, 1e-5);
    // The first token of each window sees only itself: its output is its own value row.
    expect(got[13 * 6 * 40]).toBeCloseTo(v[13 * 2 * 40]!, 6);
    for (const b of [qv, kv, vv, out]) ctx.pool.release(b.buffer);
  });

  it('MLA shapes (hdk 24 ≠ hdv 16), v read in place from a fused [T, heads, nope + v] buffer, sliding window 5', async () => {
    const ctx = gpu();
    const [T, H, hdk, hdv, nope] = [37, 3, 24, 16, 8];
    const q = values(T * H * hdk, 54, 2);
    const k = values(T * H * hdk, 55, 2);
    const kvb = values(T * H * (nope + hdv), 56); // kv_b_proj output: per head [k_nope | v]
    const args: Omit<AttentionArgs, 'q' | 'k' | 'v' | 'out'> = {
      tokens: T, seqLen: 20, heads: H, kvHeads: H, qkDim: hdk, vDim: hdv, scale: 0.3, window: 5,
      vLayout: { offset: nope, headStride: nope + hdv, tokenStride: H * (nope + hdv) },
      outLayout: { offset: 2 },
    };
    const [qv, kv, vv] = [await uploadF32(ctx, q), await uploadF32(ctx, k), await uploadF32(ctx, kvb)];
    const out = await uploadF32(ctx, new Float32Array(2 + T * H * hdv));
    await attention(ctx, { q: qv, k: kv, v: vv, out, ...args });
    const want = attentionReference(q, k, kvb, args);
    const got = await readF32(ctx, out, 2 + want.length);
    expectClose(got.subarray(2), want, 1e-5);
    for (const b of [qv, kv, vv, out]) ctx.pool.release(b.buffer);
  });
});
