/**
 * A pruning plan applied on the fly by the GPU engine, without writing a checkpoint: removed experts get −∞
 * router logits (never chosen, never uploaded; the reference pass's `removedExperts` semantics), merged
 * experts run with the element-wise mean of their members' weights and router rows (as the export writes
 * them), and per-tensor bit masks (the unstructured stage's hook) zero single weights inside the matmul.
 */
import { MoePruneError } from '../../core/errors.ts';

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
