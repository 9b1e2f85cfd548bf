import { describe, expect, it } from 'vitest';
import { route } from '../../forward/reference/router.ts';
import type { RouterSpec } from '../../models/arch.ts';
import { values } from '../../gpu/kernels/kernel-test-data.ts';
import { checkExhaustive, exhaustiveChoice, subsetCount, subsets, subsetSquaredError, type ExhaustiveInput } from './exhaustive.ts';

const SOFTMAX: RouterSpec = { experts: 6, topK: 2, scoring: 'softmax', normTopkProb: true, groups: null, routedScalingFactor: 1, correctionBias: false, jitterEps: 0 };
const V3: RouterSpec = {
  experts: 8, topK: 2, scoring: 'sigmoid', normTopkProb: true, groups: { nGroup: 2, topkGroup: 1, groupScore: 'top2-sum' }, routedScalingFactor: 2.5, correctionBias: true, jitterEps: 0,
};
const NO_RENORM: RouterSpec = { ...SOFTMAX, normTopkProb: false };

/** Random expert outputs f [E, T, H], their per-token Gram and logits: the direct ‖Σ d f‖² is the reference. */
function problem(router: RouterSpec, T: number, H: number, seed: number): { inp: ExhaustiveInput; f: Float32Array } {
  const E = router.experts;
  const f = values(E * T * H, seed);
  const gram = new Float32Array(T * E * E);
  for (let t = 0; t < T; t++)
    for (let i = 0; i < E; i++)
      for (let j = 0; j < E; j++) {
        let s = 0;
        for (let h = 0; h < H; h++) s += f[(i * T + t) * H + h]! * f[(j * T + t) * H + h]!;
        gram[t * E * E + i * E + j] = s;
      }
  const logits = values(T * E, seed + 1, 3);
  const bias = router.correctionBias ? values(E, seed + 2, 0.2) : undefined;
  let sumSqRef = 0;
  for (let t = 0; t < T; t++) {
    const r = route(logits.subarray(t * E, (t + 1) * E), router, { correctionBias: bias });
    for (let h = 0; h < H; h++) {
      let y = 0;
      r.experts.forEach((e, j) => (y += r.weights[j]! * f[(e * T + t) * H + h]!));
      sumSqRef += y * y;
    }
  }
  return { inp: { tokens: T, experts: E, logits, gram, sumSqRef, router, correctionBias: bias }, f };
}

function directError(p: { inp: ExhaustiveInput; f: Float32Array }, kept: number[], H: number): number {
  const { inp, f } = p;
  const E = inp.experts;
  const T = inp.tokens;
  const removed = new Set(Array.from({ length: E }, (_, e) => e).filter((e) => !kept.includes(e)));
  let s = 0;
  for (let t = 0; t < T; t++) {
    const z = inp.logits.subarray(t * E, (t + 1) * E);
    const a = route(z, inp.router, { correctionBias: inp.correctionBias });
    const b = route(z, inp.router, { removed, correctionBias: inp.correctionBias });
    for (let h = 0; h < H; h++) {
      let d = 0;
      a.experts.forEach((e, j) => (d += a.weights[j]! * f[(e * T + t) * H + h]!));
      b.experts.forEach((e, j) => (d -= b.weights[j]! * f[(e * T + t) * H + h]!));
      s += d * d;
    }
  }
  return s / inp.sumSqRef;
}

describe('exhaustive expert choice (NAEE)', () => {
  it('enumerates every subset once, lexicographically, per routing group when grouped', () => {
    const all = [...subsets(3, { n: 6, topK: 2 })];
    expect(all).toHaveLength(20);
    expect(subsetCount(3, { n: 6, topK: 2 })).toBe(20);
    expect(all[0]).toEqual([0, 1, 2]);
    expect(all[19]).toEqual([3, 4, 5]);
    expect(new Set(all.map((s) => s.join())).size).toBe(20);
    const g = [...subsets(4, { n: 8, topK: 2, groups: { nGroup: 2, topkGroup: 1 } })];
    expect(g).toHaveLength(36);
    expect(subsetCount(4, { n: 8, topK: 2, groups: { nGroup: 2, topkGroup: 1 } })).toBe(36);
    expect(g[0]).toEqual([0, 1, 4, 5]);
    expect(g[1]).toEqual([0, 1, 4, 6]);
    for (const s of g) expect([s.filter((e) => e < 4).length, s.filter((e) => e >= 4).length]).toEqual([2, 2]);
    expect(subsetCount(8, { n: 16, topK: 2 })).toBe(12870);
  });

  it('the Gram-matrix error of a subset equals the direct ‖y − ŷ‖² / ‖y‖² (softmax renormalised, not renormalised, DeepSeek-V3)', () => {
    for (const [router, K] of [[SOFTMAX, 3], [NO_RENORM, 2], [V3, 4]] as const) {
      const H = 7;
      const p = problem(router, 9, H, 5);
      for (const s of subsets(K, { n: router.experts, topK: router.topK, groups: router.groups ?? undefined })) {
        const got = subsetSquaredError(p.inp, s) / p.inp.sumSqRef;
        expect(Math.abs(got - directError(p, s, H))).toBeLessThan(1e-5 * Math.max(1, got));
      }
    }
  });

  it('keeps the subset of least error, counts the subsets, and keeps the first of equal errors', () => {
    const H = 5;
    const p = problem(V3, 11, H, 9);
    const rule = { n: 8, topK: 2, groups: { nGroup: 2, topkGroup: 1 } };
    const c = exhaustiveChoice(p.inp, 4, rule);
    expect(c.subsets).toBe(36);
    const errs = [...subsets(4, rule)].map((s) => ({ s, e: directError(p, s, H) }));
    const min = Math.min(...errs.map((x) => x.e));
    expect(Math.abs(c.error - min)).toBeLessThan(1e-5);
    expect(c.kept).toEqual(errs.find((x) => x.e === min)!.s);
    expect(c.runnerUp!).toBeGreaterThanOrEqual(c.error);
    // Experts with zero outputs: every subset has error 0, the first one wins.
    const flat = problem(SOFTMAX, 4, 3, 2);
    flat.inp.gram.fill(0);
    expect(exhaustiveChoice(flat.inp, 3, { n: 6, topK: 2 }).kept).toEqual([0, 1, 2]);
  });

  it('refuses layers of more than 16 experts, naming the layer and the subset count', () => {
    expect(() => checkExhaustive(16, { n: 32, topK: 2, name: 'layer 4' })).toThrow(/layer 4 has 32 experts; exhaustive search .* at most 16 \(here 6\.01e\+8 subsets\)/);
    expect(() => checkExhaustive(1, { n: 8, topK: 2, name: 'layer 0' })).toThrow(/below the router's top-k floor/);
  });
});
