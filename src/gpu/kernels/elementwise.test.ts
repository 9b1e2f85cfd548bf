import { expect, it } from 'vitest';
import { describeGpu } from '../../../tests/gpu-harness.ts';
import { expectClose, readF32, uploadF32, values } from './kernel-test-data.ts';
import { add, addInto, copyRows, copyRowsReference, scaleInto, sigmoidGateAdd, siluMul } from './elementwise.ts';

const silu = (v: number): number => v / (1 + Math.exp(-v));
const sigmoid = (v: number): number => 1 / (1 + Math.exp(-v));

describeGpu('elementwise kernels', (gpu) => {
  it('silu·mul, add, add-into, scale-into, sigmoid gate on 37×101 with offsets', async () => {
    const ctx = gpu();
    const [T, H] = [37, 101];
    const n = T * H;
    const g = values(n + 3, 101, 6);
    const u = values(n, 102);
    const [gv, uv, out] = [await uploadF32(ctx, g), await uploadF32(ctx, u), await uploadF32(ctx, new Float32Array(n))];
    await siluMul(ctx, { view: gv, offset: 3 }, uv, out, n);
    const want = Float32Array.from({ length: n }, (_, i) => silu(g[i + 3]!) * u[i]!);
    expectClose(await readF32(ctx, out, n), want, 1e-6);

    const sum = await uploadF32(ctx, new Float32Array(n));
    await add(ctx, out, uv, sum, n);
    const wantSum = want.map((v, i) => v + u[i]!);
    expectClose(await readF32(ctx, sum, n), wantSum, 1e-6);

    await addInto(ctx, sum, uv, n);
    await scaleInto(ctx, sum, -0.5, n);
    const wantScaled = wantSum.map((v, i) => (v + u[i]!) * -0.5);
    expectClose(await readF32(ctx, sum, n), wantScaled, 1e-6);

    const gates = values(T * 2, 103, 4); // gate logits of a [T, 2] buffer, column 1
    const gatev = await uploadF32(ctx, gates);
    await sigmoidGateAdd(ctx, sum, uv, { view: gatev, offset: 1 }, T, H, 2);
    const wantGated = wantScaled.map((v, i) => v + sigmoid(gates[Math.floor(i / H) * 2 + 1]!) * u[i]!);
    const got = await readF32(ctx, sum, n);
    expectClose(got, wantGated, 1e-6);
    expect(got[H]).not.toBe(wantScaled[H]);
    for (const b of [gv, uv, out, sum, gatev]) ctx.pool.release(b.buffer);
  });

  it('copyRows assembles MLA keys: k_nope slices per head, k_pe broadcast over heads (T=37, 3 heads, 24 = 16 + 8)', async () => {
    const ctx = gpu();
    const [T, H, nope, rope, hdv] = [37, 3, 16, 8, 40];
    const kvb = values(T * H * (nope + hdv), 104); // per head [k_nope | v]
    const kpe = values(T * rope, 105); // shared across heads
    const [kvv, pev, kv] = [await uploadF32(ctx, kvb), await uploadF32(ctx, kpe), await uploadF32(ctx, new Float32Array(T * H * (nope + rope)))];
    const nopeArgs = { outer: T, inner: H, width: nope, src: kvv, srcStrides: [H * (nope + hdv), nope + hdv], dst: kv, dstStrides: [H * (nope + rope), nope + rope] } as const;
    const peArgs = { outer: T, inner: H, width: rope, src: pev, srcStrides: [rope, 0], dst: { view: kv, offset: nope }, dstStrides: [H * (nope + rope), nope + rope] } as const;
    await copyRows(ctx, nopeArgs);
    await copyRows(ctx, peArgs);
    const want = new Float32Array(T * H * (nope + rope));
    copyRowsReference(nopeArgs, kvb, want);
    copyRowsReference(peArgs, kpe, want);
    const got = await readF32(ctx, kv, want.length);
    expect([...got]).toEqual([...want]);
    expect(got[nope + rope + nope]).toBe(kpe[0]); // head 1 of token 0 got the shared rope part
    for (const b of [kvv, pev, kv]) ctx.pool.release(b.buffer);
  });
});
