/**
 * Co-activation for STUN stage 1 (spec §2.3.1): a_ij = calibration tokens whose top-k set holds both experts i
 * and j. Measured in one calibration pass (GPU engine with stats, or the CPU reference's routing), then handed to
 * the planner as `ExpertLayerInput.coactivation` (i ≠ j counts, zero diagonal).
 */
import { MoePruneError } from '../core/errors.ts';
import type { LongTask } from '../core/progress.ts';
import type { FileSet } from '../formats/bytes.ts';
import type { GpuContext } from '../gpu/device.ts';
import { GpuForwardEngine } from '../forward/engine.ts';
import type { CalibrationStats, MoeLayerStats } from '../forward/stats.ts';
import { moeSpecAt } from '../models/arch.ts';
import { openReferenceModel, referenceForward, type LayerRouting } from '../forward/reference/forward.ts';
import type { Windows } from '../eval/windows.ts';
import type { LayerIndex } from '../models/types.ts';
import type { ExpertLayerInput } from '../prune/experts/plan.ts';

/** Planner co-activation per MoE layer: n×n, a_ij for i ≠ j, zero diagonal. */
export type CoactivationByLayer = ReadonlyMap<LayerIndex, Float64Array>;

/** Calibration defaults of the CLI (the page starts from the same N × L). */
export const DEFAULT_CALIB_SAMPLES = 16;
export const DEFAULT_CALIB_SEQ_LEN = 128;

/**
 * THE conversion from the calibration statistics' matrix (its diagonal holds tokens per expert) to the
 * planner's input: the diagonal is zeroed, because the distance's mean |a| runs over all n² entries.
 */
export function plannerCoactivation(l: Pick<MoeLayerStats, 'layer' | 'experts' | 'coactivation'>): Float64Array {
  const E = l.experts;
  if (l.coactivation.length !== E * E) throw new MoePruneError('InvalidShape', `layer ${l.layer}: co-activation matrix has ${l.coactivation.length} entries, expected ${E}×${E}`);
  const out = Float64Array.from(l.coactivation);
  for (let e = 0; e < E; e++) out[e * E + e] = 0;
  return out;
}

export function coactivationFromStats(stats: CalibrationStats): Map<LayerIndex, Float64Array> {
  return new Map(stats.moeLayers.map((l) => [l.layer, plannerCoactivation(l)]));
}

/** The same matrix as the GPU statistics (diagonal = tokens per expert) from the CPU reference's routing. */
export function statsCoactivationFromRouting(r: LayerRouting, experts: number): Uint32Array {
  const E = experts;
  const k = r.topK;
  const co = new Uint32Array(E * E);
  const tokens = r.experts.length / k;
  for (let t = 0; t < tokens; t++)
    for (let a = 0; a < k; a++) {
      const i = r.experts[t * k + a]!;
      if (i < 0 || i >= E) continue;
      co[i * E + i]!++;
      for (let b = 0; b < k; b++) {
        const j = r.experts[t * k + b]!;
        if (b !== a && j >= 0 && j < E) co[i * E + j]!++;
      }
    }
  return co;
}

export interface MeasuredCoactivation {
  readonly byLayer: Map<LayerIndex, Float64Array>;
  /** Tokens that went through the pass (windows × L). */
  readonly tokens: number;
  readonly device: string;
}

/**
 * One calibration pass over `windows` (GPU engine with stats when `gpu` is given, else the CPU reference). An open
 * engine of the same checkpoint may be passed to reuse it.
 */
export async function measureCoactivation(
  files: FileSet, windows: Windows, gpu: GpuContext | undefined, opts: LongTask & { readonly engine?: GpuForwardEngine } = {},
): Promise<MeasuredCoactivation> {
  const w = windows.windows;
  if (w.length === 0) throw new MoePruneError('InvalidArgument', `the calibration text is shorter than one window of ${windows.length} tokens`);
  const task = { ...(opts.signal ? { signal: opts.signal } : {}), ...(opts.onProgress ? { onProgress: opts.onProgress } : {}) };
  if (gpu) {
    const engine = opts.engine ?? (await GpuForwardEngine.open(gpu, files, opts.signal));
    const r = await engine.forward(w, { ...task, output: 'none', stats: true });
    return { byLayer: coactivationFromStats(r.stats!), tokens: r.stats!.tokens, device: gpu.adapter.label || 'WebGPU' };
  }
  const model = await openReferenceModel(files, opts.signal);
  const r = await referenceForward(model, w, { ...task, output: 'nll' });
  const byLayer = new Map(
    r.routing.map((l) => {
      const E = moeSpecAt(model.arch, l.layer).router.experts;
      return [l.layer, plannerCoactivation({ layer: l.layer, experts: E, coactivation: statsCoactivationFromRouting(l, E) })];
    }),
  );
  return { byLayer, tokens: r.windows * r.tokens, device: 'cpu' };
}

/** Attaches co-activation to the planner inputs, layer by layer; every MoE layer must have a matching n×n matrix. */
export function withCoactivation(inputs: readonly ExpertLayerInput[], co: CoactivationByLayer): ExpertLayerInput[] {
  return inputs.map((l) => {
    const a = co.get(l.layer);
    if (!a) throw new MoePruneError('InvalidArgument', `layer ${l.layer}: the calibration pass measured no co-activation for this MoE layer`);
    if (a.length !== l.n * l.n) throw new MoePruneError('InvalidShape', `layer ${l.layer}: co-activation is ${Math.round(Math.sqrt(a.length))}×${Math.round(Math.sqrt(a.length))}, the router has ${l.n} experts`);
    return { ...l, coactivation: a };
  });
}
