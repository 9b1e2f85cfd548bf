import { describe, expect, it } from 'vitest';
import { clusterAction, memoryParamSource, selectRepresentative, type ExpertParamSource } from './representative.ts';

function thetas(count: number, len: number, seed: number): Float32Array[] {
  let s = seed;
  const r = () => ((s = (s * 16807) % 2147483647) / 2147483647) - 0.5;
  return Array.from({ length: count }, () => Float32Array.from({ length: len }, r));
}

/** Direct (non-streaming) closest-to-centroid in float64. */
function direct(members: number[], th: Float32Array[]): number {
  const len = th[0]!.length;
  const c = new Float64Array(len);
  for (const m of members) for (let t = 0; t < len; t++) c[t] = c[t]! + th[m]![t]! / members.length;
  let best = -1, bestD = Infinity;
  for (const m of members) {
    let s = 0;
    for (let t = 0; t < len; t++) s += (th[m]![t]! - c[t]!) ** 2;
    if (s < bestD) (bestD = s), (best = m);
  }
  return best;
}

describe('closest-to-centroid representative (streaming)', () => {
  const th = thetas(10, 53, 11);

  it('matches a direct computation for every chunk size and memory mode', async () => {
    for (const members of [[0, 3, 4], [1, 2, 5, 7, 9], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]]) {
      const want = direct(members, th);
      for (const chunk of [1, 7, 53, 100])
        for (const memory of ['hold-chunk', 'refetch'] as const) {
          const r = await selectRepresentative(members, memoryParamSource(th, chunk), { memory });
          expect(r.representative).toBe(want);
          expect(r.sqDistances).toHaveLength(members.length);
        }
    }
  });

  it('reads each member chunk once (hold-chunk) or twice (refetch)', async () => {
    for (const [memory, perChunk] of [['hold-chunk', 1], ['refetch', 2]] as const) {
      let reads = 0;
      const base = memoryParamSource(th, 10);
      const src: ExpertParamSource = { chunkCount: base.chunkCount, chunk: (e, c) => (reads++, base.chunk(e, c)) };
      await selectRepresentative([2, 4, 6], src, { memory });
      expect(reads).toBe(3 * base.chunkCount * perChunk);
    }
  });

  it('lowest index wins exact ties; pairs never read parameters', async () => {
    const same = [th[0]!, th[0]!, th[0]!, th[1]!];
    expect((await selectRepresentative([2, 1, 0], memoryParamSource(same, 8))).representative).toBe(0);
    const noRead: ExpertParamSource = { chunkCount: 3, chunk: () => { throw new Error('must not read'); } };
    expect((await selectRepresentative([7, 4], noRead)).representative).toBe(4);
    expect((await selectRepresentative([5], noRead)).representative).toBe(5);
  });

  it('rejects mismatched chunk lengths', async () => {
    const src: ExpertParamSource = { chunkCount: 1, chunk: (e) => new Float32Array(e === 1 ? 4 : 5) };
    await expect(selectRepresentative([0, 1, 2], src)).rejects.toThrow(/expert 1 parameter chunk 0 has 4 values, other members have 5/);
  });
});

describe('reconstruction rules', () => {
  it('per-layer (official code): merge every cluster when the layer has ≤ κ_L clusters', () => {
    expect(clusterAction('per-layer', 2, 2, 5)).toBe('merge');
    expect(clusterAction('per-layer', 2, 3, 5)).toBe('select');
    expect(clusterAction('per-layer', 2, 2, 1)).toBe('keep');
  });
  it('per-cluster-size (paper summary): merge clusters with fewer than κ members', () => {
    expect(clusterAction('per-cluster-size', 3, 40, 2)).toBe('merge');
    expect(clusterAction('per-cluster-size', 3, 40, 3)).toBe('select');
    expect(clusterAction('none', 3, 1, 2)).toBe('select');
  });
});
