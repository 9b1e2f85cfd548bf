import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { openNodeFileSet } from '../cli/node-files.ts';
import { loadTokenizer } from '../eval/tokenizer.ts';
import { windowsOfText } from '../eval/windows.ts';
import { layerDistances, planExpertPruning, resolveExpertPlanSettings, type ExpertLayerInput } from '../prune/experts/plan.ts';
import { routerDistanceFromSquared, routerSquaredDistances } from '../prune/experts/similarity.ts';
import type { LayerRouting } from '../forward/reference/forward.ts';
import { coactivationFromStats, measureCoactivation, plannerCoactivation, statsCoactivationFromRouting, withCoactivation } from './coactivation.ts';

const MIXTRAL = fileURLToPath(new URL('../../fixtures/models/mixtral', import.meta.url));

/** Routing of a 4-expert, top-2 layer from explicit top-k sets. */
function routing(sets: Array<[number, number]>): LayerRouting {
  return { layer: 1, topK: 2, experts: Int32Array.from(sets.flat()), weights: new Float32Array(sets.length * 2), logits: new Float32Array(sets.length * 4) };
}

// 0 and 3 chosen together by most tokens; the router rows of 0 and 1 are the closest pair.
const SETS: Array<[number, number]> = [...Array<[number, number]>(10).fill([0, 3]), ...Array<[number, number]>(3).fill([2, 1]), [0, 1], [3, 2]];
const ROWS = Float32Array.from([1, 0, 0, 1.1, 0, 0, 0, 3, 0, 0, 0, 5]); // n = 4, d = 3

describe('co-activation for the planner', () => {
  it('counts top-k pairs like the GPU statistics (diagonal = tokens per expert), then zeroes the diagonal', () => {
    const raw = statsCoactivationFromRouting(routing(SETS), 4);
    // prettier-ignore
    expect(Array.from(raw)).toEqual([
      11, 1, 0, 10,
      1, 4, 3, 0,
      0, 3, 4, 1,
      10, 0, 1, 11,
    ]);
    const a = plannerCoactivation({ layer: 1, experts: 4, coactivation: raw });
    expect(Array.from(a)).toEqual([0, 1, 0, 10, 1, 0, 3, 0, 0, 3, 0, 1, 10, 0, 1, 0]);
    expect(raw[0]).toBe(11); // the statistics stay as they were
    expect(() => plannerCoactivation({ layer: 1, experts: 3, coactivation: raw })).toThrow(/layer 1: co-activation matrix has 16 entries, expected 3×3/);
  });

  it('engine statistics convert layer by layer; missing or mis-sized layers are refused', () => {
    const raw = statsCoactivationFromRouting(routing(SETS), 4);
    const stats = { moeLayers: [{ layer: 1, experts: 4, coactivation: raw }] } as unknown as Parameters<typeof coactivationFromStats>[0];
    const co = coactivationFromStats(stats);
    expect([...co.keys()]).toEqual([1]);
    const input: ExpertLayerInput = { layer: 1, n: 4, d: 3, topK: 2, routerRows: ROWS };
    expect(withCoactivation([input], co)[0]!.coactivation).toBe(co.get(1));
    expect(() => withCoactivation([{ ...input, layer: 2 }], co)).toThrow(/layer 2: the calibration pass measured no co-activation/);
    expect(() => withCoactivation([{ ...input, n: 3, routerRows: ROWS.subarray(0, 9) }], co)).toThrow(/co-activation is 4×4, the router has 3 experts/);
  });

  it('experts that always fire together cluster first under co-activation; router similarity picks the close rows', () => {
    const a = plannerCoactivation({ layer: 1, experts: 4, coactivation: statsCoactivationFromRouting(routing(SETS), 4) });
    const input: ExpertLayerInput = { layer: 1, n: 4, d: 3, topK: 2, routerRows: ROWS, coactivation: a };
    const merged = (similarity: 'router' | 'coactivation' | 'mixed', mixWeight = 1) =>
      planExpertPruning([input], { mode: 'uniform', keepPerLayer: 3, similarity, mixWeight }).layers[0]!.clusters.filter((c) => c.members.length > 1).map((c) => c.members);
    expect(merged('router')).toEqual([[0, 1]]);
    expect(merged('coactivation')).toEqual([[0, 3]]);
    expect(merged('mixed', 0)).toEqual([[0, 1]]);
    expect(merged('mixed', 1)).toEqual([[0, 1]]); // D_01 = −1/1.875 + 0.1 < D_03 = −16/3 + 5.10
    expect(merged('mixed', 4)).toEqual([[0, 3]]);
    // Mixed distance with the zero diagonal: mean a = 30/16, so D_03 = −10/(30/16) + ‖r0 − r3‖ = −16/3 + 5.
    const D = layerDistances(input, resolveExpertPlanSettings({ similarity: 'mixed', mixWeight: 1 }));
    const router = routerDistanceFromSquared(routerSquaredDistances(ROWS, 4, 3), 4, 1);
    expect(D[3]).toBeCloseTo(-16 / 3 + router[3]!, 12);
    expect(router[3]).toBeCloseTo(Math.hypot(1, 5), 6);
  });

  it('measures co-activation on calibration text with the CPU reference (mixtral fixture)', async () => {
    const files = await openNodeFileSet(MIXTRAL);
    const tok = await loadTokenizer(files);
    const text = 'It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife. '.repeat(4);
    const windows = windowsOfText(tok, text, 'calib.txt', { count: 3, length: 12 });
    expect(windows.windows).toHaveLength(3);
    const m = await measureCoactivation(files, windows, undefined);
    expect(m.device).toBe('cpu');
    expect(m.tokens).toBe(36);
    expect([...m.byLayer.keys()]).toEqual([0, 1]);
    for (const a of m.byLayer.values()) {
      expect(a.length).toBe(16);
      let sum = 0;
      for (let i = 0; i < 4; i++)
        for (let j = 0; j < 4; j++) {
          expect(a[i * 4 + j]).toBe(i === j ? 0 : a[j * 4 + i]);
          sum += a[i * 4 + j]!;
        }
      expect(sum).toBe(36 * 2 * 1); // every token adds one ordered pair each way with top-2
    }
  });
});
