import { describe, expect, it } from 'vitest';
import { accumulateCoactivation, coactivationDistance, frobeniusNorm, mixedDistance, routerDistance, routerDistanceFromSquared, routerSquaredDistances } from './similarity.ts';

// rows: (0,0), (3,4), (6,8)  → pairwise distances 5, 10, 5; ‖W‖_F = sqrt(9+16+36+64) = sqrt(125)
const W = Float32Array.from([0, 0, 3, 4, 6, 8]);

describe('router distances', () => {
  it('computes L2 distances with a +Inf diagonal', () => {
    const D = routerDistance(W, 3, 2, { normalize: false });
    expect([...D]).toEqual([Infinity, 5, 10, 5, Infinity, 5, 10, 5, Infinity]);
  });

  it('divides by the Frobenius norm of the whole router when normalising (the default)', () => {
    const D = routerDistance(W, 3, 2);
    expect(frobeniusNorm(W)).toBeCloseTo(Math.sqrt(125), 12);
    expect(D[1]).toBeCloseTo(5 / Math.sqrt(125), 14);
    expect(D[2]).toBeCloseTo(10 / Math.sqrt(125), 14);
  });

  it('accepts precomputed squared distances (GPU path), clamping rounding negatives', () => {
    const sq = routerSquaredDistances(W, 3, 2);
    expect([...sq]).toEqual([0, 25, 100, 25, 0, 25, 100, 25, 0]);
    const gpu = Float32Array.from(sq);
    gpu[1] = -1e-7; // rounding noise from a Gram-style kernel
    gpu[3] = -1e-7;
    const D = routerDistanceFromSquared(gpu, 3);
    expect(D[1]).toBe(0);
    expect(D[5]).toBe(5);
    expect(D[4]).toBe(Infinity);
  });

  it('handles d not divisible by 4 and matches a naive loop', () => {
    const n = 5, d = 11;
    const w = Float32Array.from({ length: n * d }, (_, i) => Math.sin(i * 1.7));
    const D = routerDistance(w, n, d, { normalize: false });
    for (let i = 0; i < n; i++)
      for (let j = 0; j < n; j++) {
        if (i === j) continue;
        let s = 0;
        for (let k = 0; k < d; k++) s += (w[i * d + k]! - w[j * d + k]!) ** 2;
        expect(D[i * n + j]).toBeCloseTo(Math.sqrt(s), 12);
      }
  });

  it('rejects wrong sizes', () => {
    expect(() => routerDistance(W, 3, 3)).toThrow(/router weight has 6 values, expected 9/);
  });
});

describe('co-activation distances', () => {
  const a = Float64Array.from([0, 6, 2, 6, 0, 0, 2, 0, 0]); // mean over 9 entries = 16/9

  it('is −a/|mean(−a)| with the diagonal included in the mean', () => {
    const D = coactivationDistance(a, 3);
    expect(D[1]).toBeCloseTo(-6 / (16 / 9), 14);
    expect(D[5]).toBe(-0);
    expect(D[0]).toBe(Infinity);
  });

  it('mixes μ·coactivation + router distance', () => {
    const R = routerDistance(W, 3, 2, { normalize: false });
    const M = mixedDistance(R, a, 3, 0.5);
    expect(M[1]).toBeCloseTo(0.5 * (-6 / (16 / 9)) + 5, 14);
    expect(M[8]).toBe(Infinity);
  });

  it('refuses an all-zero count matrix', () => {
    expect(() => coactivationDistance(new Float64Array(9), 3)).toThrow(/all zeros/);
  });

  it('accumulates top-k co-activation counts symmetrically', () => {
    const c = new Float64Array(16);
    accumulateCoactivation(c, 4, Int32Array.from([0, 2, 1, 3, 2, 0]), 2);
    expect(c[0 * 4 + 2]).toBe(2);
    expect(c[2 * 4 + 0]).toBe(2);
    expect(c[1 * 4 + 3]).toBe(1);
    expect(c[0]).toBe(0);
  });
});
