/**
 * The decoder-layer blocks of the GPU engine, on one chunk of whole windows: attention (MHA with GQA, q/k
 * norms, biases, sliding window; DeepSeek MLA), SwiGLU MLPs, and the routed MoE block (router on the GPU,
 * per-expert token lists, gathered matmuls, weighted scatter-add). Same math and tensor names as the CPU
 * reference (src/forward/reference), which the tests compare against.
 */
import { MoePruneError, throwIfAborted } from '../core/errors.ts';
import type { GpuContext } from '../gpu/device.ts';
import type { BufferView } from '../gpu/dispatch.ts';
import { attention } from '../gpu/kernels/attention.ts';
import { addInto, copyRows, sigmoidGateAdd, siluMul } from '../gpu/kernels/elementwise.ts';
import { buildExpertLists, readExpertOffsets, releaseExpertLists } from '../gpu/kernels/expert-lists.ts';
import { outputBuffer, zeroedBuffer } from '../gpu/kernels/kernel-args.ts';
import { matmul, type BlockScale } from '../gpu/kernels/matmul.ts';
import { norm } from '../gpu/kernels/norm.ts';
import { rope } from '../gpu/kernels/rope.ts';
import { router } from '../gpu/kernels/router.ts';
import { coactivation, colSumSq } from '../gpu/kernels/stats.ts';
import { scatterNorms } from '../gpu/kernels/expert-signals.ts';
import { readBuffer } from '../gpu/pool.ts';
import type { GpuTensor } from '../gpu/tensor.ts';
import { moeSpecAt, type ArchConfig, type MhaSpec, type MlaSpec, type NormKind } from '../models/arch.ts';
import type { LayerWeights } from './layer-weights.ts';
import type { ExpertEdits } from './plan.ts';
import type { InputNormAccumulators } from './stats.ts';
import { decodeToF32, encodeFromF32 } from '../formats/dtype.ts';
import { meanF32, meanInDtype } from '../formats/mean.ts';
import { f32ToStored, storedBytes, storedToF32, subTensor, type GpuWeightSource, type StoredTensor } from './weights.ts';

/** Buffers of one step; everything not `keep`-ed is returned to the pool by `release`. */
export class Scratch {
  private readonly bufs = new Set<GPUBuffer>();
  constructor(private readonly ctx: GpuContext) {}
  async out(elems: number, label: string): Promise<BufferView> {
    return this.own(await outputBuffer(this.ctx, elems, label));
  }
  async zeros(elems: number, label: string): Promise<BufferView> {
    return this.own(await zeroedBuffer(this.ctx, elems, label));
  }
  own(v: BufferView): BufferView {
    this.bufs.add(v.buffer);
    return v;
  }
  keep(v: BufferView): BufferView {
    this.bufs.delete(v.buffer);
    return v;
  }
  free(v: BufferView): void {
    if (this.bufs.delete(v.buffer)) this.ctx.pool.release(v.buffer);
  }
  release(): void {
    for (const b of this.bufs) this.ctx.pool.release(b);
    this.bufs.clear();
  }
}

/** What the blocks of one layer share. */
export interface LayerEnv {
  readonly ctx: GpuContext;
  readonly arch: ArchConfig;
  readonly layer: number;
  readonly seqLen: number;
  readonly rope: { readonly cos: BufferView; readonly sin: BufferView };
  readonly w: LayerWeights;
  readonly src: GpuWeightSource;
  readonly norms: InputNormAccumulators | null;
  readonly signal?: AbortSignal;
  /** Sees every routed expert's output norms per chunk (expert-choice criteria); absent: the plain scatter-add path. */
  readonly expertOutputs?: ExpertOutputObserver | null;
  /** The MoE block also runs unpruned on the same input and the squared differences are summed (engine.layerChunk). */
  readonly reconstruction?: ReconstructionProbe | null;
}

/**
 * Per chunk of a MoE layer, in the order of the expert lists (expert e owns entries offsets[e] .. offsets[e + 1]):
 * the router weight g of each (token, expert) entry — the weight the scatter-add applies, after the family's own
 * normalisation and scaling — and ‖f‖₂ of the expert's un-weighted output for that token.
 */
export interface ExpertOutputObserver {
  add(offsets: Uint32Array, weights: Float32Array, norms: Float32Array): void;
}

/** The unpruned MoE block's weights (or the layer's own when the plan changes no weight) and a sink of per-row sums. */
export interface ReconstructionProbe {
  readonly weights: LayerWeights;
  /** rows [n, 2]: Σ (pruned − original)², Σ original² per token of the chunk. */
  add(rows: Float32Array): void;
}

/** y = x·Wᵀ (+ bias) with the plan's mask, into a new scratch buffer [tokens, out]. */
export async function lin(e: LayerEnv, s: Scratch, x: BufferView, weight: string, tokens: number, bias?: string): Promise<BufferView> {
  const W = await e.w.tensor(weight);
  const y = await s.out(tokens * W.shape[0]!, weight);
  const b = bias ? await e.w.f32(bias) : undefined;
  const mask = await e.w.mask(weight);
  const scale = await e.w.blockScale(weight);
  await matmul(e.ctx, { x, w: W, y, tokens, ...(b ? { bias: b } : {}), ...(mask ? { mask } : {}), ...(scale ? { scale } : {}) });
  return y;
}

/** RMSNorm / LayerNorm of rows × dim with the weights under `prefix`. */
export async function normRows(e: LayerEnv, s: Scratch, prefix: string, x: BufferView, rows: number, dim: number, kind: NormKind, eps: number): Promise<BufferView> {
  const weight = await e.w.tensor(`${prefix}.weight`);
  const bias = kind === 'layer' && e.w.has(`${prefix}.bias`) ? await e.w.tensor(`${prefix}.bias`) : undefined;
  const out = await s.out(rows * dim, prefix);
  await norm(e.ctx, { kind, x, out, rows, dim, weight, ...(bias ? { bias } : {}), eps });
  return out;
}

async function observe(e: LayerEnv, names: readonly string[], x: BufferView, rows: number, cols: number, gather?: { ids: BufferView; offset: number }): Promise<void> {
  if (e.norms) await e.norms.add(names, x, rows, cols, gather);
}

/** Standard attention on normed x [n, hidden] → o_proj output [n, hidden] (scratch). */
async function mha(e: LayerEnv, s: Scratch, a: MhaSpec, x: BufferView, n: number): Promise<BufferView> {
  const { arch, ctx } = e;
  const p = `model.layers.${e.layer}.self_attn`;
  if (a.clipQkv !== null) throw new MoePruneError('UnsupportedFamily', `clip_qkv ${a.clipQkv} is not supported by the GPU engine (use --cpu)`, 'config.json');
  const { heads, kvHeads, headDim: hd } = a;
  await observe(e, [`${p}.q_proj.weight`, `${p}.k_proj.weight`, `${p}.v_proj.weight`], x, n, arch.hidden);
  let q = await lin(e, s, x, `${p}.q_proj.weight`, n, a.qkvBias ? `${p}.q_proj.bias` : undefined);
  let k = await lin(e, s, x, `${p}.k_proj.weight`, n, a.qkvBias ? `${p}.k_proj.bias` : undefined);
  const v = await lin(e, s, x, `${p}.v_proj.weight`, n, a.qkvBias ? `${p}.v_proj.bias` : undefined);
  if (a.qkNorm !== 'none') {
    const perHead = a.qkNorm === 'per-head';
    q = await normRows(e, s, `${p}.q_norm`, q, perHead ? n * heads : n, perHead ? hd : heads * hd, 'rms', arch.normEps);
    k = await normRows(e, s, `${p}.k_norm`, k, perHead ? n * kvHeads : n, perHead ? hd : kvHeads * hd, 'rms', arch.normEps);
  }
  const r = arch.rope;
  await rope(ctx, { x: q, tokens: n, heads, headStride: hd, rotaryDim: r.dim, interleaved: r.interleaved, ...e.rope, positions: e.seqLen });
  await rope(ctx, { x: k, tokens: n, heads: kvHeads, headStride: hd, rotaryDim: r.dim, interleaved: r.interleaved, ...e.rope, positions: e.seqLen });
  const att = await s.out(n * heads * hd, 'attention out');
  await attention(ctx, { q, k, v, out: att, tokens: n, seqLen: e.seqLen, heads, kvHeads, qkDim: hd, vDim: hd, scale: arch.attnScale, window: a.slidingWindow });
  for (const b of [q, k, v]) s.free(b);
  await observe(e, [`${p}.o_proj.weight`], att, n, heads * hd);
  return lin(e, s, att, `${p}.o_proj.weight`, n, a.oBias ? `${p}.o_proj.bias` : undefined);
}

/** DeepSeek MLA on normed x [n, hidden] → o_proj output [n, hidden]. */
async function mla(e: LayerEnv, s: Scratch, a: MlaSpec, x: BufferView, n: number): Promise<BufferView> {
  const { arch, ctx } = e;
  const p = `model.layers.${e.layer}.self_attn`;
  const { heads, nopeDim, ropeDim, vDim, kvLoraRank } = a;
  const qkDim = nopeDim + ropeDim;
  const kvaW = kvLoraRank + ropeDim;
  const qName = a.qLoraRank === null ? `${p}.q_proj.weight` : `${p}.q_a_proj.weight`;
  await observe(e, [qName, `${p}.kv_a_proj_with_mqa.weight`], x, n, arch.hidden);
  let q: BufferView;
  if (a.qLoraRank === null) q = await lin(e, s, x, qName, n);
  else {
    const qa = await lin(e, s, x, qName, n, a.bias ? `${p}.q_a_proj.bias` : undefined);
    const qaN = await normRows(e, s, `${p}.q_a_layernorm`, qa, n, a.qLoraRank, 'rms', a.loraNormEps);
    await observe(e, [`${p}.q_b_proj.weight`], qaN, n, a.qLoraRank);
    q = await lin(e, s, qaN, `${p}.q_b_proj.weight`, n);
  }
  // kv_a → per token [latent (kvLoraRank) | shared rotary key (ropeDim)].
  const kva = await lin(e, s, x, `${p}.kv_a_proj_with_mqa.weight`, n, a.bias ? `${p}.kv_a_proj_with_mqa.bias` : undefined);
  const latent = await s.out(n * kvLoraRank, 'mla latent');
  await copyRows(ctx, { outer: n, inner: 1, width: kvLoraRank, src: kva, srcStrides: [kvaW, 0], dst: latent, dstStrides: [kvLoraRank, 0] });
  const latentN = await normRows(e, s, `${p}.kv_a_layernorm`, latent, n, kvLoraRank, 'rms', a.loraNormEps);
  await observe(e, [`${p}.kv_b_proj.weight`], latentN, n, kvLoraRank);
  const kv = await lin(e, s, latentN, `${p}.kv_b_proj.weight`, n); // [n, heads, nope + v]
  const r = arch.rope;
  await rope(ctx, { x: q, tokens: n, heads, headStride: qkDim, rotaryDim: ropeDim, rotaryOffset: nopeDim, interleaved: r.interleaved, ...e.rope, positions: e.seqLen });
  await rope(ctx, { x: kva, tokens: n, heads: 1, headStride: kvaW, rotaryDim: ropeDim, rotaryOffset: kvLoraRank, interleaved: r.interleaved, ...e.rope, positions: e.seqLen });
  // Keys per head: [k_nope from kv_b | the shared rotary key, broadcast over heads].
  const k = await s.out(n * heads * qkDim, 'mla keys');
  await copyRows(ctx, { outer: n, inner: heads, width: nopeDim, src: kv, srcStrides: [heads * (nopeDim + vDim), nopeDim + vDim], dst: k, dstStrides: [heads * qkDim, qkDim] });
  await copyRows(ctx, { outer: n, inner: heads, width: ropeDim, src: { view: kva, offset: kvLoraRank }, srcStrides: [kvaW, 0], dst: { view: k, offset: nopeDim }, dstStrides: [heads * qkDim, qkDim] });
  const att = await s.out(n * heads * vDim, 'attention out');
  await attention(ctx, {
    q, k, v: kv, out: att, tokens: n, seqLen: e.seqLen, heads, kvHeads: heads, qkDim, vDim, scale: arch.attnScale,
    vLayout: { offset: nopeDim, tokenStride: heads * (nopeDim + vDim), headStride: nopeDim + vDim },
  });
  for (const b of [q, kva, latent, latentN, kv, k]) s.free(b);
  await observe(e, [`${p}.o_proj.weight`], att, n, heads * vDim);
  return lin(e, s, att, `${p}.o_proj.weight`, n, a.bias ? `${p}.o_proj.bias` : undefined);
}

export function attentionBlock(e: LayerEnv, s: Scratch, x: BufferView, n: number): Promise<BufferView> {
  const a = e.arch.attention;
  return a.kind === 'mha' ? mha(e, s, a, x, n) : mla(e, s, a, x, n);
}

/** down(silu(gate·x) ⊙ up·x) over n rows of x; names = [gate, up, down] weight names. */
export async function swiglu(e: LayerEnv, s: Scratch, x: BufferView, n: number, names: readonly [string, string, string]): Promise<BufferView> {
  await observe(e, [names[0], names[1]], x, n, e.arch.hidden);
  const g = await lin(e, s, x, names[0], n);
  const u = await lin(e, s, x, names[1], n);
  const inter = (await e.w.tensor(names[0])).shape[0]!;
  const act = await s.out(n * inter, 'swiglu act');
  await siluMul(e.ctx, g, u, act, n * inter);
  s.free(g);
  s.free(u);
  await observe(e, [names[2]], act, n, inter);
  const y = await lin(e, s, act, names[2], n);
  s.free(act);
  return y;
}

/** Routing of one chunk, handed to the engine before the buffers are released. */
export interface ChunkRouting {
  readonly logits: BufferView;
  readonly ids: BufferView;
  readonly weights: BufferView;
  /** Tokens per expert in this chunk. */
  readonly counts: Uint32Array;
}

export interface ExpertWeights {
  readonly gate: GpuTensor;
  readonly up: GpuTensor;
  readonly down: GpuTensor;
  readonly names: readonly [string, string, string];
  /** Block scales of [gate, up, down] when they are block-FP8. */
  readonly scales: ReadonlyArray<BlockScale | undefined>;
}

/** Names and stored tensors of expert e (per-expert tensors, or one row of the fused v5 layout). */
export function expertSource(e: LayerEnv, ex: number): { names: readonly [string, string, string]; load: () => Promise<[StoredTensor, StoredTensor, StoredTensor]> } {
  const { arch, src, signal } = e;
  const blk = `model.layers.${e.layer}.${arch.names.moeBlock}`;
  const I = arch.moe.intermediate;
  const H = arch.hidden;
  const fused = `${blk}.experts.gate_up_proj`;
  if (src.has(fused)) {
    const s = src.shape(fused);
    if (!s || s.length !== 3 || s[1] !== 2 * I || s[2] !== H)
      throw new MoePruneError('InvalidShape', `"${fused}" has shape ${JSON.stringify(s)}, expected [experts, ${2 * I}, ${H}]`);
    return {
      names: [`${fused}[${ex}].gate`, `${fused}[${ex}].up`, `${blk}.experts.down_proj[${ex}]`],
      load: async () => {
        const gu = await src.rows(fused, ex, 1, signal); // [1, 2I, H]: gate rows then up rows
        const d = await src.rows(`${blk}.experts.down_proj`, ex, 1, signal);
        return [subTensor(gu, 0, [I, H]), subTensor(gu, I * H, [I, H]), subTensor(d, 0, [H, I])];
      },
    };
  }
  const [g, u, d] = arch.names.expertProj;
  const names = [`${blk}.experts.${ex}.${g}.weight`, `${blk}.experts.${ex}.${u}.weight`, `${blk}.experts.${ex}.${d}.weight`] as const;
  return { names, load: async () => Promise.all(names.map((n) => src.rows(n, 0, undefined, signal))) as Promise<[StoredTensor, StoredTensor, StoredTensor]> };
}

/**
 * Element-wise mean of the members' tensors, exactly as the export writes it (formats/mean.ts). Block-FP8
 * members are averaged after dequantising and stay F32: requantising would need new block scales.
 */
async function meanOf(parts: StoredTensor[], name: string, signal?: AbortSignal): Promise<StoredTensor> {
  const { dtype, shape, scale } = parts[0]!;
  if (scale) return f32ToStored(meanF32(await Promise.all(parts.map((t) => storedToF32(t, signal))), name), dtype, shape);
  return { dtype, shape, bytes: meanInDtype(dtype, await Promise.all(parts.map((t) => storedBytes(t, signal))), name) };
}

export async function expertWeights(e: LayerEnv, ex: number, edits: ExpertEdits | undefined): Promise<ExpertWeights> {
  const me = expertSource(e, ex);
  const merge = edits?.merges?.find((m) => m.into === ex);
  let loaded: Promise<[StoredTensor, StoredTensor, StoredTensor]> | undefined;
  const all = (): Promise<[StoredTensor, StoredTensor, StoredTensor]> =>
    (loaded ??= merge
      ? (async () => {
          const members = await Promise.all(merge.members.map((m) => expertSource(e, m).load()));
          return Promise.all([0, 1, 2].map((i) => meanOf(members.map((t) => t[i]!), me.names[i]!, e.signal))) as Promise<[StoredTensor, StoredTensor, StoredTensor]>;
        })()
      : me.load());
  const [gate, up, down] = await Promise.all(me.names.map((n, i) => e.w.put(n, async () => (await all())[i]!)));
  const scales = await Promise.all(me.names.map((n) => e.w.blockScale(n)));
  return { gate: gate!, up: up!, down: down!, names: me.names, scales };
}

/** Router weight [E, hidden] with merged slots' rows replaced by their members' mean (as the export writes them). */
export async function routerWeight(e: LayerEnv, name: string, edits: ExpertEdits | undefined): Promise<GpuTensor> {
  if (!edits?.merges?.length) return e.w.tensor(name);
  return e.w.put(name, async () => {
    const st = await e.src.rows(name, 0, undefined, e.signal);
    const d = st.shape[1]!;
    const W = await storedToF32(st, e.signal);
    const out = W.slice();
    const row = (r: number) => W.subarray(r * d, (r + 1) * d);
    for (const m of edits.merges!) out.set(meanF32(m.members.map(row), name), m.into * d);
    return f32ToStored(out, st.dtype, st.shape);
  });
}

async function correctionBias(e: LayerEnv, name: string, edits: ExpertEdits | undefined): Promise<BufferView> {
  return e.w.f32(name, async () => {
    const st = await e.src.rows(name, 0, undefined, e.signal);
    const b = await storedToF32(st, e.signal);
    const orig = b.slice();
    // Rounded to the stored dtype, as the export writes it (real checkpoints store this bias as F32).
    const stored = (v: Float32Array): Float32Array => (st.scale ? v : decodeToF32(st.dtype, encodeFromF32(st.dtype, v, name), name));
    for (const m of edits?.merges ?? []) b[m.into] = stored(meanF32(m.members.map((mem) => orig.subarray(mem, mem + 1)), name))[0]!;
    return b;
  });
}

/**
 * The routed MoE block (plus shared experts) on normed x [n, hidden] → output [n, hidden] (scratch). Experts are
 * uploaded on first use in the layer; experts without tokens in any chunk are never uploaded.
 */
export async function moeBlock(
  e: LayerEnv, s: Scratch, x: BufferView, n: number, edits: ExpertEdits | undefined, onRouting: (r: ChunkRouting) => Promise<void>,
): Promise<BufferView> {
  const { arch, ctx } = e;
  const spec = moeSpecAt(arch, e.layer);
  const E = spec.router.experts;
  const k = spec.router.topK;
  const H = arch.hidden;
  const blk = `model.layers.${e.layer}.${arch.names.moeBlock}`;
  const routerName = `${blk}.gate.weight`;
  await observe(e, [routerName], x, n, H);
  const logits = await s.out(n * E, 'router logits');
  const rw = await routerWeight(e, routerName, edits);
  const rs = await e.w.blockScale(routerName);
  // The router is a linear map too: stage 2 with scope 'all' masks it (as the official Wanda code prunes `gate`).
  const rm = await e.w.mask(routerName);
  await matmul(ctx, { x, w: rw, y: logits, tokens: n, ...(rs ? { scale: rs } : {}), ...(rm ? { mask: rm } : {}) });
  const removed = edits?.removed?.size ? edits.removed : undefined;
  let removedBits: BufferView | undefined;
  if (removed) {
    const words = new Uint32Array(Math.ceil(E / 32));
    for (const r of removed) words[r >>> 5]! |= 1 << (r & 31);
    removedBits = await e.w.words('removed', words);
  }
  const bias = spec.router.correctionBias ? await correctionBias(e, `${blk}.gate.e_score_correction_bias`, edits) : undefined;
  const routed = await router(ctx, { logits, tokens: n, config: spec.router, ...(bias ? { correctionBias: bias } : {}), ...(removedBits ? { removed: removedBits } : {}) });
  s.own(routed.ids);
  s.own(routed.weights);
  const lists = await buildExpertLists(ctx, routed.ids, routed.weights, n, k, E);
  const out = await s.zeros(n * H, 'moe out');
  const norms = e.expertOutputs ? await s.out(n * k, 'expert output norms') : undefined;
  try {
    const offsets = await readExpertOffsets(ctx, lists, E);
    const counts = Uint32Array.from({ length: E }, (_, i) => offsets[i + 1]! - offsets[i]!);
    await onRouting({ logits, ids: routed.ids, weights: routed.weights, counts });
    const I = spec.intermediate;
    for (let ex = 0; ex < E; ex++) {
      const cnt = counts[ex]!;
      if (!cnt) continue;
      throwIfAborted(e.signal);
      const w = await expertWeights(e, ex, edits);
      const gather = { ids: lists.tokens, offset: offsets[ex]! };
      await observe(e, [w.names[0], w.names[1]], x, cnt, H, gather);
      const g = await s.out(cnt * I, 'expert gate');
      const u = await s.out(cnt * I, 'expert up');
      const [mg, mu, md] = await Promise.all(w.names.map((nm) => e.w.mask(nm)));
      const [sg, su, sd] = w.scales;
      await matmul(ctx, { x, w: w.gate, y: g, tokens: cnt, gather, ...(mg ? { mask: mg } : {}), ...(sg ? { scale: sg } : {}) });
      await matmul(ctx, { x, w: w.up, y: u, tokens: cnt, gather, ...(mu ? { mask: mu } : {}), ...(su ? { scale: su } : {}) });
      const act = await s.out(cnt * I, 'expert act');
      await siluMul(ctx, g, u, act, cnt * I);
      s.free(g);
      s.free(u);
      await observe(e, [w.names[2]], act, cnt, I);
      if (norms) {
        // The un-weighted output rows f(x) are needed for their norms: down into scratch, then norms + the same scatter-add.
        const f = await s.out(cnt * H, 'expert output');
        await matmul(ctx, { x: act, w: w.down, y: f, tokens: cnt, ...(md ? { mask: md } : {}), ...(sd ? { scale: sd } : {}) });
        await scatterNorms(ctx, { f, rows: cnt, cols: H, norms, normOffset: offsets[ex]!, scatter: { ids: lists.tokens, weights: lists.weights, offset: offsets[ex]!, out } });
        s.free(f);
      } else
        await matmul(ctx, {
          x: act, w: w.down, y: out, tokens: cnt,
          scatterAdd: { ids: lists.tokens, weights: lists.weights, offset: offsets[ex]! },
          ...(md ? { mask: md } : {}),
          ...(sd ? { scale: sd } : {}),
        });
      s.free(act);
    }
    if (norms && e.expertOutputs) {
      const entries = offsets[E]!;
      const nb = await readBuffer(ctx, norms.buffer, Math.max(1, entries) * 4);
      const wb = await readBuffer(ctx, lists.weights.buffer, Math.max(1, entries) * 4);
      e.expertOutputs.add(offsets, new Float32Array(wb.buffer, wb.byteOffset, entries).slice(), new Float32Array(nb.buffer, nb.byteOffset, entries).slice());
      s.free(norms);
    }
  } finally {
    releaseExpertLists(ctx, lists);
  }
  if (spec.shared && arch.names.sharedMlp) {
    const sp = `model.layers.${e.layer}.${arch.names.sharedMlp}`;
    const y = await swiglu(e, s, x, n, [`${sp}.gate_proj.weight`, `${sp}.up_proj.weight`, `${sp}.down_proj.weight`]);
    if (spec.shared.sigmoidGate) {
      const gName = `model.layers.${e.layer}.mlp.shared_expert_gate.weight`;
      await observe(e, [gName], x, n, H);
      const gate = await lin(e, s, x, gName, n);
      await sigmoidGateAdd(ctx, out, y, gate, n, H);
    } else await addInto(ctx, out, y, n * H);
  }
  return out;
}

/**
 * Σ over ALL n tokens of expert ex's activation² per channel (silu(x·gateᵀ)·(x·upᵀ)), added into acc (f32 [I]): the
 * down projection's input statistics of an expert that no calibration token reached (stage 2, policy all-tokens).
 * Runs dense (no masks): the pruner asks for it before it sets any mask of the layer.
 */
export async function expertActivationNorms(e: LayerEnv, s: Scratch, x: BufferView, n: number, ex: number, edits: ExpertEdits | undefined, acc: BufferView): Promise<void> {
  const w = await expertWeights(e, ex, edits);
  const I = w.gate.shape[0]!;
  const [sg, su] = w.scales;
  const g = await s.out(n * I, 'expert gate');
  const u = await s.out(n * I, 'expert up');
  await matmul(e.ctx, { x, w: w.gate, y: g, tokens: n, ...(sg ? { scale: sg } : {}) });
  await matmul(e.ctx, { x, w: w.up, y: u, tokens: n, ...(su ? { scale: su } : {}) });
  const act = await s.out(n * I, 'expert act');
  await siluMul(e.ctx, g, u, act, n * I);
  s.free(g);
  s.free(u);
  await colSumSq(e.ctx, { x: act, rows: n, cols: I, acc });
  s.free(act);
}

/** Coactivation counts of one chunk into `co` (u32 [E, E]). */
export async function countCoactivation(ctx: GpuContext, ids: BufferView, n: number, k: number, E: number, co: BufferView): Promise<void> {
  await coactivation(ctx, ids, n, k, E, co);
}
