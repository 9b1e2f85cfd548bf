import { expect, it } from 'vitest';
import { decodeToF32 } from '../../formats/dtype.ts';
import { describeGpu } from '../../../tests/gpu-harness.ts';
import { releaseTensor, uploadTensor } from '../tensor.ts';
import { expectClose, readF32, uploadF32, uploadFp8Weight, uploadWeight, values } from './kernel-test-data.ts';
import { fp8Reference, matmul, matmulReference } from './matmul.ts';

/** Σ_i |x_i · w_i| per output: the scale f32 rounding errors are proportional to. */
function absScale(x: Float32Array, w: Float32Array, rows: ArrayLike<number>, inDim: number, outDim: number, xOff = 0): Float32Array {
  const s = new Float32Array(rows.length * outDim);
  for (let j = 0; j < rows.length; j++)
    for (let o = 0; o < outDim; o++) {
      let a = 0;
      for (let i = 0; i < inDim; i++) a += Math.abs(x[xOff + rows[j]! * inDim + i]! * w[o * inDim + i]!);
      s[j * outDim + o] = Math.max(a, 1e-3);
    }
  return s;
}

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);
const decodeFp8 = (bytes: Uint8Array): Float32Array => decodeToF32('F8_E4M3', bytes);

describeGpu('matmul kernel', (gpu) => {
  // in = 101 takes the scalar path, 100 the vec4 path; maxBindingBytes splits W into several parts.
  for (const [dtype, inDim, xOff] of [
    ['F32', 101, 3],
    ['BF16', 101, 0],
    ['F16', 100, 4],
    ['BF16', 100, 0],
    ['F32', 100, 0],
  ] as const) {
    it(`dense ${dtype} T=37 in=${inDim} out=67 in 4+ parts, bias, xOffset ${xOff}`, async () => {
      const ctx = gpu();
      const T = 37;
      const outDim = 67;
      const x = values(xOff + T * inDim, 1);
      const { t: w, exact } = await uploadWeight(ctx, values(outDim * inDim, 2), dtype, [outDim, inDim], 17 * inDim * (dtype === 'F32' ? 4 : 2));
      expect(w.parts.length).toBeGreaterThanOrEqual(4);
      const bias = values(outDim, 3);
      const [xv, bv] = [await uploadF32(ctx, x), await uploadF32(ctx, bias)];
      const yv = await uploadF32(ctx, new Float32Array(T * outDim));
      await matmul(ctx, { x: xv, w, y: yv, tokens: T, bias: bv, xOffset: xOff });
      const want = new Float32Array(T * outDim);
      matmulReference({ x, w: exact, y: want, tokens: T, inDim, outDim, bias, xOffset: xOff });
      const got = await readF32(ctx, yv, T * outDim);
      expectClose(got, want, 1e-5, absScale(x, exact, range(T), inDim, outDim, xOff));
      expect(Math.abs(got[0]! - bias[0]!)).toBeGreaterThan(1e-3);
      releaseTensor(ctx, w);
      for (const v of [xv, bv, yv]) ctx.pool.release(v.buffer);
    });
  }

  for (const inDim of [40, 41]) {
    it(`expert gather → compact, scatter-add back, gather+scatter (BF16, in=${inDim}, split W)`, async () => {
      const ctx = gpu();
      const T = 37;
      const outDim = 24;
      const ids = Uint32Array.from([36, 0, 5, 7, 8, 13, 21, 22, 30, 31, 35, 2, 19]); // any order, each token once
      const off = 3; // this expert's entries start at 3 in a shared list
      const list = new Uint32Array(off + ids.length + 2);
      list.set(ids, off);
      const gate = values(list.length, 9);
      const x = values(T * inDim, 4);
      const { t: w, exact } = await uploadWeight(ctx, values(outDim * inDim, 5), 'BF16', [outDim, inDim], 7 * inDim * 2);
      expect(w.parts.length).toBe(4);
      const [xv, idsv, gv] = [await uploadF32(ctx, x), await uploadF32(ctx, list), await uploadF32(ctx, gate)];
      const n = ids.length;

      // gather: compact [n, out]
      const compact = await uploadF32(ctx, new Float32Array(n * outDim));
      await matmul(ctx, { x: xv, w, y: compact, tokens: n, gather: { ids: idsv, offset: off } });
      const wantCompact = new Float32Array(n * outDim);
      matmulReference({ x, w: exact, y: wantCompact, tokens: n, inDim, outDim, gather: ids });
      expectClose(await readF32(ctx, compact, n * outDim), wantCompact, 1e-5, absScale(x, exact, ids, inDim, outDim));

      // scatter-add: compact input rows [n, in] return to their tokens, weighted, onto existing values
      const cx = values(n * inDim, 6);
      const y0 = values(T * outDim, 7);
      const [cxv, yv] = [await uploadF32(ctx, cx), await uploadF32(ctx, y0)];
      await matmul(ctx, { x: cxv, w, y: yv, tokens: n, scatterAdd: { ids: idsv, weights: gv, offset: off } });
      const want = y0.slice();
      matmulReference({ x: cx, w: exact, y: want, tokens: n, inDim, outDim, scatter: { ids, weights: gate.subarray(off) } });
      const got = await readF32(ctx, yv, T * outDim);
      expectClose(got, want, 1e-5);
      expect(got[outDim]).toBe(y0[outDim]); // token 1 is not routed here: untouched

      // gather + scatter: x rows by token, result weighted back onto the same tokens
      const y1 = await uploadF32(ctx, y0);
      await matmul(ctx, { x: xv, w, y: y1, tokens: n, gather: { ids: idsv, offset: off }, scatterAdd: { ids: idsv, weights: gv, offset: off } });
      const want1 = y0.slice();
      matmulReference({ x, w: exact, y: want1, tokens: n, inDim, outDim, gather: ids, scatter: { ids, weights: gate.subarray(off) } });
      expectClose(await readF32(ctx, y1, T * outDim), want1, 1e-5);

      releaseTensor(ctx, w);
      for (const v of [xv, idsv, gv, compact, cxv, yv, y1]) ctx.pool.release(v.buffer);
    });
  }

  for (const inDim of [100, 101]) {
    it(`per-weight mask hook zeroes masked weights (F32, in=${inDim}, ${inDim % 4 ? 'scalar' : 'vec4'})`, async () => {
      const ctx = gpu();
      const T = 9;
      const outDim = 13;
      const x = values(T * inDim, 11);
      const { t: w, exact } = await uploadWeight(ctx, values(outDim * inDim, 12), 'F32', [outDim, inDim], 5 * inDim * 4);
      const mask = new Uint32Array(Math.ceil((outDim * inDim) / 32));
      const bits = values(mask.length, 13);
      for (let i = 0; i < mask.length; i++) mask[i] = Math.floor((bits[i]! + 1) * 0x7fffffff) >>> 0;
      const [xv, mv, yv] = [await uploadF32(ctx, x), await uploadF32(ctx, mask), await uploadF32(ctx, new Float32Array(T * outDim))];
      await matmul(ctx, { x: xv, w, y: yv, tokens: T, mask: mv });
      const want = new Float32Array(T * outDim);
      matmulReference({ x, w: exact, y: want, tokens: T, inDim, outDim, mask });
      const dense = new Float32Array(T * outDim);
      matmulReference({ x, w: exact, y: dense, tokens: T, inDim, outDim });
      const got = await readF32(ctx, yv, T * outDim);
      expectClose(got, want, 1e-5, absScale(x, exact, range(T), inDim, outDim));
      expect(Math.abs(got[0]! - dense[0]!)).toBeGreaterThan(1e-4);
      releaseTensor(ctx, w);
      for (const v of [xv, mv, yv]) ctx.pool.release(v.buffer);
    });
  }

  // Block-FP8 (DeepSeek-V3): out 185 = 128 + a partial row block of 57; in 259 (scalar path, a 3-wide last
  // column block) and 260 (vec4 path); parts of 16 rows, so part boundaries fall inside scale blocks.
  for (const [inDim, block] of [
    [259, [128, 128]],
    [260, [128, 128]],
    [260, [16, 24]],
    [259, [7, 5]],
  ] as const) {
    it(`FP8 with block scales ${block.join('×')}: T=37 in=${inDim} out=185 in 12 parts, bias, xOffset 4`, async () => {
      const ctx = gpu();
      const T = 37;
      const outDim = 185;
      const xOff = 4;
      const x = values(xOff + T * inDim, 31);
      const { t: w, bytes, scale, exact } = await uploadFp8Weight(ctx, outDim, inDim, 32, block, 16 * inDim + 3);
      expect(w.parts.length).toBe(12);
      expect(fp8Reference(bytes, inDim, scale, block)).toEqual(exact);
      const bias = values(outDim, 33);
      const [xv, bv, sv] = [await uploadF32(ctx, x), await uploadF32(ctx, bias), await uploadF32(ctx, scale)];
      const yv = await uploadF32(ctx, new Float32Array(T * outDim));
      await matmul(ctx, { x: xv, w, y: yv, tokens: T, bias: bv, xOffset: xOff, scale: { view: sv, block } });
      const want = new Float32Array(T * outDim);
      matmulReference({ x, w: exact, y: want, tokens: T, inDim, outDim, bias, xOffset: xOff });
      const got = await readF32(ctx, yv, T * outDim);
      expectClose(got, want, 1e-5, absScale(x, exact, range(T), inDim, outDim, xOff));

      // Without the scales the result is far off: the scales are really applied, per block.
      const raw = new Float32Array(T * outDim);
      matmulReference({ x, w: decodeFp8(bytes), y: raw, tokens: T, inDim, outDim, bias, xOffset: xOff });
      expect(Math.max(...got.map((g, i) => Math.abs(g - raw[i]!)))).toBeGreaterThan(0.1);

      // Rows 50.. of the same weight as their own tensor: the scale grid is shared through rowOffset.
      const tail = await uploadTensor(ctx, bytes.subarray(50 * inDim), 'F8_E4M3', [outDim - 50, inDim], { maxBindingBytes: 16 * inDim + 3 });
      const yt = await uploadF32(ctx, new Float32Array(T * (outDim - 50)));
      await matmul(ctx, { x: xv, w: tail, y: yt, tokens: T, xOffset: xOff, scale: { view: sv, block, rowOffset: 50 } });
      const wantT = new Float32Array(T * (outDim - 50));
      matmulReference({ x, w: exact.subarray(50 * inDim), y: wantT, tokens: T, inDim, outDim: outDim - 50, xOffset: xOff });
      expectClose(await readF32(ctx, yt, T * (outDim - 50)), wantT, 1e-5, absScale(x, exact.subarray(50 * inDim), range(T), inDim, outDim - 50, xOff));

      releaseTensor(ctx, w);
      releaseTensor(ctx, tail);
      for (const v of [xv, bv, sv, yv, yt]) ctx.pool.release(v.buffer);
    });
  }

  for (const inDim of [160, 161]) {
    it(`FP8 expert gather, scatter-add, gather+scatter (in=${inDim}, out=150: partial blocks both ways, split W)`, async () => {
      const ctx = gpu();
      const T = 37;
      const outDim = 150;
      const ids = Uint32Array.from([36, 0, 5, 7, 8, 13, 21, 22, 30, 31, 35, 2, 19]);
      const off = 2;
      const list = new Uint32Array(off + ids.length + 1);
      list.set(ids, off);
      const gate = values(list.length, 41);
      const x = values(T * inDim, 42);
      const { t: w, scale, exact } = await uploadFp8Weight(ctx, outDim, inDim, 43, [128, 128], 40 * inDim);
      expect(w.parts.length).toBe(4);
      const [xv, idsv, gv, sv] = [await uploadF32(ctx, x), await uploadF32(ctx, list), await uploadF32(ctx, gate), await uploadF32(ctx, scale)];
      const sc = { view: sv, block: [128, 128] as const };
      const n = ids.length;

      const compact = await uploadF32(ctx, new Float32Array(n * outDim));
      await matmul(ctx, { x: xv, w, y: compact, tokens: n, gather: { ids: idsv, offset: off }, scale: sc });
      const wantCompact = new Float32Array(n * outDim);
      matmulReference({ x, w: exact, y: wantCompact, tokens: n, inDim, outDim, gather: ids });
      expectClose(await readF32(ctx, compact, n * outDim), wantCompact, 1e-5, absScale(x, exact, ids, inDim, outDim));

      const cx = values(n * inDim, 44);
      const y0 = values(T * outDim, 45);
      const [cxv, yv] = [await uploadF32(ctx, cx), await uploadF32(ctx, y0)];
      await matmul(ctx, { x: cxv, w, y: yv, tokens: n, scatterAdd: { ids: idsv, weights: gv, offset: off }, scale: sc });
      const want = y0.slice();
      matmulReference({ x: cx, w: exact, y: want, tokens: n, inDim, outDim, scatter: { ids, weights: gate.subarray(off) } });
      const got = await readF32(ctx, yv, T * outDim);
      expectClose(got, want, 1e-5, Float32Array.from(want, (v) => Math.max(1, Math.abs(v)) * 10));
      expect(got[outDim]).toBe(y0[outDim]);

      const y1 = await uploadF32(ctx, y0);
      await matmul(ctx, { x: xv, w, y: y1, tokens: n, gather: { ids: idsv, offset: off }, scatterAdd: { ids: idsv, weights: gv, offset: off }, scale: sc });
      const want1 = y0.slice();
      matmulReference({ x, w: exact, y: want1, tokens: n, inDim, outDim, gather: ids, scatter: { ids, weights: gate.subarray(off) } });
      expectClose(await readF32(ctx, y1, T * outDim), want1, 1e-5, Float32Array.from(want1, (v) => Math.max(1, Math.abs(v)) * 10));

      releaseTensor(ctx, w);
      for (const v of [xv, idsv, gv, sv, compact, cxv, yv, y1]) ctx.pool.release(v.buffer);
    });
  }

  it('refuses block scales on a BF16 weight and a scale binding that is too small', async () => {
    const ctx = gpu();
    const { t: w } = await uploadWeight(ctx, values(8 * 8, 1), 'BF16', [8, 8]);
    const f8 = await uploadFp8Weight(ctx, 130, 8, 2);
    const [xv, yv, sv] = [await uploadF32(ctx, values(8, 3)), await uploadF32(ctx, new Float32Array(130)), await uploadF32(ctx, new Float32Array(1))];
    await expect(matmul(ctx, { x: xv, w, y: yv, tokens: 1, scale: { view: sv, block: [128, 128] } })).rejects.toThrow(/F8_E4M3 weights only/);
    await expect(matmul(ctx, { x: xv, w: f8.t, y: yv, tokens: 1, scale: { view: sv, block: [128, 128] } })).rejects.toThrow(/block scales needs 2/);
    releaseTensor(ctx, w);
    releaseTensor(ctx, f8.t);
    for (const v of [xv, yv, sv]) ctx.pool.release(v.buffer);
  });
});
