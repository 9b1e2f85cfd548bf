/**
 * Test helper: expert-choice signals computed in plain TypeScript from the CPU reference forward pass
 * (src/forward/reference), independently of the GPU engine — the MoE block's input of every layer under a plan (the plan's
 * earlier layers pruned), REAP/EAN/frequency sums on the dense routing of that input, and the reconstruction error
 * ‖y − ŷ‖² / ‖y‖² of the block's output with and without the plan.
 */
import { moeSpecAt } from '../src/models/arch.ts';
import { referenceForward, type ReferenceModel } from '../src/forward/reference/forward.ts';
import { moeForward, swiglu, type MlpWeights, type MoeLayerWeights } from '../src/forward/reference/moe.ts';
import { gatherRows } from '../src/forward/reference/ops.ts';

/** The routed experts (per-expert or fused layout), router, correction bias and shared expert of MoE layer L. */
export async function moeLayerWeights(m: ReferenceModel, L: number): Promise<MoeLayerWeights> {
  const { arch, weights } = m;
  const blk = `model.layers.${L}.${arch.names.moeBlock}`;
  const E = moeSpecAt(arch, L).router.experts;
  const I = arch.moe.intermediate;
  const H = arch.hidden;
  const fused = `${blk}.experts.gate_up_proj`;
  const [g, u, d] = arch.names.expertProj;
  const experts: MlpWeights[] = [];
  for (let e = 0; e < E; e++) {
    if (weights.has(fused)) {
      const gu = await weights.readRows(fused, e, 1);
      experts.push({ gate: gu.subarray(0, I * H), up: gu.subarray(I * H), down: await weights.readRows(`${blk}.experts.down_proj`, e, 1) });
    } else
      experts.push({
        gate: await weights.read(`${blk}.experts.${e}.${g}.weight`),
        up: await weights.read(`${blk}.experts.${e}.${u}.weight`),
        down: await weights.read(`${blk}.experts.${e}.${d}.weight`),
      });
  }
  const w: MoeLayerWeights = {
    router: await weights.read(`${blk}.gate.weight`),
    correctionBias: arch.moe.router.correctionBias ? await weights.read(`${blk}.gate.e_score_correction_bias`) : undefined,
    expert: (e) => experts[e],
    expertNames: (e) => [`e${e}.gate`, `e${e}.up`, `e${e}.down`],
  };
  if (arch.moe.shared && arch.names.sharedMlp) {
    const p = `model.layers.${L}.${arch.names.sharedMlp}`;
    w.shared = { gate: await weights.read(`${p}.gate_proj.weight`), up: await weights.read(`${p}.up_proj.weight`), down: await weights.read(`${p}.down_proj.weight`) };
    w.sharedNames = ['s.gate', 's.up', 's.down'];
    if (arch.moe.shared.sigmoidGate) w.sharedGate = await weights.read(`model.layers.${L}.mlp.shared_expert_gate.weight`);
  }
  return w;
}

/** The MoE block's input [N, hidden] of every MoE layer with `removed` experts pruned (a layer's input depends on earlier layers only). */
export async function moeInputs(model: ReferenceModel, windows: number[][], removed: (layer: number) => ReadonlySet<number> | undefined): Promise<Map<number, Float32Array>> {
  const out = new Map<number, Float32Array>();
  const router = new Map([...model.arch.moeLayers].map((L) => [`model.layers.${L}.${model.arch.names.moeBlock}.gate.weight`, L]));
  await referenceForward(model, windows, {
    output: 'nll',
    removedExperts: removed,
    observer: { linearInput: (t, x) => void (router.has(t) && out.set(router.get(t)!, x.slice())) },
  });
  return out;
}

/** Per-expert sums on the dense routing of x: tokens, Σ g·‖f‖, Σ ‖f‖ (f64). */
export function referenceSaliency(model: ReferenceModel, L: number, x: Float32Array, w: MoeLayerWeights): { tokens: number[]; weightedNorm: number[]; norm: number[] } {
  const H = model.arch.hidden;
  const spec = moeSpecAt(model.arch, L);
  const N = x.length / H;
  const E = spec.router.experts;
  const k = spec.router.topK;
  const { routing } = moeForward(x, N, H, spec, w, undefined);
  const tokens = new Array<number>(E).fill(0);
  const weightedNorm = new Array<number>(E).fill(0);
  const norm = new Array<number>(E).fill(0);
  for (let e = 0; e < E; e++) {
    const rows: number[] = [];
    const gs: number[] = [];
    for (let t = 0; t < N; t++)
      for (let j = 0; j < k; j++)
        if (routing.experts[t * k + j] === e) {
          rows.push(t);
          gs.push(routing.weights[t * k + j]!);
        }
    if (!rows.length) continue;
    const f = swiglu(gatherRows(x, H, rows), rows.length, H, spec.intermediate, w.expert(e)!);
    for (let r = 0; r < rows.length; r++) {
      let s = 0;
      for (let c = 0; c < H; c++) s += f[r * H + c]! ** 2;
      const nrm = Math.sqrt(s);
      tokens[e]!++;
      norm[e]! += nrm;
      weightedNorm[e]! += gs[r]! * nrm;
    }
  }
  return { tokens, weightedNorm, norm };
}

/** ‖y − ŷ‖² and ‖y‖² of the MoE block's output on x: y with `orig` weights, ŷ with `pruned` weights and `removed` experts. */
export function referenceReconstruction(
  model: ReferenceModel, L: number, x: Float32Array, orig: MoeLayerWeights, pruned: MoeLayerWeights, removed: ReadonlySet<number>,
): { sumSqDiff: number; sumSqRef: number; error: number } {
  const H = model.arch.hidden;
  const spec = moeSpecAt(model.arch, L);
  const N = x.length / H;
  const y = moeForward(x, N, H, spec, orig, undefined).out;
  const yh = moeForward(x, N, H, spec, pruned, removed).out;
  let d = 0;
  let r = 0;
  for (let i = 0; i < y.length; i++) {
    d += (yh[i]! - y[i]!) ** 2;
    r += y[i]! ** 2;
  }
  return { sumSqDiff: d, sumSqRef: r, error: d / r };
}
