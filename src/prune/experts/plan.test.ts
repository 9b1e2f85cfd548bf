import { describe, expect, it } from 'vitest';
import { planExpertPruning, resolveExpertPlanSettings, resolveRepresentatives, type ExpertLayerInput } from './plan.ts';
import { memoryParamSource } from './representative.ts';
import { frobeniusNorm, routerSquaredDistances } from './similarity.ts';

/** Router with planted groups: rows of a group are its center + tiny noise. */
function planted(groups: number[][], d: number, seed: number): Float32Array {
  let s = seed;
  const r = () => ((s = (s * 48271) % 2147483647) / 2147483647) - 0.5;
  const n = groups.flat().length;
  const W = new Float32Array(n * d);
  for (const g of groups) {
    const center = Array.from({ length: d }, r);
    for (const m of g) for (let k = 0; k < d; k++) W[m * d + k] = center[k]! + 1e-4 * r();
  }
  return W;
}

const groups = [[0, 5, 6], [1], [2, 7], [3, 4]];
const W = planted(groups, 12, 3);
const layer: ExpertLayerInput = { layer: 3, n: 8, d: 12, topK: 2, routerRows: W };

describe('planExpertPruning', () => {
  it('uniform: clusters, kept (ascending), slots and removed experts', () => {
    const p = planExpertPruning([layer], { mode: 'uniform', keepPerLayer: 4 });
    const l = p.layers[0]!;
    expect(l.clusters.map((c) => c.members)).toEqual(groups);
    expect(l.kept).toEqual([0, 1, 2, 3]);
    expect(l.removed).toEqual([4, 5, 6, 7]);
    expect([...l.slotOf]).toEqual([0, 1, 2, 3, 3, 0, 0, 2]);
    expect(l.clusters.map((c) => [c.action, c.resolved])).toEqual([['select', false], ['keep', true], ['select', true], ['select', true]]);
    expect(p.unresolved).toBe(1);
    expect(p.totalKept).toBe(4);
    expect(l.distances[0]).toBe(Infinity);
    expect(p.settings.normalize).toBe(false);
  });

  it('resolves representatives from streamed parameters and re-ranks slots', async () => {
    const th = Array.from({ length: 8 }, (_, e) => Float32Array.from({ length: 9 }, (_, k) => (e === 6 ? 0 : e === 0 ? 2 : -1) + k * 0));
    // cluster [0,5,6]: θ0 = 2, θ5 = −1, θ6 = 0 → centroid 1/3; θ6 is closest
    const p = await resolveRepresentatives(planExpertPruning([layer], { mode: 'uniform', keepPerLayer: 4 }), () => memoryParamSource(th, 4));
    const l = p.layers[0]!;
    expect(p.unresolved).toBe(0);
    expect(l.kept).toEqual([1, 2, 3, 6]);
    expect([...l.slotOf]).toEqual([3, 0, 1, 2, 2, 3, 3, 1]);
    expect(l.clusters.find((c) => c.members.includes(6))).toMatchObject({ members: [0, 5, 6], representative: 6, slot: 3 });
  });

  it('per-layer reconstruction merges every cluster when ≤ κ_L remain', () => {
    const p = planExpertPruning([{ ...layer, topK: 1 }], { mode: 'uniform', keepPerLayer: 2, reconstruct: 'per-layer' });
    const l = p.layers[0]!;
    expect(p.settings.kappa).toBe(2);
    expect(l.clusters.every((c) => c.action === 'merge' && c.resolved)).toBe(true);
    expect(l.merges.map((m) => m.members.length).reduce((a, b) => a + b, 0)).toBe(8);
    expect(l.merges.map((m) => m.slot).sort()).toEqual([0, 1]);
  });

  it('per-cluster-size reconstruction averages only small clusters', () => {
    const p = planExpertPruning([layer], { mode: 'uniform', keepPerLayer: 4, reconstruct: 'per-cluster-size' });
    expect(p.layers[0]!.clusters.map((c) => c.action)).toEqual(['select', 'keep', 'merge', 'merge']);
    expect(p.unresolved).toBe(1);
  });

  it('global: one τ over layers hits the target and recovers planted groups', () => {
    const other: ExpertLayerInput = { layer: 5, n: 8, d: 12, topK: 2, routerRows: planted([[0, 1], [2], [3], [4, 5, 6, 7]], 12, 9) };
    const p = planExpertPruning([layer, other], { mode: 'global', targetTotal: 8 });
    expect(p.search?.exact).toBe(true);
    expect(p.totalKept).toBe(8);
    expect(p.layers[0]!.clusters.map((c) => c.members)).toEqual(groups);
    expect(p.layers[1]!.clusters.map((c) => c.members)).toEqual([[0, 1], [2], [3], [4, 5, 6, 7]]);
    expect(p.layers[0]!.tau).toBe(p.search!.tau);
  });

  it('global: an unreachable target uses the nearest total, or throws InvalidPlan when exactness is required', () => {
    const p = planExpertPruning([layer], { mode: 'global', targetTotal: 1 });
    expect(p.search?.exact).toBe(false);
    expect(p.totalKept).toBe(2); // top-k floor
    expect(p.search?.message).toMatch(/no global threshold keeps exactly 1 experts/);
    expect(() => planExpertPruning([layer], { mode: 'global', targetTotal: 1, requireExact: true })).toThrow(/InvalidPlan/);
  });

  it('accepts GPU squared distances (+ ‖W‖_F) in place of router rows, with identical plans', () => {
    const gpu: ExpertLayerInput = { layer: 3, n: 8, d: 12, topK: 2, squaredDistances: Float32Array.from(routerSquaredDistances(W, 8, 12)), routerFrobenius: frobeniusNorm(W) };
    const a = planExpertPruning([layer], { mode: 'uniform', keepPerLayer: 4 });
    const b = planExpertPruning([gpu], { mode: 'uniform', keepPerLayer: 4 });
    expect(b.layers[0]!.clusters).toEqual(a.layers[0]!.clusters);
    // Normalising needs ‖W‖_F, which squared distances alone do not carry.
    expect(() => planExpertPruning([{ ...gpu, routerFrobenius: undefined }], { mode: 'uniform', keepPerLayer: 4, normalize: true })).toThrow(/routerFrobenius/);
  });

  it('names missing inputs and settings', () => {
    expect(() => planExpertPruning([layer], { mode: 'uniform' })).toThrow(/needs keepPerLayer/);
    expect(() => planExpertPruning([layer], { mode: 'uniform', keepPerLayer: 4, similarity: 'coactivation' })).toThrow(/layer 3: similarity 'coactivation' needs co-activation counts/);
    expect(resolveExpertPlanSettings({ reconstruct: 'per-cluster-size' }).kappa).toBe(3);
  });

  it('plans Arctic-shaped routing: the global search keeps exactly the target (35 layers × 128 experts; d reduced; timing is in the bench)', () => {
    const L = 35, n = 128, d = 256;
    let s = 1;
    const r = () => ((s = (s * 48271) % 2147483647) / 2147483647) - 0.5;
    const layers: ExpertLayerInput[] = Array.from({ length: L }, (_, l) => ({ layer: l, n, d, topK: 2, routerRows: Float32Array.from({ length: n * d }, r) }));
    const p = planExpertPruning(layers, { mode: 'global', targetTotal: 3570, normalize: false });
    expect(p.search?.exact).toBe(true);
    expect(p.totalKept).toBe(3570);
    expect(p.layers.every((l) => l.kept.length >= 2)).toBe(true);
  });
});
