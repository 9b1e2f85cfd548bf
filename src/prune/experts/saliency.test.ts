import { describe, expect, it } from 'vitest';
import { mulberry32 } from '../../eval/windows.ts';
import { expertPlanEdits } from '../../forward/plan.ts';
import { LayerClusterer } from './cluster.ts';
import { expertPlanFromKept, keepRandom, keepTopK, keptPerGroup, layerPlanFromKept, saliencyScores } from './saliency.ts';

describe('saliency criteria', () => {
  it('scores: REAP is the mean of g·‖f‖ over routed tokens (0 without tokens), EAN the sum of ‖f‖, frequency the count', () => {
    const s = { tokens: [2, 0, 4], weightedNorm: [3, 0, 2], norm: [10, 0, 7] };
    expect(Array.from(saliencyScores(s, 'reap'))).toEqual([1.5, 0, 0.5]);
    expect(Array.from(saliencyScores(s, 'ean'))).toEqual([10, 0, 7]);
    expect(Array.from(saliencyScores(s, 'frequency'))).toEqual([2, 0, 4]);
  });

  it('keeps the K highest scores; equal scores keep the lower index; NaN counts as lowest', () => {
    const rule = { n: 6, topK: 2 };
    expect(keepTopK([1, 5, 3, 5, 0, 2], 3, rule)).toEqual([1, 2, 3]);
    expect(keepTopK([2, 2, 2, 2, 2, 2], 2, rule)).toEqual([0, 1]);
    expect(keepTopK([4, 1, 1, 1, 4, 1], 3, rule)).toEqual([0, 1, 4]);
    expect(keepTopK([NaN, -5, -1, NaN, -3, -2], 2, rule)).toEqual([2, 5]);
    expect(keepTopK([0, 0, 0, 0, 0, 0], 6, rule)).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it('grouped routing keeps K / n_group per group, each group by its own scores', () => {
    const rule = { n: 8, topK: 2, groups: { nGroup: 2, topkGroup: 1 } };
    // Group 0 holds the four best scores overall; each group still keeps two.
    expect(keepTopK([9, 8, 7, 6, 1, 2, 2, 0], 4, rule)).toEqual([0, 1, 5, 6]);
  });

  it('refuses what stage-1 clustering refuses, with the same messages', () => {
    const D = (n: number) => Float64Array.from({ length: n * n }, (_, i) => (i % (n + 1) === 0 ? Infinity : 1 + (i % 7)));
    const cases: Array<[number, { n: number; topK: number; groups?: { nGroup: number; topkGroup: number } }]> = [
      [1, { n: 4, topK: 2 }],
      [0, { n: 4, topK: 2 }],
      [5, { n: 4, topK: 2 }],
      [3, { n: 8, topK: 2, groups: { nGroup: 2, topkGroup: 1 } }],
      [2, { n: 8, topK: 2, groups: { nGroup: 2, topkGroup: 1 } }],
      [4, { n: 8, topK: 4, groups: { nGroup: 4, topkGroup: 1 } }],
    ];
    for (const [K, r] of cases) {
      const clusterer = new LayerClusterer({ distances: D(r.n), n: r.n, topK: r.topK, groups: r.groups, name: 'layer 3' });
      let want = '';
      try {
        clusterer.clustersUniform(K);
      } catch (e) {
        want = (e as Error).message;
      }
      expect(want, `K=${K}`).not.toBe('');
      expect(() => keptPerGroup(K, { ...r, name: 'layer 3' })).toThrow(want);
    }
  });

  it('random choice: uniform per group, reproducible from the seed, different seeds differ', () => {
    const rule = { n: 8, topK: 2, groups: { nGroup: 2, topkGroup: 1 } };
    const a = keepRandom(4, rule, mulberry32(3));
    expect(keepRandom(4, rule, mulberry32(3))).toEqual(a);
    expect(a.filter((e) => e < 4)).toHaveLength(2);
    const seen = new Set<string>();
    for (let s = 0; s < 20; s++) seen.add(keepRandom(2, { n: 8, topK: 2 }, mulberry32(s)).join());
    expect(seen.size).toBeGreaterThan(5);
    // Every expert is drawn about equally often.
    const counts = new Array<number>(8).fill(0);
    const rand = mulberry32(11);
    for (let i = 0; i < 4000; i++) for (const e of keepRandom(2, { n: 8, topK: 2 }, rand)) counts[e]!++;
    for (const c of counts) expect(Math.abs(c - 1000)).toBeLessThan(150);
  });

  it('a kept set becomes a plan the engine and the export read: singleton clusters, removed experts in none', () => {
    const l = layerPlanFromKept({ layer: 1, n: 5, topK: 2 }, [3, 0], undefined, [5, 1, 2, 4, 3]);
    expect(l.kept).toEqual([0, 3]);
    expect(l.removed).toEqual([1, 2, 4]);
    expect(Array.from(l.slotOf)).toEqual([0, -1, -1, 1, -1]);
    expect(l.clusters.map((c) => [c.members, c.action, c.slot])).toEqual([[[0], 'keep', 0], [[3], 'keep', 1]]);
    expect(l.merges).toEqual([]);
    expect(l.distances[0 * 5 + 3]).toBe(1);
    expect(l.distances[2 * 5 + 2]).toBe(Infinity);
    const plan = expertPlanFromKept([l], 2);
    expect([plan.totalExperts, plan.totalKept, plan.unresolved, plan.settings.keepPerLayer]).toEqual([5, 2, 0, 2]);
    expect([...(expertPlanEdits(plan.layers).experts!(1)!.removed ?? [])]).toEqual([1, 2, 4]);
    expect(() => layerPlanFromKept({ layer: 1, n: 5, topK: 2 }, [1, 1])).toThrow(/layer 1: kept experts \[1, 1\] must be distinct/);
  });
});
