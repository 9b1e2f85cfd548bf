import { describe, expect, it } from 'vitest';
import { describeGpu } from '../../../tests/gpu-harness.ts';
import type { GpuContext } from '../device.ts';
import type { BufferView } from '../dispatch.ts';
import { releaseTensor, type GpuTensor } from '../tensor.ts';
import { readU32, uploadF32, uploadFp8Weight, uploadWeight, values } from './kernel-test-data.ts';
import {
  countKept, countKeptReference, matrixMask, matrixMaskReference, nmMask, nmMaskReference, rowMask, rowMaskReference, scoreStats,
  scoreStatsReference, selectionKey, type ScoreSource,
} from './prune-mask.ts';

/** The definition, written the slow obvious way: sort (key, index) ascending, prune the first `prune`. */
function naiveKeep(keys: ArrayLike<number>, start: number, len: number, prune: number, mask: Uint32Array): void {
  const idx = Array.from({ length: len }, (_, i) => start + i);
  idx.sort((a, b) => keys[a]! - keys[b]! || a - b);
  for (const e of idx.slice(prune)) mask[e >>> 5] = (mask[e >>> 5]! | (1 << (e & 31))) >>> 0;
}

function keysOf(w: Float32Array, outDim: number, inDim: number, normSq?: Float32Array): number[] {
  return Array.from(w.subarray(0, outDim * inDim), (v, e) => selectionKey(v, normSq ? normSq[e % inDim]! : undefined));
}

/** Values drawn from a handful of levels (many exact ties), some negative, some zero. */
function tied(n: number, seed: number, levels = 5): Float32Array {
  return Float32Array.from(values(n, seed), (v) => Math.round(v * levels) / levels);
}

/** A context whose dispatch grid allows only `max` workgroups per dimension, so small shapes need a 2-D grid. */
function smallGrid(ctx: GpuContext, max: number): GpuContext {
  return Object.create(ctx, { limits: { value: { ...ctx.limits, maxComputeWorkgroupsPerDimension: max } } }) as GpuContext;
}

/** The same device presented as a hardware adapter: rowMask then sizes its workgroups as it does on GPUs. */
function asHardware(ctx: GpuContext): GpuContext {
  return Object.create(ctx, { adapter: { value: { ...ctx.adapter, isFallbackAdapter: false } } }) as GpuContext;
}

async function readMask(ctx: GpuContext, mask: BufferView, numel: number): Promise<Uint32Array> {
  const words = Math.ceil(numel / 32);
  expect(mask.byteLength).toBeGreaterThanOrEqual(words * 4);
  return (await readU32(ctx, mask, words)).slice();
}

/** Exact bitwise mask check plus the popcount on the GPU; returns the kept count. */
async function expectMask(ctx: GpuContext, mask: BufferView, want: Uint32Array, numel: number): Promise<number> {
  const got = await readMask(ctx, mask, numel);
  const firstDiff = got.findIndex((x, i) => x !== want[i]);
  expect(firstDiff, `first differing mask word ${firstDiff}: got ${got[firstDiff]?.toString(2)}, want ${want[firstDiff]?.toString(2)}`).toBe(-1);
  const kept = countKeptReference(want, numel);
  expect(await countKept(ctx, mask, numel)).toBe(kept);
  ctx.pool.release(mask.buffer);
  return kept;
}

describe('prune-mask CPU references', () => {
  it('row, N:M and matrix references equal a full sort by (key, index), ties included', () => {
    const [out, inDim] = [7, 24];
    for (const w of [values(out * inDim, 1), tied(out * inDim, 2, 2)]) {
      const normSq = Float32Array.from(values(inDim, 3), (v) => Math.round(Math.abs(v) * 3));
      for (const ns of [undefined, normSq]) {
        const keys = keysOf(w, out, inDim, ns);
        for (const k of [0, 1, 5, 12, 24]) {
          const want = new Uint32Array(Math.ceil((out * inDim) / 32));
          for (let o = 0; o < out; o++) naiveKeep(keys, o * inDim, inDim, k, want);
          expect(rowMaskReference(w, out, inDim, ns, k)).toEqual(want);
        }
        for (const prune of [0, 1, 50, 100, out * inDim]) {
          const want = new Uint32Array(Math.ceil((out * inDim) / 32));
          naiveKeep(keys, 0, out * inDim, prune, want);
          expect(matrixMaskReference(w, out, inDim, ns, prune)).toEqual(want);
        }
        for (const [n, m] of [[2, 4], [4, 8], [1, 3]] as const) {
          const want = new Uint32Array(Math.ceil((out * inDim) / 32));
          for (let g = 0; g < out * inDim; g += m) naiveKeep(keys, g, m, n, want);
          expect(nmMaskReference(w, out, inDim, ns, n, m)).toEqual(want);
        }
      }
    }
  });

  it('keys: squares in f32, Wanda scaling, subnormals as 0, NaN as +inf', () => {
    expect(selectionKey(-3, undefined)).toBe(0x41100000); // 9
    expect(selectionKey(0.5, 8)).toBe(0x40000000); // 0.25 · 8 = 2
    expect(selectionKey(1e-20, undefined)).toBe(0);
    expect(selectionKey(1, 1e-40)).toBe(0);
    expect(selectionKey(NaN, undefined)).toBe(0x7f800000);
    expect(selectionKey(0, Infinity)).toBe(0x7f800000);
  });
});

describeGpu('prune-mask kernels', (gpu) => {
  async function source(ctx: GpuContext, w: GpuTensor, normSq?: Float32Array): Promise<{ src: ScoreSource; release: () => void }> {
    const nv = normSq ? await uploadF32(ctx, normSq) : undefined;
    return {
      src: { w, ...(nv ? { normSq: nv } : {}) },
      release: () => {
        releaseTensor(ctx, w);
        if (nv) ctx.pool.release(nv.buffer);
      },
    };
  }

  it('rowMask, Wanda, F32 [37 × 101] in 5 parts: prune 0, 1, 50, 100, 101 per row, bit-exact', async () => {
    const ctx = gpu();
    const [out, inDim] = [37, 101];
    const normSq = Float32Array.from(values(inDim, 11), (v) => v * v * 50);
    const { t, exact } = await uploadWeight(ctx, values(out * inDim, 10), 'F32', [out, inDim], 8 * inDim * 4);
    expect(t.parts.length).toBe(5);
    const { src, release } = await source(ctx, t, normSq);
    for (const k of [0, 1, 50, 100, 101]) {
      const kept = await expectMask(ctx, await rowMask(ctx, { ...src, prunePerRow: k }), rowMaskReference(exact, out, inDim, normSq, k), out * inDim);
      expect(kept).toBe(out * (inDim - k));
    }
    // Wanda differs from magnitude on this data: the norms are used.
    expect(rowMaskReference(exact, out, inDim, normSq, 50)).not.toEqual(rowMaskReference(exact, out, inDim, undefined, 50));
    release();
  });

  it('rowMask, magnitude, BF16 with many exact ties, parts starting inside mask words, equal to the tie rule', async () => {
    const ctx = gpu();
    const [out, inDim] = [29, 45];
    const { t, exact } = await uploadWeight(ctx, tied(out * inDim, 12, 3), 'BF16', [out, inDim], 7 * inDim * 2);
    expect(t.parts.length).toBe(5);
    const { src, release } = await source(ctx, t);
    for (const k of [3, 17, 44]) await expectMask(ctx, await rowMask(ctx, { ...src, prunePerRow: k }), rowMaskReference(exact, out, inDim, undefined, k), out * inDim);
    release();
  });

  it('rowMask on a 2-D grid of rows (grid limited to 20 per dimension), Wanda with tied norms, BF16 [300 × 33]', async () => {
    const ctx = smallGrid(gpu(), 20);
    const [out, inDim] = [300, 33];
    const normSq = Float32Array.from({ length: inDim }, (_, i) => 1 + (i % 3));
    const { t, exact } = await uploadWeight(ctx, tied(out * inDim, 13, 4), 'BF16', [out, inDim]);
    const { src, release } = await source(ctx, t, normSq);
    await expectMask(ctx, await rowMask(ctx, { ...src, prunePerRow: 20 }), rowMaskReference(exact, out, inDim, normSq, 20), out * inDim);
    release();
  });

  it('rowMask on long rows (in = 6007, several mask words per invocation), ties and distinct, prune 1, half, all but one', async () => {
    const ctx = gpu();
    const inDim = 6007;
    for (const [out, w] of [[1, values(inDim, 14)], [3, tied(3 * inDim, 15, 6)]] as const) {
      const { t, exact } = await uploadWeight(ctx, w, 'F32', [out, inDim]);
      const { src, release } = await source(ctx, t);
      for (const k of [1, 3001, 6006])
        await expectMask(ctx, await rowMask(ctx, { ...src, prunePerRow: k }), rowMaskReference(exact, out, inDim, undefined, k), out * inDim);
      release();
    }
  });

  it('rowMask and matrixMask read FP8 weights through their block scales (4 parts, partial blocks)', async () => {
    const ctx = gpu();
    const [out, inDim, block] = [40, 72, [16, 32] as const];
    const { t, scale, exact } = await uploadFp8Weight(ctx, out, inDim, 16, block, 11 * inDim);
    expect(t.parts.length).toBe(4);
    const sv = await uploadF32(ctx, scale);
    const normSq = Float32Array.from(values(inDim, 17), (v) => Math.abs(v) + 0.5);
    const { src, release } = await source(ctx, t, normSq);
    const sc = { ...src, scale: { view: sv, block } };
    await expectMask(ctx, await rowMask(ctx, { ...sc, prunePerRow: 36 }), rowMaskReference(exact, out, inDim, normSq, 36), out * inDim);
    await expectMask(ctx, await matrixMask(ctx, { ...sc, prune: 1234 }), matrixMaskReference(exact, out, inDim, normSq, 1234), out * inDim);
    // The scales matter: without them the reference selection differs.
    const unscaled = Float32Array.from(exact, (v, e) => v / scale[Math.floor(Math.floor(e / inDim) / block[0]) * Math.ceil(inDim / block[1]) + Math.floor((e % inDim) / block[1])]!);
    expect(rowMaskReference(unscaled, out, inDim, normSq, 36)).not.toEqual(rowMaskReference(exact, out, inDim, normSq, 36));
    ctx.pool.release(sv.buffer);
    release();
  });

  // in % 32 == 0 takes the vectorised path (whole mask words per row, weights read 16 bytes at a time).
  for (const [dtype, out, inDim] of [['BF16', 40, 96], ['F32', 12, 64], ['F16', 9, 160]] as const) {
    it(`rowMask, aligned rows: ${dtype} [${out} × ${inDim}] in parts, Wanda with ties, prune 1, 30 %, all but one`, async () => {
      const ctx = gpu();
      const normSq = Float32Array.from({ length: inDim }, (_, i) => 0.5 + (i % 5));
      const bytes = dtype === 'F32' ? 4 : 2;
      const { t, exact } = await uploadWeight(ctx, tied(out * inDim, 70 + inDim, 4), dtype, [out, inDim], 5 * inDim * bytes);
      expect(t.parts.length).toBeGreaterThanOrEqual(2);
      const { src, release } = await source(ctx, t, normSq);
      for (const k of [1, Math.round(inDim * 0.3), inDim - 1])
        await expectMask(ctx, await rowMask(ctx, { ...src, prunePerRow: k }), rowMaskReference(exact, out, inDim, normSq, k), out * inDim);
      release();
    });
  }

  it('rowMask sized for a GPU (one mask word per invocation, up to 256): aligned, unaligned and 6007-long rows', async () => {
    const ctx = asHardware(gpu());
    for (const [out, inDim, dtype] of [[20, 128, 'BF16'], [11, 75, 'F32'], [2, 6007, 'BF16']] as const) {
      const normSq = Float32Array.from(values(inDim, 80), (v) => Math.round(v * 4) ** 2);
      const { t, exact } = await uploadWeight(ctx, tied(out * inDim, 81 + inDim, 5), dtype, [out, inDim]);
      const { src, release } = await source(ctx, t, normSq);
      const k = Math.floor(inDim / 3);
      await expectMask(ctx, await rowMask(ctx, { ...src, prunePerRow: k }), rowMaskReference(exact, out, inDim, normSq, k), out * inDim);
      release();
    }
  });

  it('FP8 with block scales on aligned rows (in = 128, blocks 16 × 32, 3 parts): rowMask and matrixMask', async () => {
    const ctx = gpu();
    const [out, inDim, block] = [36, 128, [16, 32] as const];
    const { t, scale, exact } = await uploadFp8Weight(ctx, out, inDim, 90, block, 13 * inDim);
    expect(t.parts.length).toBe(3);
    const sv = await uploadF32(ctx, scale);
    const sc: ScoreSource = { w: t, scale: { view: sv, block } };
    await expectMask(ctx, await rowMask(ctx, { ...sc, prunePerRow: 77 }), rowMaskReference(exact, out, inDim, undefined, 77), out * inDim);
    await expectMask(ctx, await matrixMask(ctx, { ...sc, prune: 2000 }), matrixMaskReference(exact, out, inDim, undefined, 2000), out * inDim);
    ctx.pool.release(sv.buffer);
    releaseTensor(ctx, t);
  });

  it('special values follow the reference on the GPU: NaN and ±inf kept, subnormals and −0 as 0 (Wanda rows, magnitude matrix; both paths)', async () => {
    const ctx = gpu();
    const specials = [NaN, Infinity, -Infinity, 1e-40, -1e-40, -0, 0, 1e-20, 3e38];
    for (const [out, inDim] of [[6, 40], [4, 64]] as const) {
      const w = values(out * inDim, 100 + inDim);
      w.forEach((_, e) => {
        if (e % 5 === 0) w[e] = specials[(e / 5) % specials.length]!;
      });
      const normSq = Float32Array.from(values(inDim, 101), (v, i) => [0, 1e-39, Infinity, 2][i % 7] ?? v * v);
      const { t, exact } = await uploadWeight(ctx, w, 'F32', [out, inDim]);
      const { src, release } = await source(ctx, t, normSq);
      const k = Math.floor(inDim / 2);
      await expectMask(ctx, await rowMask(ctx, { ...src, prunePerRow: k }), rowMaskReference(exact, out, inDim, normSq, k), out * inDim);
      await expectMask(ctx, await matrixMask(ctx, { w: t, prune: out * k }), matrixMaskReference(exact, out, inDim, undefined, out * k), out * inDim);
      release();
    }
  });

  it('nmMask 2:4 (in = 100) and 4:8 (in = 104), BF16 in parts, ties inside groups; n = 0 and n = m', async () => {
    const ctx = gpu();
    for (const [n, m, inDim] of [[2, 4, 100], [4, 8, 104], [0, 4, 100], [4, 4, 100]] as const) {
      const out = 23;
      const normSq = Float32Array.from({ length: inDim }, (_, i) => 1 + (i % 2));
      const { t, exact } = await uploadWeight(ctx, tied(out * inDim, 20 + m, 2), 'BF16', [out, inDim], 6 * inDim * 2);
      const { src, release } = await source(ctx, t, normSq);
      const kept = await expectMask(ctx, await nmMask(ctx, { ...src, n, m }), nmMaskReference(exact, out, inDim, normSq, n, m), out * inDim);
      expect(kept).toBe((out * inDim * (m - n)) / m);
      release();
    }
  });

  it('nmMask refuses an input size that is not a multiple of m, and n > m', async () => {
    const ctx = gpu();
    const { t } = await uploadWeight(ctx, values(3 * 101, 30), 'F32', [3, 101]);
    await expect(nmMask(ctx, { w: t, n: 2, m: 4 })).rejects.toThrow(/multiple of m, but 101 is not a multiple of 4/);
    await expect(nmMask(ctx, { w: t, n: 5, m: 4 })).rejects.toThrow(/n = 5 is more than m = 4/);
    await expect(rowMask(ctx, { w: t, prunePerRow: 102 })).rejects.toThrow(/cannot prune 102 weights per row of 101/);
    await expect(matrixMask(ctx, { w: t, prune: 304 })).rejects.toThrow(/cannot prune 304 of 303/);
    const short = await uploadF32(ctx, new Float32Array(100));
    await expect(rowMask(ctx, { w: t, normSq: short, prunePerRow: 1 })).rejects.toThrow(/normSq needs 101/);
    ctx.pool.release(short.buffer);
    releaseTensor(ctx, t);
  });

  it('matrixMask, F32 [61 × 37] in 6 parts: one threshold over the matrix, prune 0, 1, half, all but one, all', async () => {
    const ctx = gpu();
    const [out, inDim] = [61, 37];
    const numel = out * inDim;
    const normSq = Float32Array.from(values(inDim, 41), (v) => v * v * 9 + 0.1);
    const { t, exact } = await uploadWeight(ctx, values(numel, 40), 'F32', [out, inDim], 11 * inDim * 4);
    expect(t.parts.length).toBe(6);
    const nv = await uploadF32(ctx, normSq);
    for (const ns of [undefined, normSq]) {
      const src: ScoreSource = ns ? { w: t, normSq: nv } : { w: t };
      for (const prune of [0, 1, 1128, numel - 1, numel]) {
        const kept = await expectMask(ctx, await matrixMask(ctx, { ...src, prune }), matrixMaskReference(exact, out, inDim, ns, prune), numel);
        expect(kept).toBe(numel - prune);
      }
    }
    ctx.pool.release(nv.buffer);
    releaseTensor(ctx, t);
    // Not the same as pruning the same fraction per row.
    expect(matrixMaskReference(exact, out, inDim, undefined, out * 18)).not.toEqual(rowMaskReference(exact, out, inDim, undefined, 18));
  });

  it('matrixMask with ties straddling parts: the threshold key split by flat index across parts (BF16, 2-D grid)', async () => {
    const ctx = smallGrid(gpu(), 4);
    const [out, inDim] = [48, 50];
    const numel = out * inDim;
    // Three levels only, so the threshold level holds ~800 keys spread over every part.
    const { t, exact } = await uploadWeight(ctx, tied(numel, 42, 1), 'BF16', [out, inDim], 5 * inDim * 2);
    expect(t.parts.length).toBe(10);
    const { src, release } = await source(ctx, t);
    const keys = keysOf(exact, out, inDim);
    const low = keys.filter((k) => k === 0).length;
    for (const prune of [low + 1, low + 333, low + 799]) {
      const want = matrixMaskReference(exact, out, inDim, undefined, prune);
      await expectMask(ctx, await matrixMask(ctx, { ...src, prune }), want, numel);
    }
    release();
  });

  it('matrixMask over 2 parts of 1024 mask words each, on a 2-D grid (2 per dimension), aligned BF16 with ties', async () => {
    const ctx = smallGrid(gpu(), 2);
    const [out, inDim] = [64, 1024];
    const numel = out * inDim;
    const { t, exact } = await uploadWeight(ctx, tied(numel, 95, 3), 'BF16', [out, inDim], 32 * inDim * 2);
    expect(t.parts.length).toBe(2);
    const { src, release } = await source(ctx, t);
    const prune = Math.round(numel * 0.4);
    await expectMask(ctx, await matrixMask(ctx, { ...src, prune }), matrixMaskReference(exact, out, inDim, undefined, prune), numel);
    expect(await scoreStats(ctx, { ...src, normScale: 1 }).then((r) => r.numel)).toBe(numel);
    release();
  });

  it('scoreStats (OWL): sum of |w|·sqrt(normSq·scale) and the count above a threshold, BF16 in parts; magnitude', async () => {
    const ctx = gpu();
    const [out, inDim] = [53, 77];
    const normSq = Float32Array.from(values(inDim, 51), (v) => v * v * 400);
    const { t, exact } = await uploadWeight(ctx, values(out * inDim, 50), 'BF16', [out, inDim], 9 * inDim * 2);
    const { src, release } = await source(ctx, t, normSq);
    const normScale = 1 / 128;
    // A threshold in the widest gap near the 90th percentile, so f32 sqrt rounding cannot move a score across it.
    const scores = Array.from(exact, (v, e) => Math.abs(v) * Math.sqrt(normSq[e % inDim]! * normScale)).sort((a, b) => a - b);
    let above = 0;
    let gap = 0;
    for (let i = Math.floor(scores.length * 0.85); i < scores.length * 0.95; i++)
      if (scores[i + 1]! - scores[i]! > gap) [gap, above] = [scores[i + 1]! - scores[i]!, (scores[i]! + scores[i + 1]!) / 2];
    const want = scoreStatsReference(exact, out, inDim, normSq, normScale, above);
    const got = await scoreStats(ctx, { ...src, normScale, above });
    expect(got.numel).toBe(out * inDim);
    expect(Math.abs(got.sum - want.sum) / want.sum).toBeLessThan(1e-5);
    expect(got.count).toBe(want.count);
    expect(want.count).toBeGreaterThan(out * inDim * 0.04);
    const mag = await scoreStats(ctx, { w: t, normScale: 1 });
    expect(Math.abs(mag.sum - scoreStatsReference(exact, out, inDim, undefined, 1).sum) / mag.sum).toBeLessThan(1e-5);
    expect(mag.count).toBe(0);
    release();
  });

  it('countKept counts only the first numel bits (bits past the end are ignored)', async () => {
    const ctx = gpu();
    const numel = 32 * 2500 + 13;
    const words = Uint32Array.from(values(Math.ceil(numel / 32), 60), (v) => Math.floor((v + 1) * 0x7fffffff) >>> 0);
    words[words.length - 1] = 0xffffffff;
    const mv = await uploadF32(ctx, words);
    const want = countKeptReference(words, numel);
    expect(await countKept(ctx, mv, numel)).toBe(want);
    expect(await countKept(ctx, mv, numel - 13)).toBe(want - 13);
    ctx.pool.release(mv.buffer);
  });
});
