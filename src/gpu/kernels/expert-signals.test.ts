import { expect, it } from 'vitest';
import { describeGpu } from '../../../tests/gpu-harness.ts';
import { colSum, colSumReference, expertGram, expertGramReference, rowSqDiff, rowSqDiffReference, scatterNorms, scatterNormsReference } from './expert-signals.ts';
import { expectClose, readF32, uploadF32, values } from './kernel-test-data.ts';

describeGpu('expert signal kernels', (gpu) => {
  it('row norms with the weighted scatter-add into token rows, at an offset in both lists (rows=37, cols=101)', async () => {
    const ctx = gpu();
    const [rows, cols, T, off, normOff] = [37, 101, 53, 5, 3];
    const f = values(rows * cols, 11, 2);
    // A token list of distinct rows (as one expert's list is), entries off.. belong to this expert.
    const ids = new Uint32Array(off + rows);
    for (let j = 0; j < rows; j++) ids[off + j] = (j * 7 + 2) % T;
    const weights = values(off + rows, 12);
    const out0 = values(T * cols, 13);
    const [fv, iv, wv, ov, nv] = [await uploadF32(ctx, f), await uploadF32(ctx, ids), await uploadF32(ctx, weights), await uploadF32(ctx, out0), await uploadF32(ctx, new Float32Array(normOff + rows + 2))];
    await scatterNorms(ctx, { f: fv, rows, cols, norms: nv, normOffset: normOff, scatter: { ids: iv, weights: wv, offset: off, out: ov } });
    const wantOut = out0.slice();
    const wantNorms = new Float32Array(normOff + rows + 2);
    scatterNormsReference(f, rows, cols, wantNorms, normOff, { ids, weights, offset: off, out: wantOut });
    expectClose(await readF32(ctx, nv, normOff + rows + 2), wantNorms, 1e-6);
    expectClose(await readF32(ctx, ov, T * cols), wantOut, 1e-6);
    // Rows no entry points at are untouched.
    const touched = new Set(ids.subarray(off));
    const got = await readF32(ctx, ov, T * cols);
    for (let t = 0; t < T; t++) if (!touched.has(t)) expect(Array.from(got.subarray(t * cols, (t + 1) * cols))).toEqual(Array.from(out0.subarray(t * cols, (t + 1) * cols)));
    for (const b of [fv, iv, wv, ov, nv]) ctx.pool.release(b.buffer);
  });

  it('row norms alone (no scatter), one column and more rows than a workgroup (rows=300, cols=1; rows=2, cols=1000)', async () => {
    const ctx = gpu();
    for (const [rows, cols] of [[300, 1], [2, 1000]] as const) {
      const f = values(rows * cols, 21, 3);
      const [fv, nv] = [await uploadF32(ctx, f), await uploadF32(ctx, new Float32Array(rows))];
      await scatterNorms(ctx, { f: fv, rows, cols, norms: nv });
      const want = new Float32Array(rows);
      scatterNormsReference(f, rows, cols, want);
      expectClose(await readF32(ctx, nv, rows), want, 1e-6);
      for (const b of [fv, nv]) ctx.pool.release(b.buffer);
    }
  });

  it('per-row Σ(a − b)² and Σ b² (rows=37, cols=101), zero rows when a = b', async () => {
    const ctx = gpu();
    const [rows, cols] = [37, 101];
    const a = values(rows * cols, 31);
    const b = values(rows * cols, 32);
    a.set(b.subarray(0, cols), 0); // row 0 identical
    const [av, bv, ov] = [await uploadF32(ctx, a), await uploadF32(ctx, b), await uploadF32(ctx, new Float32Array(2 * rows))];
    await rowSqDiff(ctx, av, bv, rows, cols, ov);
    const got = await readF32(ctx, ov, 2 * rows);
    expectClose(got, Float32Array.from(rowSqDiffReference(a, b, rows, cols)), 1e-5);
    expect(got[0]).toBe(0);
    for (const v of [av, bv, ov]) ctx.pool.release(v.buffer);
  });

  it('per-token Gram matrices of stacked expert outputs, symmetric (E=7, tokens=5, cols=101; E=1)', async () => {
    const ctx = gpu();
    for (const [E, T, H] of [[7, 5, 101], [1, 3, 9]] as const) {
      const f = values(E * T * H, 41 + E);
      const [fv, ov] = [await uploadF32(ctx, f), await uploadF32(ctx, new Float32Array(T * E * E))];
      await expertGram(ctx, fv, E, T, H, ov);
      const got = await readF32(ctx, ov, T * E * E);
      const want = expertGramReference(f, E, T, H);
      // Relative to the Cauchy–Schwarz bound of each entry: cancellation makes small dot products inexact.
      for (let t = 0; t < T; t++)
        for (let i = 0; i < E; i++)
          for (let j = 0; j < E; j++) {
            const at = t * E * E + i * E + j;
            const bound = Math.sqrt(want[t * E * E + i * E + i]! * want[t * E * E + j * E + j]!);
            expect(Math.abs(got[at]! - want[at]!)).toBeLessThanOrEqual(1e-5 * bound);
            expect(got[at]).toBe(got[t * E * E + j * E + i]);
          }
      for (const v of [fv, ov]) ctx.pool.release(v.buffer);
    }
  });

  it('column sums of one expert block inside a stacked buffer, accumulating over two calls (rows=37, cols=101)', async () => {
    const ctx = gpu();
    const [rows, cols, E] = [37, 101, 3];
    const f = values(E * rows * cols, 51);
    const acc0 = values(E * cols + 2, 52);
    const [fv, av] = [await uploadF32(ctx, f), await uploadF32(ctx, acc0)];
    for (let i = 0; i < 2; i++) await colSum(ctx, { f: fv, rows, cols, acc: av, fOffset: rows * cols, accOffset: cols + 1 });
    const want = acc0.slice();
    for (let i = 0; i < 2; i++) colSumReference(f, rows, cols, want, rows * cols, cols + 1);
    expectClose(await readF32(ctx, av, E * cols + 2), want, 1e-5);
    for (const v of [fv, av]) ctx.pool.release(v.buffer);
  });

  it('column sums weighted per row (0/1: the tokens routed to one expert), the weights read at an offset', async () => {
    const ctx = gpu();
    const [rows, cols, wOff] = [29, 67, 7];
    const f = values(rows * cols, 61);
    const w = new Float32Array(wOff + rows);
    for (let r = 0; r < rows; r++) w[wOff + r] = r % 3 === 1 ? 0 : 1;
    const acc0 = values(cols, 62);
    const [fv, wv, av] = [await uploadF32(ctx, f), await uploadF32(ctx, w), await uploadF32(ctx, acc0)];
    await colSum(ctx, { f: fv, rows, cols, acc: av, weights: { w: wv, offset: wOff } });
    const want = acc0.slice();
    colSumReference(f, rows, cols, want, 0, 0, { w, offset: wOff });
    const got = await readF32(ctx, av, cols);
    expectClose(got, want, 1e-5);
    // The zero-weighted rows really are left out: an unweighted sum differs.
    const all = acc0.slice();
    colSumReference(f, rows, cols, all);
    expect(Math.max(...Array.from(got, (v, c) => Math.abs(v - all[c]!)))).toBeGreaterThan(1e-2);
    for (const v of [fv, wv, av]) ctx.pool.release(v.buffer);
  });

  it('refuses an output that is an input, and short buffers, naming the kernel', async () => {
    const ctx = gpu();
    const f = await uploadF32(ctx, new Float32Array(8));
    const n = await uploadF32(ctx, new Float32Array(4));
    await expect(scatterNorms(ctx, { f, rows: 2, cols: 4, norms: n, scatter: { ids: n, weights: n, out: f } })).rejects.toThrow(/expert output norms.*own buffer/);
    await expect(rowSqDiff(ctx, f, f, 3, 4, n)).rejects.toThrow(/row squared differences.*a needs 12/);
    for (const v of [f, n]) ctx.pool.release(v.buffer);
  });
});
