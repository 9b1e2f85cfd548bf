/**
 * Which expert a cluster keeps (reference spec §2.3.5) and whether it is averaged instead.
 *
 * Representative: r = argmin_{i∈C} ‖θ_i − θ̄‖², θ_i = concat(vec(gate), vec(up), vec(down)), θ̄ the member mean.
 * Parameters are streamed chunk by chunk so a 100M-parameter expert is never whole in memory. Because
 * ‖θ_i − θ̄‖² is a sum over coordinates, it is accumulated per chunk index c: first θ̄_c = mean_i θ_{i,c}
 * (pass 1 over the members' chunk c), then Σ (θ_{i,c} − θ̄_c)² (pass 2). Cost per cluster: every member's
 * parameters are read once with memory 'hold-chunk' (|C| chunks + one float64 centroid chunk resident), or twice
 * with 'refetch' (one member chunk + the centroid chunk resident). Arithmetic is float64.
 *
 * Ties: the lowest expert index wins. For 2-member clusters both members are exactly equidistant from their
 * midpoint (θ_a − θ̄ = −(θ_b − θ̄)), so the official "closest to centroid" is arbitrary there (bf16 rounding
 * decides); we resolve it as a tie without reading any parameters: the lower index is kept.
 */
import { MoePruneError, throwIfAborted } from '../../core/errors.ts';
import type { LongTask } from '../../core/progress.ts';
import type { ExpertIndex } from '../../models/types.ts';

/** Streams one layer's expert parameters θ_i = concat(gate|up|down), split into `chunkCount` chunks. */
export interface ExpertParamSource {
  readonly chunkCount: number;
  /** Chunk `chunk` of θ_expert; for a given chunk index every expert's chunk has the same length. */
  chunk(expert: ExpertIndex, chunk: number, signal?: AbortSignal): Float32Array | Promise<Float32Array>;
}

/** 'none': keep the representative; 'per-layer': official code (average every cluster when the layer has ≤ κ
 * clusters); 'per-cluster-size': paper summary (average clusters with fewer than κ members). */
export type ReconstructRule = 'none' | 'per-layer' | 'per-cluster-size';

/** Default κ per rule: κ_L = 2 as in the official README; κ = 3 as in the paper summary. */
export const DEFAULT_KAPPA: Record<ReconstructRule, number> = { none: 0, 'per-layer': 2, 'per-cluster-size': 3 };

/** What happens to a cluster: singletons are kept, others select a representative or are averaged. */
export type ClusterAction = 'keep' | 'select' | 'merge';

export function clusterAction(rule: ReconstructRule, kappa: number, clustersInLayer: number, size: number): ClusterAction {
  if (size < 2) return 'keep';
  if (rule === 'per-layer' && clustersInLayer <= kappa) return 'merge';
  if (rule === 'per-cluster-size' && size < kappa) return 'merge';
  return 'select';
}

export interface RepresentativeOptions extends LongTask {
  readonly memory?: 'hold-chunk' | 'refetch';
}

export interface RepresentativeResult {
  readonly representative: ExpertIndex;
  /** ‖θ_i − θ̄‖² per member, in member order (empty when not measured: singletons and pairs). */
  readonly sqDistances: Float64Array;
}

async function fetchChunk(src: ExpertParamSource, e: ExpertIndex, c: number, len: number | undefined, signal?: AbortSignal): Promise<Float32Array> {
  const x = await src.chunk(e, c, signal);
  if (len !== undefined && x.length !== len)
    throw new MoePruneError('InvalidArgument', `expert ${e} parameter chunk ${c} has ${x.length} values, other members have ${len}`);
  return x;
}

/** The member closest to the cluster centroid (members ascending). */
export async function selectRepresentative(
  members: readonly ExpertIndex[],
  source: ExpertParamSource,
  opts: RepresentativeOptions = {},
  onChunk?: () => void,
): Promise<RepresentativeResult> {
  if (members.length === 0) throw new MoePruneError('InvalidArgument', 'cannot choose a representative of an empty cluster');
  const sorted = [...members].sort((a, b) => a - b);
  if (sorted.length <= 2) return { representative: sorted[0]!, sqDistances: new Float64Array(0) };
  const k = sorted.length;
  const dist = new Float64Array(k);
  for (let c = 0; c < source.chunkCount; c++) {
    throwIfAborted(opts.signal);
    const first = await fetchChunk(source, sorted[0]!, c, undefined, opts.signal);
    const len = first.length;
    const held: Float32Array[] = [first];
    const sum = new Float64Array(len);
    for (let i = 0; i < k; i++) {
      const x = i === 0 ? first : await fetchChunk(source, sorted[i]!, c, len, opts.signal);
      if (opts.memory !== 'refetch' && i > 0) held.push(x);
      for (let t = 0; t < len; t++) sum[t] = sum[t]! + x[t]!;
      onChunk?.();
    }
    for (let t = 0; t < len; t++) sum[t] = sum[t]! / k;
    for (let i = 0; i < k; i++) {
      const x = opts.memory === 'refetch' ? await fetchChunk(source, sorted[i]!, c, len, opts.signal) : held[i]!;
      let s = 0;
      for (let t = 0; t < len; t++) {
        const v = x[t]! - sum[t]!;
        s += v * v;
      }
      dist[i] = dist[i]! + s;
      if (opts.memory === 'refetch') onChunk?.();
    }
  }
  let best = 0;
  for (let i = 1; i < k; i++) if (dist[i]! < dist[best]!) best = i; // strict: lowest index wins ties
  return { representative: sorted[best]!, sqDistances: dist };
}




/** An in-memory ExpertParamSource over per-expert θ vectors, split into chunks of `chunkSize` (tests, small models). */
export function memoryParamSource(thetas: readonly Float32Array[], chunkSize: number): ExpertParamSource {
  const len = thetas[0]?.length ?? 0;
  if (thetas.some((t) => t.length !== len)) throw new MoePruneError('InvalidArgument', 'every expert needs the same parameter count');
  if (!(chunkSize >= 1)) throw new MoePruneError('InvalidArgument', `chunk size must be ≥ 1, got ${chunkSize}`);
  return {
    chunkCount: Math.ceil(len / chunkSize),
    chunk: (e, c) => {
      const t = thetas[e];
      if (!t) throw new MoePruneError('InvalidArgument', `no parameters for expert ${e}`);
      return t.subarray(c * chunkSize, Math.min(len, (c + 1) * chunkSize));
    },
  };
}
