import { describe, expect, it } from 'vitest';
import { layerDistances, planExpertPruning, resolveExpertPlanSettings, type ExpertLayerInput } from './plan.ts';
import { routerSquaredDistances } from './similarity.ts';

function layers(count: number, n: number, d: number, seed: number, groups?: { nGroup: number; topkGroup: number }): ExpertLayerInput[] {
  let s = seed;
  const r = (): number => ((s = (s * 1103515245 + 12345) >>> 0) / 4294967296 - 0.5) * 0.05;
  const settings = resolveExpertPlanSettings({ similarity: 'router' });
  return Array.from({ length: count }, (_, layer) => {
    const rows = Float32Array.from({ length: n * d }, r);
    const input = { layer, n, d, topK: 2, squaredDistances: routerSquaredDistances(rows, n, d), ...(groups ? { groups } : {}) };
    return { ...input, distances: layerDistances(input, settings) };
  });
}

const shape = (p: ReturnType<typeof planExpertPruning>) => ({ kept: p.layers.map((l) => l.kept), clusters: p.layers.map((l) => l.clusters.map((c) => c.members)), search: p.search });

describe('re-planning from cached distance matrices', () => {
  it('gives the plan a first planning of fresh copies gives (uniform and global, every K)', () => {
    const cached = layers(6, 16, 8, 3);
    for (const K of [2, 5, 9, 16]) {
      const fresh = cached.map((l) => ({ ...l, distances: Float64Array.from(l.distances!) }));
      expect(shape(planExpertPruning(cached, { mode: 'uniform', keepPerLayer: K }))).toEqual(shape(planExpertPruning(fresh, { mode: 'uniform', keepPerLayer: K })));
    }
    for (const target of [20, 50, 71, 90]) {
      const fresh = cached.map((l) => ({ ...l, distances: Float64Array.from(l.distances!) }));
      for (const cap of [null, 4]) {
        const a = planExpertPruning(cached, { mode: 'global', targetTotal: target, maxRemovedPerLayer: cap });
        expect(shape(a)).toEqual(shape(planExpertPruning(fresh, { mode: 'global', targetTotal: target, maxRemovedPerLayer: cap })));
      }
    }
  });

  it('the same matrix planned with and without routing groups keeps the plans apart', () => {
    const plain = layers(2, 16, 8, 11);
    const grouped = plain.map((l) => ({ ...l, groups: { nGroup: 4, topkGroup: 2 } }));
    const g1 = shape(planExpertPruning(grouped, { mode: 'uniform', keepPerLayer: 8 }));
    const p1 = shape(planExpertPruning(plain, { mode: 'uniform', keepPerLayer: 8 }));
    const freshG = shape(planExpertPruning(grouped.map((l) => ({ ...l, distances: Float64Array.from(l.distances!) })), { mode: 'uniform', keepPerLayer: 8 }));
    const freshP = shape(planExpertPruning(plain.map((l) => ({ ...l, distances: Float64Array.from(l.distances!) })), { mode: 'uniform', keepPerLayer: 8 }));
    expect([g1, p1]).toEqual([freshG, freshP]);
    // Each group of 4 keeps 2 in the grouped plan.
    for (const kept of g1.kept) for (let g = 0; g < 4; g++) expect(kept.filter((e) => Math.floor(e / 4) === g)).toHaveLength(2);
  });
});
