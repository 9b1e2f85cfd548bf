/**
 * Which expert a cluster keeps (reference spec §2.3.5) and whether it is averaged instead.
 *
 * Representative: r = argmin_{i∈C} ‖θ_i − θ̄‖², θ_i = concat(vec(gate), vec(up), vec(down)), θ̄ the member mean.
 * Parameters are streamed chunk by chunk so a 100M-parameter expert is never whole in memory. Because
 * ‖θ_i − θ̄‖² is a sum over coordinates, it is accumulated per chunk index c: first θ̄_c = mean_i θ_{i,c}
 * (pass 1 over the members' chunk c), then Σ (θ_{i,c} − θ̄_c)² (pass 2). Cost per cluster: every member's
 * parameters are read once with memory 'hold-chunk' (|C| chunks + one float64 centroid chunk resident), or twice
 * with 'refetch' (one member chunk + the centroid chunk resident). Arithmetic is float64, in the fixed order of
 * sq-distances.ts. 'hold-chunk' does both passes block by block inside the chunk, and with `workers` computes whole
 * chunks on other threads (the CLI's WebAssembly SIMD kernel, fed bfloat16 bits read straight from the checkpoint
 * when the source offers them) while this one reads the next: per-chunk partial sums join the distances in chunk
 * order either way, so the distances are the same bits inline or on any number of threads.
 *
 * Ties: the lowest expert index wins. For 2-member clusters both members are exactly equidistant from their
 * midpoint (θ_a − θ̄ = −(θ_b − θ̄)), so the official "closest to centroid" is arbitrary there (bf16 rounding
 * decides); we resolve it as a tie without reading any parameters: the lower index is kept.
 */
import { MoePruneError, throwIfAborted } from '../../core/errors.ts';
import type { LongTask } from '../../core/progress.ts';
import type { ExpertIndex } from '../../models/types.ts';
import { readAhead } from '../../core/read-ahead.ts';
import { chunkSqDistances, memberSqDistance, sqScratch, type Bf16Bits, type ParamValues } from './sq-distances.ts';

/** Streams one layer's expert parameters θ_i = concat(gate|up|down), split into `chunkCount` chunks. */
export interface ExpertParamSource {
  readonly chunkCount: number;
  /**
   * Chunk `chunk` of θ_expert; for a given chunk index every expert's chunk has the same length. `into`, when
   * given, is an array from an earlier call that the caller is done with: a source may fill and return it instead
   * of a fresh one (one that returns views of its own storage ignores it).
   */
  chunk(expert: ExpertIndex, chunk: number, signal?: AbortSignal, into?: Float32Array): Float32Array | Promise<Float32Array>;
  /**
   * Present when the layer's expert weights are bfloat16 throughout: chunk `chunk` as its stored bits, read into
   * `into` when given (same length) so they land where the workers compute, without a decode or a copy.
   */
  bf16Chunk?(expert: ExpertIndex, chunk: number, signal?: AbortSignal, into?: Bf16Bits): Promise<Bf16Bits>;
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

/**
 * Threads that compute `chunkSqDistances` of whole chunks beside the caller (the CLI's worker threads,
 * src/cli/cpu-workers.ts; the core imports nothing of Node). Chunks are handed out whole and their partial sums
 * added to the distances in chunk order, exactly as one thread does: the result does not depend on `width`.
 */
export interface ChunkDistanceWorkers {
  /** Chunks computed at once. */
  readonly width: number;
  /** True when the workers can read `x` where it is (shared memory), false when it must be copied into `allocLike`'s. */
  shares(x: ParamValues): boolean;
  /** A zeroed array of `x`'s kind and length that the workers read without a copy. */
  allocLike<T extends ParamValues>(x: T): T;
  /** Gives back an array from `allocLike` once nothing reads it any more. */
  release(x: ParamValues): void;
  /** chunkSqDistances of one chunk's member arrays (all `shares`, all one kind), on a worker. */
  sqDistances(xs: readonly ParamValues[]): Promise<Float64Array>;
}

export interface RepresentativeOptions extends LongTask {
  readonly memory?: 'hold-chunk' | 'refetch';
  /** 'hold-chunk' only: compute chunks on these threads while the caller reads the next ones (default: inline). */
  readonly workers?: ChunkDistanceWorkers;
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

/** sum[t] = (((0 + x₀[t]) + x₁[t]) + …) as chunkSqDistances' centroid, one member at a time. */
function addMember(sum: Float64Array, x: Float32Array): void {
  for (let t = 0; t < sum.length; t++) sum[t] = sum[t]! + x[t]!;
}

/**
 * Every member's chunk c, for c = 0, 1, …, in member order: the order 'hold-chunk' consumes them. Arrays the
 * caller puts back into `spares` are handed to the source to refill (no fresh gigabytes for the collector).
 */
export function memberChunks(source: ExpertParamSource, members: readonly ExpertIndex[], signal?: AbortSignal, spares: Float32Array[] = []): AsyncGenerator<Float32Array> {
  return memberGroups((e, c, s, into) => source.chunk(e, c, s, into), source.chunkCount, members, signal, spares);
}

/**
 * Chunk by chunk, every member's chunk in member order, read by `read` (refilling the spares the caller puts back).
 * A chunk's members are read at once: the reads are plain copies the OS runs side by side (measured on the CLI's
 * bf16 reads: 5 members' 2 MiB reads 0.5 → 0.3 s a layer).
 */
async function* memberGroups<T extends ParamValues>(
  read: (e: ExpertIndex, c: number, signal: AbortSignal | undefined, into: T | undefined) => T | Promise<T>,
  chunkCount: number,
  members: readonly ExpertIndex[],
  signal: AbortSignal | undefined,
  spares: T[],
): AsyncGenerator<T> {
  for (let c = 0; c < chunkCount; c++) {
    const reads = members.map((e) => read(e, c, signal, spares.pop()));
    // Every read settles before the first failure surfaces: none writes into an array after it is handed back.
    const values: T[] = [];
    for (const r of await Promise.allSettled(reads)) {
      if (r.status === 'rejected') throw r.reason;
      values.push(r.value);
    }
    yield* values;
  }
}

/** The k members' chunk c from `chunks` (memberChunks' order), lengths checked. */
async function nextMembers<T extends ParamValues>(chunks: AsyncIterator<T>, sorted: readonly ExpertIndex[], c: number, onChunk?: () => void): Promise<T[]> {
  const held: T[] = [];
  for (let i = 0; i < sorted.length; i++) {
    const r = await chunks.next();
    if (r.done) throw new MoePruneError('InvalidArgument', `expert ${sorted[i]} has no parameter chunk ${c}`);
    if (i > 0 && r.value.length !== held[0]!.length)
      throw new MoePruneError('InvalidArgument', `expert ${sorted[i]} parameter chunk ${c} has ${r.value.length} values, other members have ${held[0]!.length}`);
    held.push(r.value);
    onChunk?.();
  }
  return held;
}

/**
 * 'hold-chunk' with up to `workers.width` chunks computing on worker threads while this thread reads the next
 * chunk. Partial sums join `dist` in chunk order. A chunk the source did not put in the workers' memory is copied
 * there once; those arrays then go back to the source as spares to refill, and to the workers at the end.
 */
async function holdChunkParallel<T extends ParamValues>(
  sorted: readonly ExpertIndex[],
  chunkCount: number,
  read: (spares: T[]) => AsyncGenerator<T>,
  dist: Float64Array,
  workers: ChunkDistanceWorkers,
  signal: AbortSignal | undefined,
  onChunk?: () => void,
): Promise<void> {
  const k = sorted.length;
  const width = Math.max(1, Math.floor(workers.width));
  const spares: T[] = [];
  const chunks = readAhead(read(spares), k);
  const inFlight: Array<{ part: Promise<Float64Array>; held: T[] }> = [];
  const allocated: T[] = [];
  const shared = (x: T): T => {
    if (workers.shares(x)) return x;
    const at = spares.findIndex((s) => s.length === x.length);
    const y = at >= 0 ? spares.splice(at, 1)[0]! : workers.allocLike(x);
    if (at < 0) allocated.push(y);
    y.set(x);
    return y;
  };
  const settle = async (): Promise<void> => {
    const { part, held } = inFlight.shift()!;
    const p = await part;
    for (let i = 0; i < k; i++) dist[i] = dist[i]! + p[i]!;
    spares.push(...held);
  };
  try {
    for (let c = 0; c < chunkCount; c++) {
      throwIfAborted(signal);
      const held = (await nextMembers(chunks, sorted, c, onChunk)).map(shared);
      const part = workers.sqDistances(held);
      // Settled in order below, or dropped when the job stops early.
      part.catch(() => undefined);
      inFlight.push({ part, held });
      // One chunk waits in the queue per worker, so no worker idles while this thread reads the next.
      if (inFlight.length > width) await settle();
    }
    while (inFlight.length > 0) {
      throwIfAborted(signal);
      await settle();
    }
  } finally {
    await chunks.return(undefined);
    // Workers only read these, so a chunk still computing for a stopped job harms nothing when they are reused.
    for (const x of allocated) workers.release(x);
  }
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
  if (opts.memory === 'refetch') {
    const lanes = new Float64Array(8);
    for (let c = 0; c < source.chunkCount; c++) {
      throwIfAborted(opts.signal);
      const first = await fetchChunk(source, sorted[0]!, c, undefined, opts.signal);
      const len = first.length;
      const sum = new Float64Array(len);
      for (let i = 0; i < k; i++) {
        addMember(sum, i === 0 ? first : await fetchChunk(source, sorted[i]!, c, len, opts.signal));
        onChunk?.();
      }
      for (let t = 0; t < len; t++) sum[t] = sum[t]! / k;
      for (let i = 0; i < k; i++) {
        dist[i] = dist[i]! + memberSqDistance(await fetchChunk(source, sorted[i]!, c, len, opts.signal), sum, lanes);
        onChunk?.();
      }
    }
  } else if (opts.workers) {
    const bits = source.bf16Chunk?.bind(source);
    if (bits) await holdChunkParallel(sorted, source.chunkCount, (spares: Bf16Bits[]) => memberGroups(bits, source.chunkCount, sorted, opts.signal, spares), dist, opts.workers, opts.signal, onChunk);
    else await holdChunkParallel(sorted, source.chunkCount, (spares: Float32Array[]) => memberChunks(source, sorted, opts.signal, spares), dist, opts.workers, opts.signal, onChunk);
  } else {
    // The next chunk's members are read while this chunk's arithmetic runs (k chunks ahead: one whole chunk).
    const spares: Float32Array[] = [];
    const chunks = readAhead(memberChunks(source, sorted, opts.signal, spares), k);
    const part = new Float64Array(k);
    const scratch = sqScratch(k);
    try {
      for (let c = 0; c < source.chunkCount; c++) {
        throwIfAborted(opts.signal);
        const held = await nextMembers(chunks, sorted, c, onChunk);
        chunkSqDistances(held, part, scratch);
        for (let i = 0; i < k; i++) dist[i] = dist[i]! + part[i]!;
        spares.push(...held);
      }
    } finally {
      await chunks.return(undefined);
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
