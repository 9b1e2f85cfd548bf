import { describe, expect, it } from 'vitest';
import { clusterCountSweep, clustersFromLabels, greedyRejectMixed, LayerClusterer, searchThresholdExact, searchThresholdOfficial, sortEntries } from './cluster.ts';
import { routerDistance } from './similarity.ts';

/** Symmetric matrix with +Inf diagonal from upper-triangle pairs. */
function sym(n: number, pairs: Record<string, number>): Float64Array {
  const D = new Float64Array(n * n).fill(Infinity);
  for (const [k, v] of Object.entries(pairs)) {
    const [i, j] = k.split(',').map(Number) as [number, number];
    D[i * n + j] = v;
    D[j * n + i] = v;
  }
  return D;
}
const run = (D: Float64Array, n: number, tau: number, min = 0) => clustersFromLabels(greedyRejectMixed(D, sortEntries(D, n), tau, min));

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32);
}
function randomRouter(n: number, d: number, seed: number): Float32Array {
  const r = lcg(seed);
  return Float32Array.from({ length: n * d }, () => r() - 0.5);
}

describe('greedy_but_reject_mixed', () => {
  const D3 = sym(3, { '0,1': 1, '1,2': 2, '0,2': 3 });

  it('merges only when every member is closer than τ to the other endpoint', () => {
    expect(run(D3, 3, 2.5)).toEqual([[0, 1], [2]]); // (1,2) rejected: expert 0 is 3 from expert 2
    expect(run(D3, 3, 3.5)).toEqual([[0, 1, 2]]);
    expect(run(D3, 3, 1)).toEqual([[0], [1], [2]]); // nothing strictly below τ
  });

  it('is relaxed complete linkage: only distances to the two endpoints are checked', () => {
    const D = sym(4, { '0,1': 1, '2,3': 1.1, '1,2': 1.5, '0,2': 1.6, '1,3': 1.7, '0,3': 5 });
    expect(run(D, 4, 2)).toEqual([[0, 1, 2, 3]]); // 0 and 3 are 5 apart, yet share a cluster
  });

  it('rejects pairs permanently: a killed entry blocks a later merge', () => {
    const D = sym(4, { '0,1': 1, '1,2': 1.1, '0,2': 2.5, '2,3': 1.2, '1,3': 1.3, '0,3': 1.4 });
    // (1,2) is rejected because of d(0,2); later (1,3) would pass on distances alone but sees V[2,1] = ∞.
    expect(run(D, 4, 2)).toEqual([[0, 1], [2, 3]]);
  });

  it('breaks ties like torch.argmin on the flattened matrix (first row-major hit)', () => {
    const D = sym(4, { '0,1': 3, '2,3': 1, '0,2': 1, '1,3': 2, '0,3': 9, '1,2': 9 });
    // (0,2) and (2,3) tie at 1; flat index 2 < 11, so 0 joins 2 first, then 3 cannot join (d(0,3)=9 with τ=5).
    expect(run(D, 4, 5)).toEqual([[0, 2], [1, 3]]);
  });

  it('stops at the per-layer cap n − c', () => {
    expect(run(D3, 3, Infinity, 2)).toEqual([[0, 1], [2]]);
  });

  it('τ = +Inf with cap n − K always yields exactly K clusters (random and tie-heavy matrices)', () => {
    for (let seed = 0; seed < 12; seed++) {
      const n = 6 + (seed % 5) * 3;
      const W = seed % 2 ? randomRouter(n, 8, seed) : Float32Array.from(randomRouter(n, 4, seed), (v) => (v > 0 ? 1 : 0));
      const c = new LayerClusterer({ distances: routerDistance(W, n, seed % 2 ? 8 : 4), n, topK: 1 });
      for (let K = 1; K <= n; K++) {
        const cl = c.clustersUniform(K);
        expect(cl).toHaveLength(K);
        expect(cl.flat().sort((a, b) => a - b)).toEqual([...Array(n).keys()]);
      }
    }
  });
});

describe('LayerClusterer floors and groups', () => {
  const n = 8;
  const D = routerDistance(randomRouter(n, 6, 7), n, 6);

  it('keeps at least top-k experts and validates K', () => {
    const c = new LayerClusterer({ distances: D, n, topK: 2 });
    expect(c.clustersUniform(2)).toHaveLength(2);
    expect(c.clustersUniform(n).every((x) => x.length === 1)).toBe(true);
    expect(() => c.clustersUniform(1)).toThrow(/top-k floor of 2.*InvalidPlan/);
    expect(() => c.clustersUniform(9)).toThrow(/\[1, 8\]/);
    expect(c.countAt(Infinity)).toBe(2); // threshold mode never goes below the floor
  });

  it('honours the official cap c in threshold mode', () => {
    const c = new LayerClusterer({ distances: D, n, topK: 1, maxRemoved: 3 });
    expect(c.countAt(Infinity)).toBe(5);
  });

  it('clusters grouped routing within groups, same count per group', () => {
    const n16 = 16;
    const Dg = routerDistance(randomRouter(n16, 5, 3), n16, 5, { normalize: false });
    const c = new LayerClusterer({ distances: Dg, n: n16, topK: 4, groups: { nGroup: 4, topkGroup: 2 } });
    expect(() => c.clustersUniform(6)).toThrow(/multiple of n_group = 4/);
    expect(() => c.clustersUniform(4)).toThrow(/below the floor of 2/);
    const cl = c.clustersUniform(8);
    expect(cl).toHaveLength(8);
    for (let g = 0; g < 4; g++) expect(cl.filter((x) => Math.floor(x[0]! / 4) === g)).toHaveLength(2);
    for (const x of cl) expect(new Set(x.map((e) => Math.floor(e / 4))).size).toBe(1);
    // threshold mode: every group ends with the same count, a multiple of n_group overall
    for (const tau of [0.5, 1, 1.5, 2, Infinity]) {
      const k = c.clustersAt(tau);
      const per = [0, 1, 2, 3].map((g) => k.filter((x) => Math.floor(x[0]! / 4) === g).length);
      expect(new Set(per).size).toBe(1);
      expect(k).toHaveLength(c.countAt(tau));
      expect(per[0]).toBeGreaterThanOrEqual(2);
    }
  });
});

describe('threshold searches', () => {
  const layersFor = (seed: number, L: number, n: number) =>
    Array.from({ length: L }, (_, l) => new LayerClusterer({ distances: routerDistance(randomRouter(n, 5, seed * 100 + l), n, 5, { normalize: false }), n, topK: 1 }));

  it('the sweep tabulates the same counts as direct runs', () => {
    const [c] = layersFor(1, 1, 9);
    const D = routerDistance(randomRouter(9, 5, 100), 9, 5, { normalize: false });
    const e = sortEntries(D, 9);
    const sw = clusterCountSweep(D, e, 1);
    sw.taus.forEach((tau, j) => expect(sw.counts[j]).toBe(c!.countAt(tau)));
  });

  it('exact search hits every achievable total and only those (brute force, including non-monotone layers)', () => {
    let nonMonotone = 0;
    for (let seed = 0; seed < 25; seed++) {
      const layers = layersFor(seed, 2, 8);
      const taus = [...new Set(layers.flatMap((l) => l.candidateValues().flatMap((v) => [...v])))].sort((a, b) => a - b);
      taus.push(Infinity);
      const totals = taus.map((t) => layers.reduce((s, l) => s + l.countAt(t), 0));
      if (totals.some((t, i) => i > 0 && t > totals[i - 1]!)) nonMonotone++;
      const achievable = new Set(totals);
      for (let T = 2; T <= 16; T++) {
        const r = searchThresholdExact(layers, T);
        expect(r.exact).toBe(achievable.has(T));
        expect(layers.reduce((s, l) => s + l.countAt(r.tau), 0)).toBe(r.total);
        if (!r.exact) {
          expect(r.message).toMatch(new RegExp(`no global threshold keeps exactly ${T} experts`));
          if (r.below) expect(r.below.total).toBeLessThan(T);
          if (r.above) expect(r.above.total).toBeGreaterThan(T);
        }
      }
    }
    expect(nonMonotone).toBeGreaterThan(0); // the brute force really covered non-monotone totals
  });

  it('reports the closest totals when the target is out of reach', () => {
    const layers = layersFor(2, 2, 6);
    const r = searchThresholdExact(layers, 1); // the floor keeps ≥ 1 per layer
    expect(r.exact).toBe(false);
    expect(r.above).toEqual({ tau: Infinity, total: 2 });
    expect(r.total).toBe(2);
    expect(searchThresholdExact(layers, 13).below?.total).toBe(12);
  });

  it('the official step search converges or stalls like the reference script', () => {
    const layers = layersFor(3, 3, 8);
    const ok = searchThresholdOfficial(layers, 20, 0.5);
    if (ok.exact) expect(layers.reduce((s, l) => s + l.countAt(ok.tau), 0)).toBe(20);
    const stalled = searchThresholdOfficial(layers, 20, Infinity); // τ never moves from +Inf
    expect(stalled.exact).toBe(false);
    expect(stalled.evaluations).toBe(10);
    expect(stalled.message).toMatch(/10 identical totals of 3/);
  });
});
