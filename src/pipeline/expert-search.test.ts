import { join } from 'node:path';
import { expect, it } from 'vitest';
import { describeGpu } from '../../tests/gpu-harness.ts';
import { moeInputs, moeLayerWeights, referenceReconstruction } from '../../tests/expert-reference.ts';
import { openNodeFileSet } from '../cli/node-files.ts';
import { GpuForwardEngine } from '../forward/engine.ts';
import { expertPlanEdits } from '../forward/plan.ts';
import { openReferenceModel } from '../forward/reference/forward.ts';
import { swiglu } from '../forward/reference/moe.ts';
import { moeSpecAt } from '../models/arch.ts';
import { subsetCount, subsets } from '../prune/experts/exhaustive.ts';
import { cosineDistances, exhaustiveSequential, keepRuleAt, outputDistances, outputSimilarityDistances, reconstructionErrors, scoreExpertsSequential } from './expert-choice.ts';
import { route } from '../forward/reference/router.ts';

const MODELS = join(import.meta.dirname, '..', '..', 'fixtures', 'models');
const WINDOWS = [
  [1, 17, 42, 5, 99, 23, 64, 8, 3, 77, 120, 56],
  [1, 100, 7, 45, 88, 12, 63, 27, 110, 4, 9, 71],
  [1, 33, 2, 61, 14, 90, 47, 5, 118, 36, 70, 25],
];

describeGpu('exhaustive search and output similarity on the GPU engine vs the CPU reference', (gpu) => {
  it.each([['mixtral', 2], ['deepseek_v3', 4], ['qwen2_moe', 3], ['qwen3_moe-fused', 5]] as const)(
    '%s (K=%i): every subset scored, the best kept, layer by layer; its error equals a direct measurement',
    async (name, K) => {
      const files = await openNodeFileSet(join(MODELS, name));
      const engine = await GpuForwardEngine.open(gpu(), files);
      const r = await exhaustiveSequential(engine, WINDOWS, K);
      const model = await openReferenceModel(files);
      const removed = new Map(r.plan.layers.map((l) => [l.layer as number, new Set<number>(l.removed)]));
      const inputs = await moeInputs(model, WINDOWS, (l) => removed.get(l));
      const direct = await reconstructionErrors(engine, WINDOWS, expertPlanEdits(r.plan.layers));
      let total = 0;
      for (const [i, l] of r.layers.entries()) {
        const rule = keepRuleAt(model.arch, l.layer);
        expect(l.subsets).toBe(subsetCount(K, rule));
        total += l.subsets;
        const w = await moeLayerWeights(model, l.layer);
        const E = rule.n;
        let best: number[] = [];
        let bestErr = Infinity;
        for (const s of subsets(K, rule)) {
          const gone = new Set(Array.from({ length: E }, (_, e) => e).filter((e) => !s.includes(e)));
          const err = referenceReconstruction(model, l.layer, inputs.get(l.layer)!, w, w, gone).error;
          if (err < bestErr) [best, bestErr] = [s, err];
        }
        // The same subset, or one whose CPU error is within float noise of the best (a near tie).
        if (l.kept.join() !== best.join()) {
          const mine = referenceReconstruction(model, l.layer, inputs.get(l.layer)!, w, w, removed.get(l.layer)!).error;
          expect(mine - bestErr, `layer ${l.layer}: kept ${l.kept} vs ${best}`).toBeLessThanOrEqual(1e-4 * bestErr);
        }
        expect(Math.abs(l.error - bestErr)).toBeLessThanOrEqual(1e-3 * bestErr + 1e-6);
        expect(Math.abs(direct[i]!.error - l.error)).toBeLessThanOrEqual(1e-3 * l.error + 1e-6);
        expect(l.runnerUp!).toBeGreaterThanOrEqual(l.error);
      }
      expect(r.subsets).toBe(total);
    },
  );

  it('one-window chunks, spilled hidden states and stacked outputs a few tokens at a time give the same choices', async () => {
    const engine = await GpuForwardEngine.open(gpu(), await openNodeFileSet(join(MODELS, 'qwen2_moe')));
    const split = { chunkWindows: 1, maxBindingBytes: 2048, budgets: { hiddenBytes: 1 } };
    const a = await exhaustiveSequential(engine, WINDOWS, 3);
    const b = await exhaustiveSequential(engine, WINDOWS, 3, { forward: split });
    expect(b.layers.map((l) => l.kept)).toEqual(a.layers.map((l) => l.kept));
    b.layers.forEach((l, i) => expect(Math.abs(l.error - a.layers[i]!.error)).toBeLessThanOrEqual(1e-5 * a.layers[i]!.error));
    const s1 = await scoreExpertsSequential(engine, WINDOWS, 'reap', 3);
    const s2 = await scoreExpertsSequential(engine, WINDOWS, 'reap', 3, { forward: split });
    expect(s2.scores.map((s) => s.kept)).toEqual(s1.scores.map((s) => s.kept));
    expect(s2.scores.map((s) => s.tokens)).toEqual(s1.scores.map((s) => s.tokens));
    const r1 = await reconstructionErrors(engine, WINDOWS, expertPlanEdits(s1.plan.layers));
    const r2 = await reconstructionErrors(engine, WINDOWS, expertPlanEdits(s1.plan.layers), { forward: split });
    r2.forEach((r, i) => expect(Math.abs(r.error - r1[i]!.error)).toBeLessThanOrEqual(1e-5 * r1[i]!.error));
    const d1 = await outputSimilarityDistances(engine, WINDOWS);
    const d2 = await outputSimilarityDistances(engine, WINDOWS, { forward: split });
    for (const [l, D] of d1)
      D.forEach((v, i) => {
        if (v === Infinity) expect(d2.get(l)![i]).toBe(Infinity);
        else expect(Math.abs(d2.get(l)![i]! - v)).toBeLessThan(1e-5);
      });
  });

  it('refuses K below the floors before any pass', async () => {
    const engine = await GpuForwardEngine.open(gpu(), await openNodeFileSet(join(MODELS, 'deepseek_v3')));
    await expect(exhaustiveSequential(engine, WINDOWS, 2)).rejects.toThrow(/layer 1: keeping 1 experts per routing group is below the floor of 2/);
  });

  it.each(['qwen3_moe-fused', 'deepseek_v3', 'arctic'])('%s: HC-SMoE distances (cosine of mean expert outputs over all tokens) equal the CPU reference', async (name) => {
    const files = await openNodeFileSet(join(MODELS, name));
    const engine = await GpuForwardEngine.open(gpu(), files);
    const D = await outputSimilarityDistances(engine, WINDOWS);
    const model = await openReferenceModel(files);
    const inputs = await moeInputs(model, WINDOWS, () => undefined);
    expect([...D.keys()]).toEqual([...model.arch.moeLayers].sort((a, b) => a - b));
    const H = model.arch.hidden;
    for (const [layer, got] of D) {
      const x = inputs.get(layer)!;
      const spec = moeSpecAt(model.arch, layer);
      const E = spec.router.experts;
      const w = await moeLayerWeights(model, layer);
      const sums = Array.from({ length: E }, (_, e) => {
        const f = swiglu(x, x.length / H, H, spec.intermediate, w.expert(e)!);
        const s = new Float64Array(H);
        for (let r = 0; r < x.length / H; r++) for (let c = 0; c < H; c++) s[c]! += f[r * H + c]!;
        return s;
      });
      const G = new Float64Array(E * E);
      for (let i = 0; i < E; i++) for (let j = 0; j < E; j++) G[i * E + j] = sums[i]!.reduce((a, v, c) => a + v * sums[j]![c]!, 0);
      const want = cosineDistances(G, E);
      for (let i = 0; i < E * E; i++) {
        if (want[i] === Infinity) expect(got[i]).toBe(Infinity);
        else expect(Math.abs(got[i]! - want[i]!), `layer ${layer} entry ${i}`).toBeLessThan(1e-4);
      }
    }
  });

  it.each(['deepseek_v3', 'qwen2_moe'])('%s: output distances over routed tokens only, cosine and L2, equal the CPU reference (the family router picks the tokens)', async (name) => {
    const files = await openNodeFileSet(join(MODELS, name));
    const engine = await GpuForwardEngine.open(gpu(), files);
    const cos = await outputSimilarityDistances(engine, WINDOWS, { tokens: 'routed', distance: 'cosine' });
    const l2 = await outputSimilarityDistances(engine, WINDOWS, { tokens: 'routed', distance: 'l2' });
    const l2all = await outputSimilarityDistances(engine, WINDOWS, { distance: 'l2' });
    const model = await openReferenceModel(files);
    const inputs = await moeInputs(model, WINDOWS, () => undefined);
    const H = model.arch.hidden;
    for (const [layer, got] of cos) {
      const x = inputs.get(layer)!;
      const T = x.length / H;
      const spec = moeSpecAt(model.arch, layer);
      const E = spec.router.experts;
      const w = await moeLayerWeights(model, layer);
      const routedTo = Array.from({ length: E }, () => new Set<number>());
      for (let t = 0; t < T; t++) {
        const logits = Array.from({ length: E }, (_, e) => {
          let s = 0;
          for (let c = 0; c < H; c++) s += x[t * H + c]! * w.router[e * H + c]!;
          return s;
        });
        for (const e of route(logits, spec.router, w.correctionBias ? { correctionBias: w.correctionBias } : {}).experts) routedTo[e]!.add(t);
      }
      const means = (routedOnly: boolean): Float64Array[] =>
        Array.from({ length: E }, (_, e) => {
          const f = swiglu(x, T, H, spec.intermediate, w.expert(e)!);
          const m = new Float64Array(H);
          const rows = routedOnly ? [...routedTo[e]!] : Array.from({ length: T }, (_, t) => t);
          for (const r of rows) for (let c = 0; c < H; c++) m[c]! += f[r * H + c]! / rows.length;
          return m;
        });
      const gramOf = (m: Float64Array[]): Float64Array => Float64Array.from({ length: E * E }, (_, k) => m[Math.floor(k / E)]!.reduce((a, v, c) => a + v * m[k % E]![c]!, 0));
      const ones = new Float64Array(E).fill(1);
      const mr = gramOf(means(true));
      const checks: Array<[Float64Array, Float64Array, number]> = [
        [got, outputDistances(mr, E, ones, 'cosine'), 1e-4],
        [l2.get(layer)!, outputDistances(mr, E, ones, 'l2'), 1e-4],
        [l2all.get(layer)!, outputDistances(gramOf(means(false)), E, ones, 'l2'), 1e-4],
      ];
      for (const [mine, want, tol] of checks)
        for (let i = 0; i < E * E; i++) {
          if (want[i] === Infinity) expect(mine[i]).toBe(Infinity);
          else expect(Math.abs(mine[i]! - want[i]!), `layer ${layer} entry ${i}`).toBeLessThan(tol * Math.max(1, want[i]!));
        }
      // Routed-only means differ from all-token means: the option changes what is measured.
      expect(Math.max(...Array.from(l2.get(layer)!, (v, i) => (v === Infinity ? 0 : Math.abs(v - l2all.get(layer)![i]!))))).toBeGreaterThan(1e-6);
    }
  });
});
