import { expect, it } from 'vitest';
import { describeGpu } from '../../../tests/gpu-harness.ts';
import { readBuffer, STORAGE_USAGE } from '../pool.ts';
import { releaseTensor, uploadTensor } from '../tensor.ts';
import { rowdist, rowdistAccumulate, rowdistReference } from './rowdist.ts';

function vec(n: number, seed: number): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = Math.cos((i + 1) * 0.37 + seed) * (1 + ((i * 7) % 3));
  return x;
}

async function readF32(ctx: Parameters<typeof readBuffer>[0], b: { buffer: GPUBuffer; byteLength: number }): Promise<Float32Array> {
  return new Float32Array((await readBuffer(ctx, b.buffer, b.byteLength)).buffer);
}

function expectClose(got: Float32Array, want: Float32Array, rel: number): void {
  expect(got.length).toBe(want.length);
  for (let i = 0; i < want.length; i++) expect(Math.abs(got[i]! - want[i]!) / Math.max(1, Math.abs(want[i]!))).toBeLessThan(rel);
}

describeGpu('rowdist kernel', (gpu) => {
  it('distance of 37 rows (d=1001) to a vector, across x parts', async () => {
    const ctx = gpu();
    const [n, d] = [37, 1001];
    const x = vec(n * d, 1);
    const c = vec(d, 2);
    const xt = await uploadTensor(ctx, new Uint8Array(x.buffer), 'F32', [n, d], { maxBindingBytes: 9 * d * 4 });
    expect(xt.parts.length).toBe(5);
    const ct = await uploadTensor(ctx, new Uint8Array(c.buffer), 'F32', [d]);
    const acc = await rowdist(ctx, xt, ct);
    const want = new Float32Array(n);
    rowdistReference({ x, c, acc: want, m: n, dc: d });
    expectClose(await readF32(ctx, acc), want, 1e-5);
    expect(want[0]).toBeGreaterThan(0);
    releaseTensor(ctx, xt);
    releaseTensor(ctx, ct);
    ctx.pool.release(acc.buffer);
  });

  it('accumulates column chunks (row stride) and long single-row chunks streamed one at a time', async () => {
    const ctx = gpu();
    const [n, d] = [37, 1001];
    const x = vec(n * d, 3);
    const c = vec(d, 4);
    const xt = await uploadTensor(ctx, new Uint8Array(x.buffer), 'F32', [n, d]);
    const ct = await uploadTensor(ctx, new Uint8Array(c.buffer), 'F32', [d]);
    const accBytes = n * 4;
    const acc = { buffer: await ctx.pool.acquire(accBytes, STORAGE_USAGE), byteLength: accBytes };
    ctx.device.queue.writeBuffer(acc.buffer, 0, new Float32Array(n));
    // Three column chunks of every row: 400 + 400 + 201.
    for (const [k, dc] of [
      [0, 400],
      [400, 400],
      [800, 201],
    ] as const)
      await rowdistAccumulate(ctx, xt.parts[0]!, ct.parts[0]!, acc, { m: n, dc, rowStride: d, xOffset: k, cOffset: k });
    const want = new Float32Array(n);
    rowdistReference({ x, c, acc: want, m: n, dc: d });
    expectClose(await readF32(ctx, acc), want, 1e-5);

    // Expert-by-expert: one 70,001-element "expert" fed as 3 chunks, each adding into acc[5] (on top of the row sum).
    const big = vec(70_001, 5);
    const centre = vec(70_001, 6);
    const bt = await uploadTensor(ctx, new Uint8Array(big.buffer), 'F32', [70_001]);
    const cb = await uploadTensor(ctx, new Uint8Array(centre.buffer), 'F32', [70_001]);
    for (const [k, dc] of [
      [0, 30_000],
      [30_000, 30_000],
      [60_000, 10_001],
    ] as const)
      await rowdistAccumulate(ctx, bt.parts[0]!, cb.parts[0]!, acc, { m: 1, dc, xOffset: k, cOffset: k, accOffset: 5 });
    rowdistReference({ x: big, c: centre, acc: want, m: 1, dc: 70_001, accOffset: 5 });
    expectClose(await readF32(ctx, acc), want, 1e-5);
    for (const t of [xt, ct, bt, cb]) releaseTensor(ctx, t);
    ctx.pool.release(acc.buffer);
  });

  it('refuses a chunk that reaches past its buffers', async () => {
    const ctx = gpu();
    const x = await uploadTensor(ctx, new Uint8Array(40), 'F32', [10]);
    await expect(rowdistAccumulate(ctx, x.parts[0]!, x.parts[0]!, x.parts[0]!, { m: 2, dc: 6 })).rejects.toThrow(/reaches past/);
    releaseTensor(ctx, x);
  });
});
