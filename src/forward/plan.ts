/**
 * A pruning plan applied on the fly by the GPU engine, without writing a checkpoint: removed experts get −∞
 * router logits (never chosen, never uploaded; the reference pass's `removedExperts` semantics), merged
 * experts run with the element-wise mean of their members' weights and router rows (as the export writes
 * them), and per-tensor bit masks (the unstructured stage's hook) zero single weights inside the matmul.
 */
import { MoePruneError } from '../core/errors.ts';
import { meanF32 } from '../formats/mean.ts';
import type { ArchConfig } from '../models/arch.ts';
import { overlayWeights, type WeightSource } from './reference/weights.ts';

export interface ExpertEdits {
  /** Original expert indices that are gone. */
  readonly removed?: ReadonlySet<number>;
  /** Expert `into` (kept) runs with the mean of `members` (its own index included). */
  readonly merges?: ReadonlyArray<{ readonly into: number; readonly members: readonly number[] }>;
}

export interface WeightPlan {
  /** Expert edits of MoE layer `layer` (undefined: unchanged). */
  readonly experts?: (layer: number) => ExpertEdits | undefined;
  /**
   * Bit mask over a linear weight's elements (bit o·in + i, LSB first in u32 words; 0 = pruned), by tensor name
   * (fused experts: `…experts.gate_up_proj[e].gate` / `[e].up` / `…experts.down_proj[e]`, as the reference names them).
   */
  readonly mask?: (tensor: string) => Uint32Array | undefined;
}

/** The part of a stage-1 layer plan that matters here (src/prune/experts/plan.ts LayerPlan satisfies it). */
export interface LayerEditsSource {
  readonly layer: number;
  readonly kept: readonly number[];
  readonly removed: readonly number[];
  readonly merges: ReadonlyArray<{ readonly slot: number; readonly members: readonly number[] }>;
}

/** Expert edits of a stage-1 expert plan: removed experts, and merged slots keyed by the kept expert they replace. */
export function expertPlanEdits(layers: readonly LayerEditsSource[]): WeightPlan {
  const byLayer = new Map<number, ExpertEdits>();
  for (const l of layers) {
    const merges = l.merges.map((m) => {
      const into = l.kept[m.slot];
      if (into === undefined) throw new MoePruneError('InvalidPlan', `layer ${l.layer}: merge slot ${m.slot} has no kept expert`);
      if (!m.members.includes(into)) throw new MoePruneError('InvalidPlan', `layer ${l.layer}: merged slot ${m.slot} does not contain its kept expert ${into}`);
      return { into, members: [...m.members] };
    });
    byLayer.set(l.layer, { removed: new Set(l.removed), merges });
  }
  return { experts: (layer) => byLayer.get(layer) };
}

/**
 * The same plan for the CPU reference pass (`--cpu` runs): removed experts through `removedExperts`, merged
 * experts and masks through a weight overlay. Merged means stay in f32 here (the GPU engine rounds them to the
 * stored dtype, as the export does), so BF16 checkpoints can differ in the last bits.
 */
export function referencePlan(
  model: { readonly arch: ArchConfig; readonly weights: WeightSource },
  plan: WeightPlan,
): { model: { arch: ArchConfig; weights: WeightSource }; removedExperts: (layer: number) => ReadonlySet<number> | undefined } {
  const { arch, weights } = model;
  const merged = new Map<string, () => Promise<Float32Array>>();
  const rowEdits = new Map<string, Array<{ into: number; members: readonly number[] }>>();
  for (const layer of arch.moeLayers) {
    const edits = plan.experts?.(layer);
    if (!edits?.merges?.length) continue;
    const blk = `model.layers.${layer}.${arch.names.moeBlock}`;
    const fused = weights.has(`${blk}.experts.gate_up_proj`);
    const mean = (read: (e: number) => Promise<Float32Array>, members: readonly number[]) => async () => meanF32(await Promise.all(members.map(read)));
    for (const m of edits.merges) {
      if (fused)
        for (const t of [`${blk}.experts.gate_up_proj`, `${blk}.experts.down_proj`]) merged.set(`${t}#${m.into}`, mean((e) => weights.readRows(t, e, 1), m.members));
      else for (const p of arch.names.expertProj) merged.set(`${blk}.experts.${m.into}.${p}.weight`, mean((e) => weights.read(`${blk}.experts.${e}.${p}.weight`), m.members));
    }
    for (const t of [`${blk}.gate.weight`, `${blk}.gate.e_score_correction_bias`]) rowEdits.set(t, [...edits.merges]);
  }
  const overlaid = overlayWeights(weights, async (name, values, rows) => {
    const whole = merged.get(name) ?? (rows?.count === 1 ? merged.get(`${name}#${rows.start}`) : undefined);
    let v = whole ? await whole() : values;
    const edits = rows === null ? rowEdits.get(name) : undefined;
    if (edits) {
      const d = v.length / (weights.shape(name)?.[0] ?? 1);
      v = v.slice();
      const row = (r: number) => values.subarray(r * d, (r + 1) * d);
      for (const m of edits) v.set(meanF32(m.members.map(row), name), m.into * d);
    }
    const mask = plan.mask?.(name);
    if (mask && rows === null) v = v.map((x, i) => ((mask[i >>> 5]! >>> (i & 31)) & 1 ? x : 0));
    return v;
  });
  return { model: { arch, weights: overlaid }, removedExperts: (l) => plan.experts?.(l)?.removed };
}
