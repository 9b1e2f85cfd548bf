/**
 * What the pruned checkpoint contains, tensor by tensor, before any byte is read: a pure function of the
 * catalogue and the expert plan, so it can be tested and shown (bytes/params after) without I/O.
 *
 * Every output tensor is a list of pieces: byte ranges copied from an input tensor, or the element-wise mean of
 * equal-length ranges of several input tensors (merged experts). Removing experts only ever slices dim 0
 * (router rows, per-expert biases, fused [E, ...] tensors) or drops whole per-expert tensors.
 */
import { MoePruneError } from '../core/errors.ts';
import { dtypeBits, numel, type DType } from '../formats/dtype.ts';
import { AVERAGEABLE_DTYPES } from '../formats/mean.ts';
import type { Catalogue } from '../models/catalogue.ts';
import { isQuantScale, renameExpertTensor } from '../models/families.ts';
import type { ExpertIndex, LayerIndex, TensorEntry } from '../models/types.ts';

/** The part of an expert plan the export needs (LayerPlan from src/prune/experts/plan.ts satisfies it). */
export interface LayerKeep {
  readonly layer: LayerIndex;
  /** Kept original experts ascending; slot i of the output holds kept[i]. */
  readonly kept: readonly ExpertIndex[];
  /** Slots whose weights and router row are the mean of these original experts. */
  readonly merges: ReadonlyArray<{ readonly slot: number; readonly members: readonly ExpertIndex[] }>;
}

export interface ByteRange {
  readonly tensor: string;
  readonly offset: number;
  readonly length: number;
}

/** `origin`: for tensors sliced by expert rows (router, fused experts), the original expert this piece's row holds. */
export type Piece =
  | { readonly kind: 'copy'; readonly range: ByteRange; readonly origin?: ExpertIndex }
  | { readonly kind: 'mean'; readonly dtype: DType; readonly ranges: readonly ByteRange[]; readonly origin?: ExpertIndex };

export interface OutputTensor {
  readonly name: string;
  /** The input tensor it is made from (for a renumbered or merged expert: the kept expert's own tensor). */
  readonly source: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly byteLength: number;
  /** Input shard the tensor came from; output shards follow input shards. */
  readonly shard: string;
  readonly pieces: readonly Piece[];
  /** Counted as a model parameter (not a quantisation scale or a routing buffer), as transformers counts. */
  readonly isParam: boolean;
}

export interface TensorPlan {
  readonly tensors: OutputTensor[];
  /** Routed-expert count of every MoE layer after pruning (uniform unless the plan is non-uniform). */
  readonly expertsPerLayer: ReadonlyMap<LayerIndex, number>;
  readonly params: number;
  readonly bytes: number;
}

const isParamEntry = (e: TensorEntry): boolean => !isQuantScale(e.name) && !(e.role.kind === 'router' && e.role.part === 'e_score_correction_bias');

function rowBytes(e: TensorEntry): number {
  const rows = e.shape[0] ?? 1;
  return rows === 0 ? 0 : e.byteLength / rows;
}

/** Per slot: the original rows (one for a kept expert, several for a merged slot). */
function slotMembers(keep: LayerKeep): ExpertIndex[][] {
  const slots = keep.kept.map((e) => [e]);
  for (const m of keep.merges) {
    if (m.slot < 0 || m.slot >= slots.length) throw new MoePruneError('InvalidPlan', `layer ${keep.layer}: merge slot ${m.slot} out of range`);
    slots[m.slot] = [...m.members];
  }
  return slots;
}

/** Averaging decodes to f32 and re-encodes; quantised dtypes would need requantising, so they are refused up front. */
function checkAverageable(e: TensorEntry): void {
  if (!AVERAGEABLE_DTYPES.has(e.dtype))
    throw new MoePruneError('InvalidPlan', `cannot average experts stored as ${e.dtype} ("${e.name}") without requantising; use reconstruction "none"`, e.file);
}

function rowPieces(e: TensorEntry, slots: ExpertIndex[][], kept: readonly ExpertIndex[]): Piece[] {
  if (slots.some((m) => m.length > 1)) checkAverageable(e);
  const rb = rowBytes(e);
  const range = (row: number): ByteRange => ({ tensor: e.name, offset: row * rb, length: rb });
  return slots.map((members, slot) =>
    members.length === 1
      ? { kind: 'copy', range: range(members[0]!), origin: kept[slot]! }
      : { kind: 'mean', dtype: e.dtype, ranges: members.map(range), origin: kept[slot]! },
  );
}

export function planPrunedTensors(cat: Catalogue, keeps: readonly LayerKeep[]): TensorPlan {
  const byLayer = new Map<number, LayerKeep>();
  for (const k of keeps) {
    const info = cat.moeLayers.find((l) => l.layer === k.layer);
    if (!info) throw new MoePruneError('InvalidPlan', `layer ${k.layer} is not a MoE layer of this checkpoint`);
    if (k.kept.length < 1 || k.kept.some((e, i) => e < 0 || e >= info.experts || (i > 0 && e <= k.kept[i - 1]!)))
      throw new MoePruneError('InvalidPlan', `layer ${k.layer}: kept experts must be distinct, ascending and < ${info.experts}`);
    byLayer.set(k.layer, k);
  }
  const expertsPerLayer = new Map<LayerIndex, number>();
  for (const l of cat.moeLayers) expertsPerLayer.set(l.layer, byLayer.get(l.layer)?.kept.length ?? l.experts);

  const out: OutputTensor[] = [];
  const add = (e: TensorEntry, name: string, shape: readonly number[], pieces: Piece[]): void => {
    const byteLength = (numel(shape) * dtypeBits(e.dtype)) / 8;
    out.push({ name, source: e.name, dtype: e.dtype, shape, byteLength, shard: e.file, pieces, isParam: isParamEntry(e) });
  };
  const whole = (e: TensorEntry): Piece[] => [{ kind: 'copy', range: { tensor: e.name, offset: 0, length: e.byteLength } }];

  for (const e of cat.tensors.values()) {
    const role = e.role;
    const keep = 'layer' in role && role.layer !== undefined ? byLayer.get(role.layer) : undefined;
    if (!keep || (role.kind !== 'router' && role.kind !== 'expert' && role.kind !== 'fused_experts')) {
      add(e, e.name, e.shape, whole(e));
      continue;
    }
    const slots = slotMembers(keep);
    if (role.kind === 'router' || role.kind === 'fused_experts') {
      // [E, ...]: one row per expert.
      add(e, e.name, [slots.length, ...e.shape.slice(1)], rowPieces(e, slots, keep.kept));
      continue;
    }
    // Per-expert tensor: it survives as the slot it represents (renamed), or is dropped.
    const slot = keep.kept.indexOf(role.expert);
    if (slot < 0) continue;
    const members = slots[slot]!;
    if (members.length > 1) checkAverageable(e);
    const pieces: Piece[] =
      members.length === 1
        ? whole(e)
        : [
            {
              kind: 'mean',
              dtype: e.dtype,
              ranges: members.map((m) => {
                const name = renameExpertTensor(cat.naming, e.name, m);
                const src = cat.tensors.get(name);
                if (!src) throw new MoePruneError('MissingTensor', `cannot merge: no tensor "${name}"`);
                return { tensor: name, offset: 0, length: src.byteLength };
              }),
            },
          ];
    add(e, renameExpertTensor(cat.naming, e.name, slot), e.shape, pieces);
  }
  let params = 0;
  let bytes = 0;
  for (const t of out) {
    if (t.isParam) params += numel(t.shape);
    bytes += t.byteLength;
  }
  return { tensors: out, expertsPerLayer, params, bytes };
}
