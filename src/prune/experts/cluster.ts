/**
 * STUN stage-1 clustering: the official `greedy_but_reject_mixed` rule (reference spec §2.3.3), per-layer floors,
 * DeepSeek-style grouped routing, and the global-threshold searches (§2.3.4). Pure CPU code, no I/O.
 */
import { MoePruneError } from '../../core/errors.ts';
import type { ExpertIndex } from '../../models/types.ts';

/** Off-diagonal finite entries of a distance matrix in torch.argmin order: by value, then by row-major flat index. */
export interface SortedEntries {
  readonly n: number;
  readonly flat: Uint32Array;
  readonly values: Float64Array;
}

export function sortEntries(D: Float64Array, n: number): SortedEntries {
  if (D.length !== n * n) throw new MoePruneError('InvalidArgument', `distance matrix has ${D.length} values, expected ${n}×${n}`);
  let count = 0;
  for (let i = 0; i < n; i++) {
    if (D[i * n + i] !== Infinity) throw new MoePruneError('InvalidArgument', `distance matrix diagonal (${i}, ${i}) must be +Infinity`);
    for (let j = 0; j < n; j++) {
      const v = D[i * n + j]!;
      if (Number.isNaN(v)) throw new MoePruneError('InvalidArgument', `distance (${i}, ${j}) is NaN`);
      if (v !== Infinity) count++;
    }
  }
  const idx = new Uint32Array(count);
  let k = 0;
  for (let f = 0; f < n * n; f++) if (D[f] !== Infinity) idx[k++] = f;
  // Typed-array sort with a comparator is stable; ties fall back to the flat index explicitly anyway.
  idx.sort((a, b) => D[a]! - D[b]! || a - b);
  const values = new Float64Array(count);
  for (let i = 0; i < count; i++) values[i] = D[idx[i]!]!;
  return { n, flat: idx, values };
}

/**
 * The official greedy rule (`greedy_but_reject_mixed`) on an n×n matrix with a +Inf diagonal:
 *
 *   while min(V) < τ:  stop if #clusters ≤ minClusters;  (p,q) = argmin V (row-major first hit)
 *     accept iff V[m,q] < τ for every m in cl(p) and V[m,p] < τ for every m in cl(q)
 *     accept → V[m,q] = ∞ (m∈cl(p)), V[m,p] = ∞ (m∈cl(q)), merge;  reject → V[p,q] = V[q,p] = ∞ (permanent)
 *
 * V only ever turns entries to ∞, so argmin is the first not-yet-dead entry of the sorted list: a run costs
 * O(n²) after the one-off sort. `advance` may be called again with a larger τ to continue the same
 * trajectory; that is valid while no earlier rejection would now be accepted (`minCritical` ≥ the new τ).
 */
export class GreedyRun {
  readonly label: Int32Array;
  clusters: number;
  /** Smallest τ above which some rejection made so far would have been accepted (+Inf if none). */
  minCritical = Infinity;
  private readonly dead: Uint8Array;
  private readonly members: number[][] = [];
  private ptr = 0;

  constructor(
    private readonly D: Float64Array,
    private readonly entries: SortedEntries,
    private readonly minClusters: number,
  ) {
    const n = entries.n;
    this.dead = new Uint8Array(n * n);
    this.label = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      this.members.push([i]);
      this.label[i] = i;
    }
    this.clusters = n;
  }

  advance(tau: number): this {
    const { D, dead, members, label } = this;
    const { n, flat, values } = this.entries;
    for (;;) {
      while (this.ptr < flat.length && dead[flat[this.ptr]!]) this.ptr++;
      if (this.ptr >= flat.length || !(values[this.ptr]! < tau)) break; // min(V) ≥ τ
      if (this.clusters <= this.minClusters) break; // per-layer cap n − c
      const f = flat[this.ptr]!;
      const p = Math.floor(f / n);
      const q = f - p * n;
      const cp = members[label[p]!]!;
      const cq = members[label[q]!]!;
      // crit = max(L), or +Inf when L holds a dead entry (such a pair can never be accepted).
      let crit = -Infinity;
      for (const m of cp) {
        const v = dead[m * n + q] ? Infinity : D[m * n + q]!;
        if (v > crit) crit = v;
        if (crit === Infinity) break;
      }
      if (crit !== Infinity)
        for (const m of cq) {
          const v = dead[m * n + p] ? Infinity : D[m * n + p]!;
          if (v > crit) crit = v;
          if (crit === Infinity) break;
        }
      if (crit < tau) {
        for (const m of cp) dead[m * n + q] = 1;
        for (const m of cq) dead[m * n + p] = 1;
        const keep = Math.min(label[p]!, label[q]!);
        const drop = Math.max(label[p]!, label[q]!);
        const merged = members[keep]!;
        for (const m of members[drop]!) {
          merged.push(m);
          label[m] = keep;
        }
        members[drop] = [];
        this.clusters--;
      } else {
        dead[p * n + q] = 1;
        dead[q * n + p] = 1;
        if (crit < this.minCritical) this.minCritical = crit;
      }
    }
    return this;
  }
}

/** One complete run; returns each expert's cluster label (label = smallest member). */
export function greedyRejectMixed(D: Float64Array, entries: SortedEntries, tau: number, minClusters: number): Int32Array {
  return new GreedyRun(D, entries, minClusters).advance(tau).label;
}

/**
 * Clusters of one matrix at every candidate threshold: `counts[j]` is the cluster count for τ = `taus[j]`,
 * where taus = [v₀, v₁, …, v_{m−1}, +Inf] over the distinct finite entries (τ = v_j merges pairs < v_j).
 * Continues one trajectory while τ grows and restarts only when an earlier rejection flips.
 */
export function clusterCountSweep(D: Float64Array, entries: SortedEntries, minClusters: number): { taus: Float64Array; counts: Int32Array; restarts: number } {
  const vals = entries.values;
  const distinct: number[] = [];
  for (let i = 0; i < vals.length; i++) if (i === 0 || vals[i] !== vals[i - 1]) distinct.push(vals[i]!);
  distinct.push(Infinity);
  const taus = Float64Array.from(distinct);
  const counts = new Int32Array(taus.length);
  let run = new GreedyRun(D, entries, minClusters);
  let restarts = 0;
  for (let j = 0; j < taus.length; j++) {
    const tau = taus[j]!;
    if (run.minCritical < tau) {
      run = new GreedyRun(D, entries, minClusters);
      restarts++;
    }
    counts[j] = run.advance(tau).clusters;
  }
  return { taus, counts, restarts };
}

/** Groups labels into clusters: members ascending, clusters ordered by their smallest member. */
export function clustersFromLabels(label: Int32Array, offset = 0): ExpertIndex[][] {
  const byLabel = new Map<number, ExpertIndex[]>();
  for (let i = 0; i < label.length; i++) {
    const l = label[i]!;
    let c = byLabel.get(l);
    if (!c) byLabel.set(l, (c = []));
    c.push(i + offset);
  }
  return [...byLabel.values()].sort((a, b) => a[0]! - b[0]!);
}

/** Group-limited routing (DeepSeek `n_group` / `topk_group`). nGroup ≤ 1 means ungrouped. */
export interface RoutingGroups {
  readonly nGroup: number;
  readonly topkGroup: number;
}

export interface LayerClusterInput {
  /** n×n distance matrix, diagonal +Inf (see similarity.ts). */
  readonly distances: Float64Array;
  readonly n: number;
  readonly topK: number;
  readonly groups?: RoutingGroups | undefined;
  /** Official cap c (`--top_k`): at most this many experts removed from the layer in threshold mode. Default n. */
  readonly maxRemoved?: number | undefined;
  /** Names the layer in error messages. */
  readonly name?: string;
}

/**
 * Clusters one MoE layer. Ungrouped layers run the greedy rule on the whole matrix. Grouped layers
 * (nGroup > 1) run it inside each contiguous block of n/nGroup experts, with the same number of clusters
 * in every group so the router's group structure survives:
 *  - uniform K: K/nGroup clusters per group;
 *  - threshold τ: each group is clustered with τ alone, then every group is capped at the largest of those
 *    per-group counts (no pair ≥ τ is merged; the more redundant groups merge less than τ alone would allow).
 * Floors: ungrouped ≥ max(topK, 1) clusters; grouped ≥ max(2, ⌈topK/topkGroup⌉) per group (group scores use the
 * top-2 experts of a group, and the chosen groups must still hold topK experts).
 */
const SORTED_BLOCKS = new WeakMap<Float64Array, { readonly groupCount: number; readonly blocks: Array<SortedBlock> }>();

interface SortedBlock {
  readonly D: Float64Array;
  readonly entries: SortedEntries;
  readonly offset: number;
  sweeps?: Map<number, { taus: Float64Array; counts: Int32Array; restarts: number }>;
}

export class LayerClusterer {
  readonly n: number;
  readonly groupCount: number;
  readonly groupSize: number;
  /** Fewest clusters per group (whole layer when ungrouped) that threshold mode may reach. */
  readonly minPerGroup: number;
  /** Fewest clusters per group allowed at all (the routing floor). */
  readonly floorPerGroup: number;
  private readonly blocks: SortedBlock[];
  private readonly name: string;

  constructor(input: LayerClusterInput) {
    const { n, topK } = input;
    this.n = n;
    this.name = input.name ?? 'layer';
    if (!Number.isInteger(n) || n < 1) throw new MoePruneError('InvalidArgument', `${this.name}: expert count must be a positive integer, got ${n}`);
    if (!Number.isInteger(topK) || topK < 0 || topK > n)
      throw new MoePruneError('InvalidArgument', `${this.name}: top-k ${topK} must be an integer in [0, ${n}]`);
    const g = input.groups && input.groups.nGroup > 1 ? input.groups : undefined;
    this.groupCount = g ? g.nGroup : 1;
    if (n % this.groupCount !== 0)
      throw new MoePruneError('InvalidArgument', `${this.name}: ${n} experts do not split into ${this.groupCount} equal routing groups`);
    this.groupSize = n / this.groupCount;
    if (g) {
      if (!(g.topkGroup >= 1 && g.topkGroup <= g.nGroup))
        throw new MoePruneError('InvalidArgument', `${this.name}: topk_group ${g.topkGroup} must be in [1, ${g.nGroup}]`);
      this.floorPerGroup = Math.min(this.groupSize, Math.max(2, Math.ceil(topK / g.topkGroup)));
    } else {
      this.floorPerGroup = Math.min(n, Math.max(topK, 1));
    }
    const maxRemoved = input.maxRemoved ?? n;
    if (!(maxRemoved >= 0)) throw new MoePruneError('InvalidArgument', `${this.name}: max experts removed must be ≥ 0, got ${maxRemoved}`);
    const capPerGroup = Math.floor(Math.min(maxRemoved, n) / this.groupCount);
    this.minPerGroup = Math.max(this.floorPerGroup, this.groupSize - capPerGroup);

    const D = input.distances;
    if (D.length !== n * n) throw new MoePruneError('InvalidArgument', `${this.name}: distance matrix has ${D.length} values, expected ${n}×${n}`);
    // Sorting a layer's distances is most of a re-plan; the page re-plans from the same cached matrices on every
    // slider move, so the sorted blocks are kept per matrix (distance matrices are never written after planning).
    const cached = SORTED_BLOCKS.get(D);
    if (cached && cached.groupCount === this.groupCount) {
      this.blocks = cached.blocks;
      return;
    }
    this.blocks = [];
    SORTED_BLOCKS.set(D, { groupCount: this.groupCount, blocks: this.blocks });
    for (let b = 0; b < this.groupCount; b++) {
      const s = this.groupSize, off = b * s;
      let sub = D;
      if (this.groupCount > 1) {
        sub = new Float64Array(s * s);
        for (let i = 0; i < s; i++) for (let j = 0; j < s; j++) sub[i * s + j] = D[(off + i) * n + off + j]!;
      }
      this.blocks.push({ D: sub, entries: sortEntries(sub, s), offset: off });
    }
  }

  /** Distinct finite distances that can change this layer's clustering (candidate thresholds). */
  candidateValues(): Float64Array[] {
    return this.blocks.map((b) => b.entries.values);
  }

  /** Per-block cluster-count step functions (see clusterCountSweep); grouped blocks run uncapped. */
  sweeps(): Array<{ taus: Float64Array; counts: Int32Array; restarts: number }> {
    return this.blocks.map((b) => {
      const floor = this.groupCount === 1 ? this.minPerGroup : 0;
      // Kept with the sorted blocks: a re-plan of the same matrices sweeps again only under another floor.
      b.sweeps ??= new Map();
      let r = b.sweeps.get(floor);
      if (!r) b.sweeps.set(floor, (r = clusterCountSweep(b.D, b.entries, floor)));
      return r;
    });
  }

  /** Layer count from per-block counts (the same combination rule as countAt). */
  combine(blockCounts: ArrayLike<number>): number {
    if (this.groupCount === 1) return blockCounts[0]!;
    let k = this.minPerGroup;
    for (let i = 0; i < blockCounts.length; i++) k = Math.max(k, blockCounts[i]!);
    return k * this.groupCount;
  }

  /** Clusters per group at threshold τ (same for every group). */
  private perGroupAt(tau: number): number {
    if (this.groupCount === 1) return new GreedyRun(this.blocks[0]!.D, this.blocks[0]!.entries, this.minPerGroup).advance(tau).clusters;
    let k = this.minPerGroup;
    for (const b of this.blocks) k = Math.max(k, new GreedyRun(b.D, b.entries, 0).advance(tau).clusters);
    return k;
  }

  /** Number of experts the layer keeps at threshold τ. */
  countAt(tau: number): number {
    return this.perGroupAt(tau) * this.groupCount;
  }

  /** Clusters at threshold τ (official threshold mode, with the cap and floors). */
  clustersAt(tau: number): ExpertIndex[][] {
    return this.run(tau, this.perGroupAt(tau));
  }

  /**
   * Exactly K clusters: τ = +Inf with cap c = n − K. With τ = +Inf every cross-cluster entry of V stays finite
   * (merges only kill entries that become intra-cluster; rejections only happen on intra-cluster pairs), so
   * each step that meets two clusters merges them and the run stops at exactly K clusters. This is
   * single-linkage agglomeration cut at K, with torch.argmin tie-breaking.
   */
  clustersUniform(K: number): ExpertIndex[][] {
    if (!Number.isInteger(K) || K < 1 || K > this.n)
      throw new MoePruneError('InvalidPlan', `${this.name}: experts kept per layer must be an integer in [1, ${this.n}], got ${K}`);
    if (K % this.groupCount !== 0)
      throw new MoePruneError('InvalidPlan', `${this.name}: keeping ${K} experts breaks grouped routing; K must be a multiple of n_group = ${this.groupCount}`);
    const per = K / this.groupCount;
    if (per < this.floorPerGroup)
      throw new MoePruneError(
        'InvalidPlan',
        this.groupCount > 1
          ? `${this.name}: keeping ${per} experts per routing group is below the floor of ${this.floorPerGroup} (≥ 2 per group and topk_group × per-group ≥ top-k)`
          : `${this.name}: keeping ${K} experts is below the router's top-k floor of ${this.floorPerGroup}`,
      );
    return this.run(Infinity, per);
  }

  private run(tau: number, perGroup: number): ExpertIndex[][] {
    const out: ExpertIndex[][] = [];
    for (const b of this.blocks) out.push(...clustersFromLabels(greedyRejectMixed(b.D, b.entries, tau, perGroup), b.offset));
    return out.sort((a, b) => a[0]! - b[0]!);
  }
}

export type SearchMethod = 'exact' | 'official';

export interface ThresholdPoint {
  readonly tau: number;
  readonly total: number;
}

export interface ThresholdSearchResult {
  readonly method: SearchMethod;
  /** True when Σ kept at `tau` equals the target. */
  readonly exact: boolean;
  /** Threshold the plan uses: the exact hit, else the nearest achievable total (ties: keep more experts). */
  readonly tau: number;
  readonly total: number;
  readonly target: number;
  /** Closest achievable totals found below / above the target (only when not exact). */
  readonly below?: ThresholdPoint;
  readonly above?: ThresholdPoint;
  /** How many times Σ kept was evaluated. */
  readonly evaluations: number;
  readonly message: string;
}

function totalAt(layers: readonly LayerClusterer[], tau: number): number {
  let s = 0;
  for (const l of layers) s += l.countAt(tau);
  return s;
}

function conclude(method: SearchMethod, target: number, evaluations: number, below: ThresholdPoint | undefined, above: ThresholdPoint | undefined, why: string): ThresholdSearchResult {
  const pick =
    below && above ? (target - below.total < above.total - target ? below : above) : (below ?? above)!;
  const parts = [
    `no global threshold keeps exactly ${target} experts (${why})`,
    below ? `closest below: ${below.total} at τ=${below.tau}` : 'nothing achievable below',
    above ? `closest above: ${above.total} at τ=${above.tau}` : 'nothing achievable above',
    `using ${pick.total}`,
  ];
  return { method, exact: false, tau: pick.tau, total: pick.total, target, below, above, evaluations, message: parts.join('; ') };
}

/**
 * Exact search. Σ kept only changes where τ crosses a distance value (every test is `value < τ`), so the
 * candidates are the distinct finite distances v₀ < … < v_{m−1} plus +Inf (τ = v merges pairs closer than v).
 *  1. Bisection over the candidates for the first one with Σ kept ≤ T (≈ log₂ m evaluations; fast).
 *  2. If that misses T, a full sweep: every layer's count is tabulated at all its candidates
 *     (`clusterCountSweep`), the tables are merged in τ order and the first τ whose total equals T wins. The
 *     greedy rule is not monotone in τ (a larger τ can admit an early merge that later blocks others), so the
 *     sweep can find hits the bisection jumps over. It costs about as much as a few hundred evaluations
 *     (~6 s for 35 × 128 random experts); when it also misses, the closest totals on both sides are reported.
 * Reported τ values are interval midpoints, so float noise in GPU-computed distances does not move results.
 */
export function searchThresholdExact(layers: readonly LayerClusterer[], target: number): ThresholdSearchResult {
  const b = bisectThreshold(layers, target);
  if (b.exact) return b;
  const sw = sweepThresholds(layers, target);
  return { ...sw, evaluations: b.evaluations + sw.evaluations };
}

/** The last candidate list and the (cached, never written) value arrays it merged: a re-plan of the same matrices reuses it. */
let lastCandidates: { readonly arrays: readonly Float64Array[]; readonly cand: readonly number[]; readonly totals: Map<string, Map<number, number>> } | null = null;

/** Distinct candidate thresholds of all layers, ascending, then +Inf. */
function candidatesOf(layers: readonly LayerClusterer[]): { readonly cand: readonly number[]; readonly totals: Map<number, number> } {
  const arrays = layers.flatMap((l) => l.candidateValues());
  // Totals at a candidate also depend on each layer's floor (top-k, groups, the per-layer cap).
  const floors = layers.map((l) => `${l.minPerGroup}/${l.groupCount}`).join(',');
  const last = lastCandidates;
  if (last && last.arrays.length === arrays.length && last.arrays.every((a, i) => a === arrays[i])) {
    let totals = last.totals.get(floors);
    if (!totals) last.totals.set(floors, (totals = new Map()));
    return { cand: last.cand, totals };
  }
  let size = 0;
  for (const a of arrays) size += a.length;
  const sorted = new Float64Array(size);
  let at = 0;
  for (const a of arrays) (sorted.set(a, at), (at += a.length));
  sorted.sort();
  const cand: number[] = [];
  for (let i = 0; i < sorted.length; i++) if (i === 0 || sorted[i] !== sorted[i - 1]) cand.push(sorted[i]!);
  cand.push(Infinity);
  const totals = new Map<number, number>();
  lastCandidates = { arrays, cand, totals: new Map([[floors, totals]]) };
  return { cand, totals };
}

function bisectThreshold(layers: readonly LayerClusterer[], target: number): ThresholdSearchResult {
  const { cand, totals } = candidatesOf(layers);
  const tauOf = (i: number): number => {
    if (i === 0 || cand[i] === Infinity) return cand[i]!;
    const mid = cand[i - 1]! + (cand[i]! - cand[i - 1]!) / 2;
    return mid > cand[i - 1]! && mid < cand[i]! ? mid : cand[i]!;
  };
  let evaluations = 0;
  const seen = new Set<number>();
  const K = (i: number): number => {
    if (!seen.has(i)) (seen.add(i), evaluations++);
    let v = totals.get(i);
    if (v === undefined) totals.set(i, (v = totalAt(layers, tauOf(i))));
    return v;
  };
  const miss = (): ThresholdSearchResult => ({ method: 'exact', exact: false, tau: NaN, total: NaN, target, evaluations, message: 'bisection missed' });
  const last = cand.length - 1;
  if (K(0) < target || K(last) > target) return miss();
  let lo = 0, hi = last; // invariant K(lo) > T ≥ K(hi)
  if (K(0) === target) hi = 0;
  while (hi - lo > 1) {
    const mid = (lo + hi) >>> 1;
    if (K(mid) <= target) hi = mid;
    else lo = mid;
  }
  if (K(hi) !== target) return miss();
  return { method: 'exact', exact: true, tau: tauOf(hi), total: target, target, evaluations, message: `τ=${tauOf(hi)} keeps exactly ${target} experts` };
}

function sweepThresholds(layers: readonly LayerClusterer[], target: number): ThresholdSearchResult {
  const sweeps = layers.map((l) => l.sweeps());
  let events = 0;
  for (const sw of sweeps) for (const b of sw) events += b.taus.length;
  const evTau = new Float64Array(events), evLayer = new Int32Array(events), evBlock = new Int32Array(events), evCount = new Int32Array(events);
  let e = 0;
  for (let l = 0; l < sweeps.length; l++)
    sweeps[l]!.forEach((b, bi) => {
      for (let j = 0; j < b.taus.length; j++) {
        evTau[e] = b.taus[j]!; evLayer[e] = l; evBlock[e] = bi; evCount[e] = b.counts[j]!; e++;
      }
    });
  const order = new Uint32Array(events);
  for (let i = 0; i < events; i++) order[i] = i;
  order.sort((a, b) => evTau[a]! - evTau[b]! || a - b);

  const blockCounts = layers.map((l) => new Int32Array(l.groupCount).fill(l.groupSize));
  const layerCounts = layers.map((l, i) => l.combine(blockCounts[i]!));
  let total = layerCounts.reduce((a, b) => a + b, 0);
  const firstTau = events > 0 ? evTau[order[0]!]! : Infinity;
  let below: ThresholdPoint | undefined, above: ThresholdPoint | undefined;
  const consider = (tau: number): ThresholdSearchResult | undefined => {
    if (total === target) return { method: 'exact', exact: true, tau, total, target, evaluations: events, message: `τ=${tau} keeps exactly ${target} experts` };
    if (total < target && (!below || total > below.total)) below = { tau, total };
    if (total > target && (!above || total < above.total)) above = { tau, total };
    return undefined;
  };
  const hit = consider(firstTau);
  if (hit) return hit;
  let prevTau = firstTau;
  for (let i = 0; i < events; ) {
    const tau = evTau[order[i]!]!;
    for (; i < events && evTau[order[i]!] === tau; i++) {
      const ev = order[i]!, l = evLayer[ev]!;
      blockCounts[l]![evBlock[ev]!] = evCount[ev]!;
      const c = layers[l]!.combine(blockCounts[l]!);
      total += c - layerCounts[l]!;
      layerCounts[l] = c;
    }
    // Totals at τ = tau hold for the whole interval (prevTau, tau]; report its midpoint when representable.
    const mid = prevTau + (tau - prevTau) / 2;
    const r = consider(tau !== Infinity && mid > prevTau && mid < tau ? mid : tau);
    if (r) return r;
    prevTau = tau;
  }
  const totals = `achievable totals run from ${above?.total ?? below?.total} down to ${below?.total ?? above?.total}`;
  return conclude('exact', target, events, below, above, totals);
}

/**
 * The official search (spec §2.3.4): start at τ₀, step 0.1; step doubles while the direction has never
 * flipped and halves once it has; τ moves down when too few experts are kept. Gives up when the last 10
 * totals are identical (the official script exits with status 1), or after `maxIterations`.
 * Interpretation where the spec is silent: the step is updated before each move, and the flip that happens
 * on this iteration already halves it.
 */
export function searchThresholdOfficial(
  layers: readonly LayerClusterer[],
  target: number,
  start = 0.5,
  maxIterations = 1000,
): ThresholdSearchResult {
  let tau = start, step = 0.1, flipped = false, prevDir = 0;
  const history: number[] = [];
  let below: ThresholdPoint | undefined, above: ThresholdPoint | undefined;
  for (let it = 0; it < maxIterations; it++) {
    const total = totalAt(layers, tau);
    if (total === target)
      return { method: 'official', exact: true, tau, total, target, evaluations: it + 1, message: `τ=${tau} keeps exactly ${target} experts` };
    if (total < target && (!below || total > below.total)) below = { tau, total };
    if (total > target && (!above || total < above.total)) above = { tau, total };
    history.push(total);
    if (history.length >= 10 && history.slice(-10).every((k) => k === total))
      return conclude('official', target, it + 1, below, above, `the official search stalled: 10 identical totals of ${total}`);
    const dir = total < target ? -1 : 1;
    if (prevDir !== 0 && dir !== prevDir) flipped = true;
    step = flipped ? step / 2 : step * 2;
    tau += dir * step;
    prevDir = dir;
  }
  return conclude('official', target, maxIterations, below, above, `the official search did not converge in ${maxIterations} steps`);
}
