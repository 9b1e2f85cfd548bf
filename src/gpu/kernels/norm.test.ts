import { expect, it } from 'vitest';
import { describeGpu } from '../../../tests/gpu-harness.ts';
import { releaseTensor } from '../tensor.ts';
import { expectClose, readF32, uploadF32, uploadWeight, values } from './kernel-test-data.ts';
import { norm, normReference } from './norm.ts';

describeGpu('norm kernels', (gpu) => {
  for (const [kind, dtype, rows, dim] of [
    ['rms', 'BF16', 37, 101],
    ['rms', 'F32', 37 * 3, 24], // per-head q/k norm: [T·heads, head_dim]
    ['layer', 'F16', 37, 101],
    ['layer', 'BF16', 5, 301],
  ] as const) {
    it(`${kind}norm ${dtype} rows=${rows} dim=${dim} matches the reference`, async () => {
      const ctx = gpu();
      const xOff = 5;
      const x = values(xOff + rows * dim, 31, 3);
      for (let i = 0; i < dim; i++) x[xOff + i] = x[xOff + i]! + 10; // a row with a large mean
      const { t: w, exact: we } = await uploadWeight(ctx, values(dim, 32, 2), dtype, [dim]);
      const b = kind === 'layer' ? await uploadWeight(ctx, values(dim, 33), dtype, [dim]) : undefined;
      const xv = await uploadF32(ctx, x);
      const out = await uploadF32(ctx, new Float32Array(rows * dim + 2));
      const eps = 1e-6;
      await norm(ctx, { kind, x: xv, out, rows, dim, weight: w, ...(b ? { bias: b.t } : {}), eps, xOffset: xOff, outOffset: 2 });
      const want = normReference(kind, x.subarray(xOff), rows, dim, we, eps, b?.exact);
      const got = await readF32(ctx, out, rows * dim + 2);
      expectClose(got.subarray(2), want, 1e-5);
      expect(Math.abs(got[2]!)).toBeGreaterThan(1e-3);
      releaseTensor(ctx, w);
      if (b) releaseTensor(ctx, b.t);
      ctx.pool.release(xv.buffer);
      ctx.pool.release(out.buffer);
    });
  }
});
