import { join } from 'node:path';
import { expect, it } from 'vitest';
import { describeGpu } from '../../tests/gpu-harness.ts';
import { moeInputs, moeLayerWeights, referenceReconstruction, referenceSaliency } from '../../tests/expert-reference.ts';
import { openNodeFileSet } from '../cli/node-files.ts';
import { GpuForwardEngine } from '../forward/engine.ts';
import { expertPlanEdits, referencePlan } from '../forward/plan.ts';
import { openReferenceModel } from '../forward/reference/forward.ts';
import { planExpertPruning } from '../prune/experts/plan.ts';
import { keepTopK, saliencyScores, type SaliencyCriterion } from '../prune/experts/saliency.ts';
import { keepRuleAt, meanReconstructionError, randomExpertPlan, reconstructionErrors, scoreExpertsSequential } from './expert-choice.ts';
import { layerInputs, loadRouters } from './expert-prune.ts';
import { catalogueCheckpoint } from '../models/catalogue.ts';

const MODELS = join(import.meta.dirname, '..', '..', 'fixtures', 'models');
const WINDOWS = [
  [1, 17, 42, 5, 99, 23, 64, 8, 3, 77, 120, 56],
  [1, 100, 7, 45, 88, 12, 63, 27, 110, 4, 9, 71],
  [1, 33, 2, 61, 14, 90, 47, 5, 118, 36, 70, 25],
];

/** |a − b| ≤ rel · max(|b|, floor). */
function near(a: number, b: number, rel: number, floor = 1e-6): void {
  expect(Math.abs(a - b), `${a} vs ${b}`).toBeLessThanOrEqual(rel * Math.max(Math.abs(b), floor));
}

/** Kept sets equal, or the GPU's differs only where the CPU's scores are within `tol` of the boundary (a near tie). */
function sameChoice(gpuKept: number[], cpuScores: Float64Array, K: number, rule: ReturnType<typeof keepRuleAt>, tol: number): void {
  const cpuKept = keepTopK(cpuScores, K, rule);
  if (gpuKept.join() === cpuKept.join()) return;
  const diff = [...gpuKept.filter((e) => !cpuKept.includes(e)), ...cpuKept.filter((e) => !gpuKept.includes(e))];
  const vals = diff.map((e) => cpuScores[e]!);
  expect(Math.max(...vals) - Math.min(...vals), `kept ${gpuKept} vs ${cpuKept}`).toBeLessThanOrEqual(tol * Math.max(...vals.map(Math.abs)));
}

describeGpu('expert choice on the GPU engine vs the CPU reference', (gpu) => {
  // Per-expert layout, the fused layout, DeepSeek-V3 (grouped routing, correction bias, shared experts), Qwen2 (sigmoid-gated shared expert).
  const cases: Array<[string, number, SaliencyCriterion]> = [
    ['mixtral', 2, 'reap'],
    ['qwen3_moe-fused', 4, 'ean'],
    ['deepseek_v3', 4, 'reap'],
    ['qwen2_moe', 3, 'frequency'],
  ];
  it.each(cases)('%s (K=%i, %s): sequential scores, kept experts and reconstruction errors', async (name, K, criterion) => {
    const files = await openNodeFileSet(join(MODELS, name));
    const engine = await GpuForwardEngine.open(gpu(), files);
    const run = await scoreExpertsSequential(engine, WINDOWS, criterion, K);
    const model = await openReferenceModel(files);
    const moe = [...model.arch.moeLayers].sort((a, b) => a - b);
    expect(run.scores.map((s) => s.layer)).toEqual(moe);
    const removed = new Map(run.plan.layers.map((l) => [l.layer as number, new Set<number>(l.removed)]));
    const inputs = await moeInputs(model, WINDOWS, (l) => removed.get(l));
    for (const s of run.scores) {
      const w = await moeLayerWeights(model, s.layer);
      const ref = referenceSaliency(model, s.layer, inputs.get(s.layer)!, w);
      expect(s.tokens).toEqual(ref.tokens);
      expect(s.frequency).toEqual(ref.tokens);
      expect(s.tokens.reduce((a, b) => a + b, 0)).toBe(WINDOWS.length * WINDOWS[0]!.length * keepRuleAt(model.arch, s.layer).topK);
      const refScores = { reap: saliencyScores(ref, 'reap'), ean: saliencyScores(ref, 'ean'), frequency: saliencyScores(ref, 'frequency') };
      s.reap.forEach((v, e) => near(v, refScores.reap[e]!, 1e-4));
      s.ean.forEach((v, e) => near(v, refScores.ean[e]!, 1e-4));
      expect(s.kept).toHaveLength(K);
      sameChoice(s.kept, refScores[criterion], K, keepRuleAt(model.arch, s.layer), 1e-4);
    }
    const recon = await reconstructionErrors(engine, WINDOWS, expertPlanEdits(run.plan.layers));
    expect(recon.map((r) => r.layer)).toEqual(moe);
    for (const r of recon) {
      const w = await moeLayerWeights(model, r.layer);
      const ref = referenceReconstruction(model, r.layer, inputs.get(r.layer)!, w, w, removed.get(r.layer)!);
      expect(r.tokens).toBe(WINDOWS.length * WINDOWS[0]!.length);
      near(r.sumSqRef, ref.sumSqRef, 1e-4);
      near(r.error, ref.error, 1e-3, 1e-5);
      expect(r.error).toBeGreaterThan(0);
    }
    expect(meanReconstructionError(recon)).toBeCloseTo(recon.reduce((a, r) => a + r.error, 0) / recon.length, 12);
  });

  it('reconstruction of a plan with merged experts (STUN per-layer averaging) and of the original model (error 0)', async () => {
    const files = await openNodeFileSet(join(MODELS, 'qwen3_moe'));
    const cat = await catalogueCheckpoint(files);
    const plan = planExpertPruning(layerInputs(cat, await loadRouters(cat)), { keepPerLayer: 3, reconstruct: 'per-layer', kappa: 8 });
    expect(plan.layers.some((l) => l.merges.length > 0)).toBe(true);
    const engine = await GpuForwardEngine.open(gpu(), files);
    const edits = expertPlanEdits(plan.layers);
    const recon = await reconstructionErrors(engine, WINDOWS, edits);
    const model = await openReferenceModel(files);
    const rp = referencePlan(model, edits);
    const removed = new Map(plan.layers.map((l) => [l.layer as number, new Set<number>(l.removed)]));
    const inputs = await moeInputs(rp.model, WINDOWS, (l) => removed.get(l));
    for (const r of recon) {
      const orig = await moeLayerWeights(model, r.layer);
      const merged = await moeLayerWeights(rp.model, r.layer);
      const ref = referenceReconstruction(model, r.layer, inputs.get(r.layer)!, orig, merged, removed.get(r.layer)!);
      near(r.error, ref.error, 1e-3, 1e-5);
    }
    const none = await reconstructionErrors(engine, WINDOWS, { experts: () => undefined });
    for (const r of none) expect(r.sumSqDiff).toBe(0);
  });

  it('random plans: seeded, K per layer (per routing group on DeepSeek), and refusals name the layer and the floor', async () => {
    const engine = await GpuForwardEngine.open(gpu(), await openNodeFileSet(join(MODELS, 'deepseek_v3')));
    const a = randomExpertPlan(engine.arch, 4, 7);
    expect(randomExpertPlan(engine.arch, 4, 7).layers.map((l) => l.kept)).toEqual(a.layers.map((l) => l.kept));
    for (const l of a.layers) expect([l.kept.filter((e) => e < 4).length, l.kept.filter((e) => e >= 4).length]).toEqual([2, 2]);
    expect(() => randomExpertPlan(engine.arch, 3, 0)).toThrow(/layer \d+: keeping 3 experts breaks grouped routing; K must be a multiple of n_group = 2/);
    await expect(scoreExpertsSequential(engine, WINDOWS, 'reap', 2)).rejects.toThrow(/keeping 1 experts per routing group is below the floor of 2/);
  });
});
