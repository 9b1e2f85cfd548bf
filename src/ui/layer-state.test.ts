import { describe, expect, it } from 'vitest';
import type { ExpertPlan, LayerReconstruction, StageTwoResult } from '../pipeline/job.ts';
import { layerRows } from './layer-state.ts';

const plan = {
  layers: [
    { layer: 1, n: 8, kept: [0, 2, 5], removed: [1, 3, 4, 6, 7] },
    { layer: 3, n: 8, kept: [0, 1, 2, 3], removed: [4, 5, 6, 7] },
  ],
} as unknown as ExpertPlan;

const stage2 = {
  sparsity: {
    byLayer: { '0': { achieved: 0.5, target: 0.5 }, '1': { achieved: 0.7, target: 0.42 }, '3': { achieved: 0.6, target: 0.31 } },
  },
} as unknown as StageTwoResult;

const recon: LayerReconstruction[] = [
  { layer: 3, tokens: 10, sumSqDiff: 2, sumSqRef: 8, error: 0.25 },
  { layer: 1, tokens: 10, sumSqDiff: 1, sumSqRef: 10, error: 0.1 },
];

describe('per-layer chart rows', () => {
  it('joins the plan, the stage-2 ratios and the measured errors by decoder layer, in layer order', () => {
    expect(layerRows(plan, stage2, recon)).toEqual([
      { layer: 0, kept: null, experts: null, unstructured: 0.5, error: null },
      { layer: 1, kept: 3, experts: 8, unstructured: 0.42, error: 0.1 },
      { layer: 3, kept: 4, experts: 8, unstructured: 0.31, error: 0.25 },
    ]);
  });

  it('leaves out what is not there: no stage 2, no measurement', () => {
    expect(layerRows(plan, null, null)).toEqual([
      { layer: 1, kept: 3, experts: 8, unstructured: null, error: null },
      { layer: 3, kept: 4, experts: 8, unstructured: null, error: null },
    ]);
    expect(layerRows(null, null, null)).toEqual([]);
  });
});
