/**
 * STUN stage 2 on a checkpoint: unstructured masks (Wanda, OWL, magnitude, N:M) for the linear maps of the scope,
 * computed layer by layer on the GPU by the forward engine's sequential hook, on top of a stage-1 expert plan applied
 * on the fly. Produces bit masks (1 = keep) keyed by the engine's linear-map names, the sparsity actually achieved
 * (counted from the masks and the removed experts), OWL's per-layer numbers, and the experts no token reached.
 */
import { MoePruneError, throwIfAborted } from '../core/errors.ts';
import type { LongTask, Progress } from '../core/progress.ts';
import type { GpuContext } from '../gpu/device.ts';
import type { BufferView } from '../gpu/dispatch.ts';
import { matrixMask, nmMask, rowMask, scoreStats, type ScoreSource } from '../gpu/kernels/prune-mask.ts';
import { readBuffer } from '../gpu/pool.ts';
import { uploadedBuffer } from '../gpu/kernels/kernel-args.ts';
import { releaseTensor, uploadTensor, type GpuTensor } from '../gpu/tensor.ts';
import { decodeToF32, numel } from '../formats/dtype.ts';
import { isQuantScale } from '../models/families.ts';
import type { Catalogue } from '../models/catalogue.ts';
import type { TensorRole } from '../models/types.ts';
import type { GpuForwardEngine, LayerPruneContext, LayerPruner } from '../forward/engine.ts';
import { nonFiniteError } from '../forward/finite.ts';
import { CheckpointTensors } from '../forward/weights.ts';
import type { WeightPlan } from '../forward/plan.ts';
import type { InputNorm } from '../forward/stats.ts';
import type { ExpertPlan } from '../prune/experts/plan.ts';
import { lodPercent, owlRatios } from '../prune/unstructured/owl.ts';
import {
  checkUnstructuredSettings, formatNm, needsCalibration, SCOPE_KINDS, unstructuredRatio,
  type MatrixKind, type UnstructuredSettings,
} from '../prune/unstructured/settings.ts';

/** Parameters of the scope, before stage 1, removed by it, and zeroed by stage 2. */
export interface SparsityCount {
  readonly params: number;
  readonly removed: number;
  readonly zeros: number;
}

export interface SparsityReport {
  /** Requested total over the scope (null with N:M, where the pattern fixes it). */
  readonly target: number | null;
  /** (removed with experts + zeros) / scope parameters before pruning, counted from the plan and the masks. */
  readonly achieved: number;
  /** s_e: share of the scope removed with whole experts (stage 1). */
  readonly expert: number;
  /** s_u: ratio stage 2 applies to what remains (OWL: the mean target; see byLayer). */
  readonly unstructured: number;
  readonly scope: UnstructuredSettings['scope'];
  readonly method: UnstructuredSettings['method'];
  readonly nm: string | null;
  readonly counts: SparsityCount;
  /** Per decoder layer with in-scope maps: the ratio applied, and the achieved shares. */
  readonly byLayer: Record<string, { target: number; unstructured: number; achieved: number }>;
  readonly byKind: Partial<Record<MatrixKind, SparsityCount & { achieved: number }>>;
}

export interface OwlReport {
  readonly m: number;
  readonly lambda: number;
  /** Layer outlier density (percent of scores above M·mean) per decoder layer. */
  readonly lod: Record<string, number>;
  /** The unstructured ratio s_ℓ applied per decoder layer. */
  readonly ratios: Record<string, number>;
}

export interface StageTwoResult {
  readonly masks: ReadonlyMap<string, Uint32Array>;
  readonly sparsity: SparsityReport;
  readonly owl: OwlReport | null;
  readonly unrouted: { readonly policy: UnstructuredSettings['unrouted']; readonly experts: string[] };
  readonly layerMs: Record<string, number>;
}

/** What one finished decoder layer adds to a stage-2 run (saved so that a crash costs at most the layer in progress). */
export interface SavedLayer {
  readonly layer: number;
  /** The layer's masks by linear-map name. */
  readonly masks: ReadonlyMap<string, Uint32Array>;
  readonly zeros: Partial<Record<MatrixKind, number>>;
  /** The ratio applied (OWL: the layer's own), or null for a layer without in-scope maps. */
  readonly ratio: number | null;
  readonly unrouted: readonly string[];
  readonly ms: number;
}

export interface SavedStageTwo {
  readonly owl: OwlReport | null;
  readonly layers: readonly SavedLayer[];
  /** The hidden states leaving the last saved layer ([windows·L, hidden]). */
  readonly hidden: Float32Array | null;
}

/**
 * Where a stage-2 run keeps its progress: after OWL's scoring pass, and after every decoder layer (its masks and the
 * hidden states entering the next layer). `load` returns what an interrupted run of the same job saved, or null.
 */
export interface StageTwoProgressStore {
  load(): Promise<SavedStageTwo | null>;
  saveOwl(owl: OwlReport): Promise<void>;
  saveLayer(layer: SavedLayer, hidden: Float32Array): Promise<void>;
}

export interface StageTwoInput {
  readonly cat: Catalogue;
  readonly engine: GpuForwardEngine;
  /** Calibration windows (token ids); not needed by magnitude. */
  readonly windows: ReadonlyArray<Int32Array> | null;
  /** The stage-1 plan (a plan that keeps every expert when only stage 2 runs). */
  readonly expertPlan: ExpertPlan;
  /** The same plan as the engine applies it (removed / merged experts). */
  readonly expertEdits: WeightPlan;
  readonly settings: UnstructuredSettings;
  /** Saves progress after every layer and resumes from it (CLI: --work-dir). */
  readonly progressStore?: StageTwoProgressStore;
}

const KIND_OF_ROLE: Partial<Record<TensorRole['kind'], MatrixKind>> = {
  attention: 'attention',
  router: 'router',
  expert: 'expert',
  fused_experts: 'expert',
  shared_expert: 'shared',
  dense_mlp: 'dense',
  residual_mlp: 'dense',
};

/** The kind of a linear-map name as the engine names it (fused experts' rows carry a `[e]` suffix). */
export function matrixKind(cat: Catalogue, name: string): MatrixKind | undefined {
  const base = name.replace(/\[\d+\].*$/, '');
  const e = cat.tensors.get(base);
  if (!e || (e.role.kind === 'router' && e.role.part !== 'weight')) return undefined;
  return KIND_OF_ROLE[e.role.kind];
}

/** A linear weight (fused experts: the [E, out, in] stack, named without a `.weight` suffix), not a bias, norm or scale. */
const isMatrixWeight = (name: string, shape: readonly number[], role: TensorRole): boolean =>
  !isQuantScale(name) &&
  (role.kind === 'fused_experts' ? role.part === 'weight' && shape.length === 3 : name.endsWith('weight') && shape.length === 2 && !('part' in role && role.part === 'scale_inv'));

/** Scope parameters per decoder layer and kind before stage 1, and what stage 1 removes of them. */
export function scopeCounts(cat: Catalogue, plan: ExpertPlan, settings: Pick<UnstructuredSettings, 'scope'>): Map<number, Map<MatrixKind, { params: number; removed: number }>> {
  const kinds = SCOPE_KINDS[settings.scope];
  const removedBy = new Map(plan.layers.map((l) => [l.layer as number, new Set<number>(l.removed)]));
  const out = new Map<number, Map<MatrixKind, { params: number; removed: number }>>();
  for (const e of cat.tensors.values()) {
    const role = e.role;
    const kind = KIND_OF_ROLE[role.kind];
    if (!kind || !kinds.has(kind) || !('layer' in role) || role.layer === undefined || !isMatrixWeight(e.name, e.shape, role)) continue;
    if (role.kind === 'router' && role.part !== 'weight') continue;
    const n = numel(e.shape);
    const removed = removedBy.get(role.layer) ?? new Set<number>();
    const rows = e.shape[0] ?? 1;
    let gone = 0;
    if (role.kind === 'expert') gone = removed.has(role.expert) ? n : 0;
    else if (role.kind === 'fused_experts' || role.kind === 'router') gone = (n / rows) * removed.size;
    const byKind = out.get(role.layer) ?? new Map<MatrixKind, { params: number; removed: number }>();
    out.set(role.layer, byKind);
    const c = byKind.get(kind) ?? { params: 0, removed: 0 };
    byKind.set(kind, { params: c.params + n, removed: c.removed + gone });
  }
  return out;
}

function popcount(bits: Uint32Array, from: number, to: number): number {
  let n = 0;
  for (let i = from; i < to; i++) if ((bits[i >>> 5]! >>> (i & 31)) & 1) n++;
  return n;
}

/**
 * Magnitude mask of the rows `keep` of a small 2-D weight (a router): those rows are gathered into a new F32 tensor,
 * selected over, and the bits spread back to their rows; other rows keep every bit (they are not exported).
 */
async function keptRowsMatrixMask(ctx: GpuContext, t: GpuTensor, keep: readonly number[], ratio: number): Promise<Uint32Array> {
  const [rows, cols] = t.shape as [number, number];
  const all = new Float32Array(rows * cols);
  for (const p of t.parts) {
    const bytes = await readBuffer(ctx, p.buffer, p.rows * t.rowBytes);
    all.set(decodeToF32(t.dtype, bytes.subarray(0, p.rows * t.rowBytes)), p.rowStart * cols);
  }
  const picked = new Float32Array(keep.length * cols);
  keep.forEach((r, i) => picked.set(all.subarray(r * cols, (r + 1) * cols), i * cols));
  const sub = await uploadTensor(ctx, new Uint8Array(picked.buffer), 'F32', [keep.length, cols], { name: 'kept router rows' });
  let view: BufferView | undefined;
  try {
    view = await matrixMask(ctx, { w: sub, prune: Math.floor(keep.length * cols * ratio) });
    const subBits = new Uint32Array((await readBuffer(ctx, view.buffer, Math.ceil((keep.length * cols) / 32) * 4)).slice().buffer);
    const out = new Uint32Array(Math.ceil((rows * cols) / 32)).fill(0xffffffff);
    keep.forEach((r, i) => {
      for (let j = 0; j < cols; j++) {
        const src = i * cols + j;
        const dst = r * cols + j;
        if (!((subBits[src >>> 5]! >>> (src & 31)) & 1)) out[dst >>> 5]! &= ~(1 << (dst & 31));
      }
    });
    return out;
  } finally {
    if (view) ctx.pool.release(view.buffer);
    releaseTensor(ctx, sub);
  }
}

/** Magnitude needs no statistics: one two-token window drives the engine's layer loop (weights still stream per layer). */
const NO_CALIBRATION: ReadonlyArray<Int32Array> = [new Int32Array(2)];

/** In-scope linear maps of one layer as the engine names them: every map it ran, plus every kept expert. */
function layerMatrices(cat: Catalogue, c: LayerPruneContext, kinds: ReadonlySet<MatrixKind>): Array<{ name: string; kind: MatrixKind; expert?: number; part?: number }> {
  const out = new Map<string, { name: string; kind: MatrixKind; expert?: number; part?: number }>();
  for (const name of Object.keys(c.inputNorms)) {
    const kind = matrixKind(cat, name);
    if (kind && kind !== 'expert' && kinds.has(kind)) out.set(name, { name, kind });
  }
  if (kinds.has('expert'))
    for (let ex = 0; ex < c.experts; ex++) {
      if (c.removed.has(ex)) continue;
      c.expertNames(ex).forEach((name, part) => out.set(name, { name, kind: 'expert', expert: ex, part }));
    }
  return [...out.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** Σx² of a map's input the scores use, or null for magnitude keys; throws when statistics are missing. */
type NormChoice = InputNorm | null | 'dense';

export async function runStageTwo(ctx: GpuContext, input: StageTwoInput, opts: LongTask = {}): Promise<StageTwoResult> {
  const { cat, engine, expertPlan, settings: st } = input;
  checkUnstructuredSettings(st);
  const calibrated = needsCalibration(st.method);
  if (calibrated && !input.windows?.length)
    throw new MoePruneError('InvalidArgument', `${st.method} scores weights by their inputs: give calibration text (--calib-text)`);
  const windows = calibrated ? input.windows! : NO_CALIBRATION;
  const kinds = SCOPE_KINDS[st.scope];
  const counts = scopeCounts(cat, expertPlan, st);
  let before = 0;
  let removed = 0;
  for (const byKind of counts.values()) for (const c of byKind.values()) ((before += c.params), (removed += c.removed));
  if (!before) throw new MoePruneError('InvalidPlan', `the scope "${st.scope}" holds no linear maps in this checkpoint`);
  const expertShare = removed / before;
  const su = st.nm ? st.nm.n / st.nm.m : unstructuredRatio(st.sparsity!, expertShare);
  const layers = engine.arch.layers;
  const progress = (phase: string, done: number, detail?: string): void =>
    opts.onProgress?.({ phase, done, total: layers, unit: 'layers', ...(detail ? { detail } : {}) });
  // The engine's own reports (a layer starts) under the step's phase, counting finished layers only, so a progress
  // display hears from the run while its first layer is still going.
  const engineProgress = (phase: string) => (p: Progress): void => {
    if (p.phase === 'GPU forward') progress(phase, Math.min(layers, Math.max(0, p.done - 1)), p.detail);
  };

  const saved = (await input.progressStore?.load()) ?? null;
  // OWL pass 1: a dense pass (stage 1 applied, no masks) scores every in-scope map of each layer.
  let owl: OwlReport | null = saved?.owl ?? null;
  if (st.method === 'owl' && !owl) {
    const lod: Record<string, number> = {};
    await engine.forward(windows, {
      output: 'none',
      plan: input.expertEdits,
      onProgress: engineProgress('OWL outlier scores'),
      ...(opts.signal ? { signal: opts.signal } : {}),
      sequential: async (c) => {
        throwIfAborted(opts.signal);
        const mats = layerMatrices(cat, c, kinds).filter((m) => c.inputNorms[m.name]?.rows);
        if (!mats.length) return;
        // Two sweeps: the layer's mean score first, then how many scores exceed M times it.
        const sources: Array<{ src: ScoreSource; release: () => void; normScale: number }> = [];
        let sum = 0;
        let total = 0;
        try {
          for (const m of mats) {
            const norm = c.inputNorms[m.name]!;
            const w = await c.weight(m.name);
            const v = await uploadedBuffer(ctx, norm.sumSq, 'owl norms');
            const src: ScoreSource = { w: w.t, normSq: v, ...(w.scale ? { scale: w.scale } : {}) };
            sources.push({ src, normScale: 1 / norm.rows, release: () => ctx.pool.release(v.buffer) });
          }
          for (const s of sources) {
            const r = await scoreStats(ctx, { ...s.src, normScale: s.normScale });
            sum += r.sum;
            total += r.numel;
          }
          const above = st.owlM * (sum / total);
          let count = 0;
          for (const s of sources) count += (await scoreStats(ctx, { ...s.src, normScale: s.normScale, above })).count;
          lod[String(c.layer)] = lodPercent(count, total);
        } finally {
          for (const s of sources) s.release();
        }
        progress('OWL outlier scores', c.layer + 1);
      },
    });
    const keys = Object.keys(lod);
    const r = owlRatios(keys.map((k) => lod[k]!), su, st.owlLambda);
    owl = { m: st.owlM, lambda: st.owlLambda, lod, ratios: Object.fromEntries(keys.map((k, i) => [k, r[i]!])) };
    await input.progressStore?.saveOwl(owl);
  }

  const masks = new Map<string, Uint32Array>();
  const unrouted: string[] = [];
  const layerMs: Record<string, number> = {};
  const zerosBy = new Map<number, Map<MatrixKind, number>>();
  const ratioOf = new Map<number, number>();
  const unroutedBy = new Map<number, string[]>();
  for (const l of saved?.layers ?? []) {
    for (const [n, b] of l.masks) masks.set(n, b);
    zerosBy.set(l.layer, new Map(Object.entries(l.zeros) as Array<[MatrixKind, number]>));
    if (l.ratio !== null) ratioOf.set(l.layer, l.ratio);
    unrouted.push(...l.unrouted);
    layerMs[String(l.layer)] = l.ms;
  }
  const prune: LayerPruner = async (c) => {
    const t0 = performance.now();
    throwIfAborted(opts.signal);
    const mats = layerMatrices(cat, c, kinds);
    if (!mats.length) return;
    const ratio = Math.min(1, owl?.ratios[String(c.layer)] ?? su);
    ratioOf.set(c.layer, ratio);
    const blk = `model.layers.${c.layer}.${engine.arch.names.moeBlock}`;
    const noTokens = calibrated ? [...new Set(mats.filter((m) => m.expert !== undefined && !c.tokensPerExpert[m.expert]).map((m) => m.expert!))] : [];
    unroutedBy.set(c.layer, noTokens.map((ex) => `${blk}.experts.${ex}`));
    unrouted.push(...unroutedBy.get(c.layer)!);
    // Dense statistics first: no mask of this layer may be set yet when they are gathered.
    const allTokens = st.unrouted === 'all-tokens' && noTokens.length ? await c.allTokenNorms(noTokens) : new Map<number, { gateUp: InputNorm; down: InputNorm }>();
    const zeros = new Map<MatrixKind, number>();
    for (const m of mats) {
      throwIfAborted(opts.signal);
      let norm: NormChoice;
      if (!calibrated) norm = null;
      else if (m.expert !== undefined && noTokens.includes(m.expert)) {
        if (st.unrouted === 'dense') norm = 'dense';
        else if (st.unrouted === 'magnitude') norm = null;
        else {
          const a = allTokens.get(m.expert)!;
          norm = m.part === 2 ? a.down : a.gateUp;
        }
      } else {
        const n = c.inputNorms[m.name];
        if (!n) throw new MoePruneError('InvalidPlan', `no calibration statistics for "${m.name}" in layer ${c.layer}`);
        // A NaN or ±Inf input norm comes from a weight upstream that holds them: name it instead of ranking NaN scores.
        if (!n.sumSq.every(Number.isFinite))
          throw nonFiniteError(engine.weights instanceof CheckpointTensors ? await engine.weights.nonFiniteTensors(opts.signal) : [], `the calibration statistics of "${m.name}"`);
        norm = n;
      }
      if (norm === 'dense') continue;
      const w = await c.weight(m.name);
      const [rows, cols] = w.t.shape as [number, number];
      const nv = norm ? await uploadedBuffer(ctx, norm.sumSq, 'wanda norms') : null;
      let maskView: BufferView | undefined;
      try {
        const src: ScoreSource = { w: w.t, ...(w.scale ? { scale: w.scale } : {}), ...(nv ? { normSq: nv } : {}) };
        const words = Math.ceil((rows * cols) / 32);
        let bits: Uint32Array;
        if (!st.nm && st.method === 'magnitude' && m.kind === 'router' && c.removed.size) {
          // One threshold over the matrix must rank only the rows that stay: the router on the GPU still holds the
          // removed experts' rows (they get −∞ logits), so those rows are left out of the selection.
          bits = await keptRowsMatrixMask(ctx, w.t, [...Array(rows).keys()].filter((r) => !c.removed.has(r)), ratio);
        } else {
          maskView = st.nm
            ? await nmMask(ctx, { ...src, n: st.nm.n, m: st.nm.m })
            : st.method === 'magnitude'
              ? await matrixMask(ctx, { ...src, prune: Math.floor(rows * cols * ratio) })
              : await rowMask(ctx, { ...src, prunePerRow: Math.floor(cols * ratio) });
          bits = new Uint32Array((await readBuffer(ctx, maskView.buffer, words * 4)).slice().buffer, 0, words);
        }
        masks.set(m.name, bits);
        // The router keeps all original rows on the GPU; only the rows of kept experts reach the export.
        let kept = 0;
        let elems = 0;
        if (m.kind === 'router') {
          for (let r = 0; r < rows; r++) if (!c.removed.has(r)) ((kept += popcount(bits, r * cols, (r + 1) * cols)), (elems += cols));
        } else ((kept = popcount(bits, 0, rows * cols)), (elems = rows * cols));
        zeros.set(m.kind, (zeros.get(m.kind) ?? 0) + elems - kept);
      } finally {
        if (nv) ctx.pool.release(nv.buffer);
        if (maskView) ctx.pool.release(maskView.buffer);
      }
    }
    zerosBy.set(c.layer, zeros);
    layerMs[String(c.layer)] = performance.now() - t0;
    progress(`${st.method} masks`, c.layer + 1, `layer ${c.layer}: ${mats.length} maps at ${(100 * ratio).toFixed(1)}%`);
  };
  const store = input.progressStore;
  const done = saved?.layers.length ? Math.max(...saved.layers.map((l) => l.layer)) + 1 : 0;
  await engine.forward(windows, {
    output: 'none',
    plan: { ...input.expertEdits, mask: (name) => masks.get(name) },
    sequential: prune,
    onProgress: engineProgress(`${st.method} masks`),
    ...(opts.signal ? { signal: opts.signal } : {}),
    ...(saved?.hidden && done > 0 ? { resume: { fromLayer: done, hidden: saved.hidden } } : {}),
    ...(store && {
      afterLayer: async (layer: number, hidden: () => Promise<Float32Array>) => {
        const prefix = `model.layers.${layer}.`;
        await store.saveLayer(
          {
            layer,
            masks: new Map([...masks].filter(([n]) => n.startsWith(prefix))),
            zeros: Object.fromEntries(zerosBy.get(layer) ?? []),
            ratio: ratioOf.get(layer) ?? null,
            unrouted: unroutedBy.get(layer) ?? [],
            ms: layerMs[String(layer)] ?? 0,
          },
          await hidden(),
        );
      },
    }),
  });

  // Achieved sparsity from the masks and the plan, per layer, per kind and overall.
  const byKind: Partial<Record<MatrixKind, SparsityCount & { achieved: number }>> = {};
  const byLayer: SparsityReport['byLayer'] = {};
  let zeros = 0;
  for (const [layer, kindsIn] of [...counts.entries()].sort((a, b) => a[0] - b[0])) {
    let lp = 0;
    let lr = 0;
    let lz = 0;
    for (const [kind, c] of kindsIn) {
      const z = zerosBy.get(layer)?.get(kind) ?? 0;
      const k = byKind[kind] ?? { params: 0, removed: 0, zeros: 0, achieved: 0 };
      byKind[kind] = { params: k.params + c.params, removed: k.removed + c.removed, zeros: k.zeros + z, achieved: 0 };
      lp += c.params;
      lr += c.removed;
      lz += z;
    }
    zeros += lz;
    byLayer[String(layer)] = { target: ratioOf.get(layer) ?? 0, unstructured: lp > lr ? lz / (lp - lr) : 0, achieved: lp ? (lr + lz) / lp : 0 };
  }
  for (const k of Object.values(byKind)) k.achieved = k.params ? (k.removed + k.zeros) / k.params : 0;
  return {
    masks,
    sparsity: {
      target: st.sparsity, achieved: (removed + zeros) / before, expert: expertShare, unstructured: su, scope: st.scope, method: st.method,
      nm: formatNm(st.nm), counts: { params: before, removed, zeros }, byLayer, byKind,
    },
    owl,
    unrouted: { policy: st.unrouted, experts: unrouted },
    layerMs,
  };
}
