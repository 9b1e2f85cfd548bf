import { expect, it } from 'vitest';
import { describeGpu } from '../../../tests/gpu-harness.ts';
import { readBuffer } from '../pool.ts';
import { releaseTensor, uploadTensor } from '../tensor.ts';
import { sqdist, sqdistReference } from './sqdist.ts';

function matrix(n: number, d: number, seed: number): Float32Array {
  const x = new Float32Array(n * d);
  for (let i = 0; i < x.length; i++) x[i] = Math.sin((i + seed) * 0.7123) * (1 + (i % 5));
  return x;
}

function expectClose(got: Float32Array, want: Float32Array, rel: number): void {
  expect(got.length).toBe(want.length);
  let worst = 0;
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!) / Math.max(1, Math.abs(want[i]!)));
  expect(worst).toBeLessThan(rel);
}

describeGpu('sqdist kernel', (gpu) => {
  for (const [n, d] of [
    [37, 1001],
    [1, 5],
    [4, 3],
    [70, 129],
    [37, 1000],
    [5, 64],
  ] as const) {
    it(`matches the CPU reference for n=${n}, d=${d} (${d % 4 === 0 ? 'vec4' : 'scalar'} path)`, async () => {
      const ctx = gpu();
      const x = matrix(n, d, n);
      const t = await uploadTensor(ctx, new Uint8Array(x.buffer), 'F32', [n, d]);
      const out = await sqdist(ctx, t);
      const got = new Float32Array((await readBuffer(ctx, out.buffer, out.byteLength)).buffer);
      const want = sqdistReference(x, n, d);
      expectClose(got, want, 1e-5);
      for (let i = 0; i < n; i++) expect(got[i * n + i]).toBe(0);
      if (n > 1) expect(got[1]).toBeGreaterThan(0);
      releaseTensor(ctx, t);
      ctx.pool.release(out.buffer);
    });
  }
});
