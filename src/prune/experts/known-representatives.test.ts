import { describe, expect, it } from 'vitest';
import { planExpertPruning, rememberRepresentatives, representativeKey, resolveRepresentatives, withKnownRepresentatives, type ExpertLayerInput } from './plan.ts';
import { memoryParamSource } from './representative.ts';

/** Router rows with planted groups (as plan.test.ts): [0, 5, 6] is a 3-member cluster whose representative needs weights. */
function planted(groups: number[][], d: number, seed: number): Float32Array {
  let s = seed;
  const r = () => ((s = (s * 48271) % 2147483647) / 2147483647) - 0.5;
  const W = new Float32Array(groups.flat().length * d);
  for (const g of groups) {
    const center = Array.from({ length: d }, r);
    for (const m of g) for (let k = 0; k < d; k++) W[m * d + k] = center[k]! + 1e-4 * r();
  }
  return W;
}

const layer: ExpertLayerInput = { layer: 3, n: 8, d: 12, topK: 2, routerRows: planted([[0, 5, 6], [1], [2, 7], [3, 4]], 12, 3) };
// θ6 is nearest the centroid of {0, 5, 6}: the weights choose 6, the draft shows 0 provisionally.
const th = Array.from({ length: 8 }, (_, e) => Float32Array.from({ length: 9 }, () => (e === 6 ? 0 : e === 0 ? 2 : -1)));

describe('representatives known from an earlier resolution', () => {
  it('a re-drafted plan of the same clusters shows the chosen representative, equal to the resolved plan', async () => {
    const draft = planExpertPruning([layer], { mode: 'uniform', keepPerLayer: 4 });
    expect(draft.unresolved).toBe(1);
    expect(draft.layers[0]!.kept).toEqual([0, 1, 2, 3]);
    const known = new Map<string, number>();
    expect(withKnownRepresentatives(draft, known)).toBe(draft);

    const resolved = await resolveRepresentatives(draft, () => memoryParamSource(th, 4));
    rememberRepresentatives(resolved, known);
    expect([...known]).toEqual([[representativeKey(3, [0, 5, 6]), 6]]);

    const again = withKnownRepresentatives(planExpertPruning([layer], { mode: 'uniform', keepPerLayer: 4 }), known);
    expect(again.unresolved).toBe(0);
    expect(again.layers[0]!.kept).toEqual(resolved.layers[0]!.kept);
    expect([...again.layers[0]!.slotOf]).toEqual([...resolved.layers[0]!.slotOf]);
    expect(again.layers[0]!.clusters).toEqual(resolved.layers[0]!.clusters);
    // Resolving it again reads no weights and changes nothing.
    const source = () => {
      throw new Error('no weights should be read');
    };
    expect((await resolveRepresentatives(again, source)).layers[0]!.kept).toEqual([1, 2, 3, 6]);
  });

  it('other clusters (another K) stay provisional; provisional clusters are not remembered', () => {
    const known = new Map([[representativeKey(3, [0, 5, 6]), 6]]);
    const k3 = withKnownRepresentatives(planExpertPruning([layer], { mode: 'uniform', keepPerLayer: 3 }), known);
    for (const c of k3.layers[0]!.clusters) if (c.members.join(',') !== '0,5,6' && c.members.length > 2) expect(c.resolved).toBe(false);
    const fresh = new Map<string, number>();
    rememberRepresentatives(planExpertPruning([layer], { mode: 'uniform', keepPerLayer: 4 }), fresh);
    expect(fresh.size).toBe(0);
  });
});
