/**
 * The streaming WebGPU forward engine: layer after layer over ALL calibration/evaluation tokens, holding one
 * decoder layer's weights on the GPU at a time (uploaded in their stored dtype, released after the layer).
 * Hidden states [windows·L, hidden] stay on the GPU in chunks of whole windows, or spill to the CPU between
 * layers when they exceed a budget. The lm_head runs in token (and, for large heads, row) chunks into logits
 * or per-position NLL. Statistics for pruning are collected in the same pass (see stats.ts).
 */
import { MoePruneError, throwIfAborted } from '../core/errors.ts';
import type { LongTask } from '../core/progress.ts';
import { readJson, requireFile, type FileSet } from '../formats/bytes.ts';
import type { GpuContext } from '../gpu/device.ts';
import type { BufferView } from '../gpu/dispatch.ts';
import { addInto, siluMul } from '../gpu/kernels/elementwise.ts';
import { embed } from '../gpu/kernels/embed.ts';
import { outputBuffer, uploadedBuffer, zeroedBuffer } from '../gpu/kernels/kernel-args.ts';
import { matmul, type BlockScale } from '../gpu/kernels/matmul.ts';
import { colSumSq } from '../gpu/kernels/stats.ts';
import { colSum, expertGram, rowSqDiff } from '../gpu/kernels/expert-signals.ts';
import { nll as nllKernel, NO_TARGET } from '../gpu/kernels/nll.ts';
import { readBuffer } from '../gpu/pool.ts';
import { releaseTensor, uploadTensor, type GpuTensor } from '../gpu/tensor.ts';
import type { NllForward } from '../eval/perplexity.ts';
import { moeSpecAt, readArchConfig, type ArchConfig } from '../models/arch.ts';
import { checkWindows, type LayerRouting } from './reference/forward.ts';
import { ropeTables } from './reference/rope.ts';
import {
  attentionBlock, countCoactivation, expertActivationNorms, expertSource, expertWeights, moeBlock, normRows, routerWeight, Scratch, swiglu,
  type ChunkRouting, type LayerEnv, type ReconstructionProbe,
} from './blocks.ts';
import { LayerWeights } from './layer-weights.ts';
import { ExpertSaliencyAccumulator, ReconstructionSums, type ExpertProbe, type ExpertSaliency, type LayerReconstruction } from './expert-signals.ts';
import type { WeightPlan } from './plan.ts';
import { InputNormAccumulators, LogitMoments, type CalibrationStats, type InputNorm, type MoeLayerStats } from './stats.ts';
import { CheckpointTensors, elemBytes, storedBytes, storedToF32, widenBlockFp8, type GpuWeightSource, type StoredTensor } from './weights.ts';

const MiB = 2 ** 20;

export interface EngineBudgets {
  /** Scratch activations of one chunk (sets the chunk size). Default 256 MiB. */
  readonly activationBytes?: number;
  /** Hidden states of all tokens kept on the GPU; above it they spill to the CPU between layers. Default 1 GiB. */
  readonly hiddenBytes?: number;
  /** An lm_head up to this size is uploaded once; a larger one in row ranges per token chunk. Default 1 GiB. */
  readonly headBytes?: number;
}

export interface GpuForwardOptions extends LongTask {
  /** 'logits' [N, vocab], 'nll' [windows·(L−1)], 'both', or 'none' (calibration only: no lm_head). Default 'logits'. */
  readonly output?: 'logits' | 'nll' | 'both' | 'none';
  /** Pruning plan applied on the fly (removed/merged experts, per-tensor masks). */
  readonly plan?: WeightPlan;
  /** Collect calibration statistics (router summary, counts, co-activation, input norms). */
  readonly stats?: boolean;
  /** Return per-layer routing (ids, weights, raw logits) like the reference pass. */
  readonly routing?: boolean;
  /** Hidden states entering and leaving each decoder layer ([N, hidden], read back; do not keep references). */
  readonly layerHidden?: (layer: number, input: Float32Array, output: Float32Array) => void;
  /**
   * Sequential pruning (Wanda's order): each decoder layer first runs dense over all chunks to gather its input
   * statistics (inputs = outputs of the layers before it, as already pruned), then `sequential` sets the layer's
   * masks (through the plan's `mask` lookup), then the layer runs again with them to give the next layer's input.
   */
  readonly sequential?: LayerPruner;
  /**
   * Start at `fromLayer` with these hidden states entering it ([windows·L, hidden], as `afterLayer` gave them) instead
   * of embedding the tokens: a long job resumes after the last layer it finished.
   */
  readonly resume?: { readonly fromLayer: number; readonly hidden: Float32Array };
  /** Called after each decoder layer; `hidden()` reads the states leaving it (to save a resumable job's progress). */
  readonly afterLayer?: (layer: number, hidden: () => Promise<Float32Array>) => Promise<void>;
  /**
   * With `sequential`: the dense statistics pass also measures every routed expert's output norm per routed token and
   * its router weight (the expert-choice criteria REAP, EAN, frequency); the pruner reads the sums as `saliency`.
   */
  readonly expertSaliency?: boolean;
  /**
   * Reconstruction error of the plan per MoE layer (`reconstruction` of the result): in the output pass the MoE block
   * also runs unpruned (no removed or merged experts, no masks) on the same input, and Σ‖y − ŷ‖², Σ‖y‖² are summed.
   * The input is what the plan's own earlier layers produce, so each layer's error is its own.
   */
  readonly reconstruction?: boolean;
  /** Windows per chunk (default: from the activation budget and the binding limit). */
  readonly chunkWindows?: number;
  readonly budgets?: EngineBudgets;
  /** Split weights into parts of at most this many bytes (tests exercise multi-part tensors with it). */
  readonly maxBindingBytes?: number;
}

/** What a sequential pruner sees of one decoder layer between its dense statistics pass and its output pass. */
export interface LayerPruneContext {
  readonly layer: number;
  readonly moe: boolean;
  /** Σx² per input channel of every linear map the layer ran, over its tokens (a routed expert: its tokens). */
  readonly inputNorms: Readonly<Record<string, InputNorm>>;
  /** MoE layers: routed experts (the layer's count) and tokens routed to each in the dense pass; else 0 / empty. */
  readonly experts: number;
  readonly tokensPerExpert: Uint32Array;
  /** Experts the plan removed in this layer. */
  readonly removed: ReadonlySet<number>;
  /** Reference names [gate, up, down] of routed expert `ex` (per-expert names, or the fused rows' names). */
  expertNames(ex: number): readonly [string, string, string];
  /** A linear weight of the layer on the GPU exactly as the forward pass uses it (merged means included). */
  weight(name: string): Promise<{ readonly t: GpuTensor; readonly scale?: BlockScale }>;
  /**
   * Input statistics of experts as if every token entering the MoE block were routed to them: gate/up over the
   * block's input, down over each expert's own activation. Call before setting any mask of the layer (dense).
   */
  allTokenNorms(experts: readonly number[]): Promise<Map<number, { readonly gateUp: InputNorm; readonly down: InputNorm }>>;
  /** MoE layers with `expertSaliency`: per-expert output-norm sums of the dense pass. */
  readonly saliency?: ExpertSaliency;
  /**
   * MoE layers: every routed expert run on every token entering the layer (dense), with the router logits, the unpruned
   * block's Σ‖y‖², the Gram of the experts' output sums and, with `perToken`, each token's Gram of expert outputs.
   */
  expertProbe?(opts?: ExpertProbeOptions): Promise<ExpertProbe>;
}

export interface ExpertProbeOptions {
  /** Read back each token's Gram of expert outputs. */
  readonly perToken?: boolean;
  /**
   * Weights of each token in each expert's output sum, from a chunk's router logits [tokens, experts]: returns
   * [experts, tokens] (e.g. 1 where the family's router picks the expert, else 0: routed tokens only). Default all 1.
   */
  readonly rowWeights?: (logits: Float32Array, tokens: number) => Float32Array;
}

export type LayerPruner = (c: LayerPruneContext) => Promise<void>;

/** Memory and time of one decoder layer. */
export interface LayerReport {
  readonly layer: number;
  readonly moe: boolean;
  /** Weight bytes uploaded for the layer (stored dtype; experts without tokens are not uploaded). */
  readonly weightBytes: number;
  /** Highest bytes held by the GPU buffer pool during the layer (hidden states + weights + scratch). */
  readonly poolPeakBytes: number;
  readonly ms: number;
}

export interface GpuForwardResult {
  readonly windows: number;
  readonly tokens: number;
  readonly logits: Float32Array | null;
  readonly nll: Float64Array | null;
  readonly routing: LayerRouting[];
  readonly stats: CalibrationStats | null;
  readonly layers: LayerReport[];
  readonly peakLayerWeightBytes: number;
  readonly peakPoolBytes: number;
  readonly chunkWindows: number;
  readonly hiddenSpilled: boolean;
  /** With `reconstruction`: one entry per MoE layer, in layer order. */
  readonly reconstruction?: LayerReconstruction[];
}

/** Hidden states of a chunk of whole windows: on the GPU, or spilled to the CPU. */
interface Chunk {
  readonly w0: number;
  readonly windows: number;
  readonly tokens: number;
  gpu: BufferView | null;
  cpu: Float32Array | null;
}

/** Widest per-token activation (f32 elements) any block of this architecture allocates. */
export function widestActivation(arch: ArchConfig): number {
  const a = arch.attention;
  const w = [arch.hidden, arch.moe.router.experts, arch.moe.intermediate, arch.denseIntermediate, arch.moe.shared?.intermediate ?? 0];
  if (a.kind === 'mha') w.push(a.heads * a.headDim, a.kvHeads * a.headDim);
  else w.push(a.heads * (a.nopeDim + a.ropeDim), a.kvLoraRank + a.ropeDim, a.heads * (a.nopeDim + a.vDim), a.qLoraRank ?? 0);
  return Math.max(...w);
}

async function readF32(ctx: GpuContext, v: BufferView, elems: number): Promise<Float32Array> {
  const b = await readBuffer(ctx, v.buffer, elems * 4);
  return new Float32Array(b.buffer, b.byteOffset, elems);
}

export class GpuForwardEngine {
  private constructor(
    readonly ctx: GpuContext,
    readonly arch: ArchConfig,
    readonly weights: GpuWeightSource,
  ) {}

  /** A checkpoint folder: config.json through readArchConfig, tensors through CheckpointTensors. */
  static async open(ctx: GpuContext, files: FileSet, signal?: AbortSignal): Promise<GpuForwardEngine> {
    const config = await readJson(requireFile(files, 'config.json'), signal);
    const weights = await CheckpointTensors.open(files, signal);
    return new GpuForwardEngine(ctx, readArchConfig(config, 'config.json', weights.names()), weights);
  }

  static fromSource(ctx: GpuContext, arch: ArchConfig, weights: GpuWeightSource): GpuForwardEngine {
    return new GpuForwardEngine(ctx, arch, weights);
  }

  /** The engine as an NllForward for `perplexity()` (the plan, if any, applied on the fly). */
  nllForward(opts: Omit<GpuForwardOptions, 'output' | 'signal' | 'onProgress'> = {}): NllForward {
    return async (windows, o) => (await this.forward(windows, { ...opts, output: 'nll', ...(o.signal ? { signal: o.signal } : {}), ...(o.onProgress ? { onProgress: o.onProgress } : {}) })).nll!;
  }

  async forward(windows: ReadonlyArray<ArrayLike<number>>, opts: GpuForwardOptions = {}): Promise<GpuForwardResult> {
    const { ctx, arch } = this;
    const { windows: W, tokens: L } = checkWindows(windows, arch.vocab);
    const H = arch.hidden;
    const N = W * L;
    const budgets = { activationBytes: 256 * MiB, hiddenBytes: 1024 * MiB, headBytes: 1024 * MiB, ...opts.budgets };
    const binding = ctx.limits.maxStorageBufferBindingSize;
    const widest = widestActivation(arch);
    if (L * widest * 4 > binding)
      throw new MoePruneError('InvalidArgument', `a window of ${L} tokens needs ${L * widest * 4} bytes per activation, more than this GPU binds (${binding}); use a shorter sequence length`);
    const fit = Math.max(1, Math.floor(Math.min(binding / (widest * 4), budgets.activationBytes / (10 * widest * 4)) / L));
    const chunkWindows = Math.max(1, Math.min(W, opts.chunkWindows ?? fit));
    const spill = N * H * 4 > budgets.hiddenBytes;
    const chunks: Chunk[] = [];
    for (let w0 = 0; w0 < W; w0 += chunkWindows) {
      const n = Math.min(chunkWindows, W - w0);
      chunks.push({ w0, windows: n, tokens: n * L, gpu: null, cpu: null });
    }
    const want = opts.output ?? 'logits';
    const signal = opts.signal;
    const total = arch.layers + 2;
    const progress = (done: number, detail: string) => opts.onProgress?.({ phase: 'GPU forward', done, total, unit: 'layers', detail });

    const tables = ropeTables(arch.rope, L);
    const cos = await uploadedBuffer(ctx, tables.cos, 'rope cos');
    const sin = await uploadedBuffer(ctx, tables.sin, 'rope sin').catch((e: unknown) => {
      ctx.pool.release(cos.buffer);
      throw e;
    });
    const routing: LayerRouting[] = [];
    const layers: LayerReport[] = [];
    const reconstruction: LayerReconstruction[] | undefined = opts.reconstruction ? [] : undefined;
    const stats: CalibrationStats | null = opts.stats
      ? { format: 'moe-prune-calibration-stats', version: 1, windows: W, seqLen: L, tokens: N, moeLayers: [], inputNorms: {} }
      : null;
    const toGpu = async (c: Chunk): Promise<BufferView> => {
      if (c.gpu) return c.gpu;
      c.gpu = await uploadedBuffer(ctx, c.cpu!, 'hidden states');
      c.cpu = null;
      return c.gpu;
    };
    const store = async (c: Chunk, out: BufferView): Promise<void> => {
      if (spill) {
        c.cpu = (await readF32(ctx, out, c.tokens * H)).slice();
        ctx.pool.release(out.buffer);
      } else c.gpu = out;
    };
    try {
      const resume = opts.resume;
      if (resume) {
        if (!Number.isInteger(resume.fromLayer) || resume.fromLayer < 0 || resume.fromLayer > arch.layers)
          throw new MoePruneError('InvalidArgument', `cannot resume at layer ${resume.fromLayer} of ${arch.layers}`);
        if (resume.hidden.length !== N * H) throw new MoePruneError('InvalidShape', `saved hidden states hold ${resume.hidden.length} values, the run needs ${N} × ${H}`);
        for (const c of chunks) await store(c, await uploadedBuffer(ctx, resume.hidden.subarray(c.w0 * L * H, (c.w0 * L + c.tokens) * H), 'hidden states'));
      } else {
        progress(0, 'embedding');
        for (const c of chunks) {
          throwIfAborted(signal);
          await store(c, await this.embedChunk(windows, c, L, signal));
        }
      }
      for (let layer = resume?.fromLayer ?? 0; layer < arch.layers; layer++) {
        throwIfAborted(signal);
        progress(layer + 1, `layer ${layer}`);
        const t0 = performance.now();
        ctx.pool.resetPeak();
        const report = await this.runLayer(layer, chunks, windows, L, { cos, sin }, opts, routing, stats, toGpu, store, reconstruction);
        layers.push({ ...report, ms: performance.now() - t0 });
        ctx.pool.trim();
        progress(layer + 1, `layer ${layer}: ${(report.weightBytes / MiB).toFixed(2)} MiB weights, pool peak ${(report.poolPeakBytes / MiB).toFixed(2)} MiB`);
        if (opts.afterLayer)
          await opts.afterLayer(layer, async () => {
            const all = new Float32Array(N * H);
            for (const c of chunks) all.set(c.gpu ? await readF32(ctx, c.gpu, c.tokens * H) : c.cpu!, c.w0 * L * H);
            return all;
          });
      }
      progress(arch.layers + 1, 'lm_head');
      const head = want === 'none' ? { logits: null, nll: null } : await this.head(chunks, windows, L, want, budgets, opts, toGpu);
      progress(total, 'done');
      return {
        windows: W, tokens: L, ...head, routing, stats, layers,
        peakLayerWeightBytes: Math.max(0, ...layers.map((l) => l.weightBytes)),
        peakPoolBytes: Math.max(0, ...layers.map((l) => l.poolPeakBytes)),
        chunkWindows, hiddenSpilled: spill,
        ...(reconstruction ? { reconstruction } : {}),
      };
    } finally {
      for (const c of chunks) if (c.gpu) ctx.pool.release(c.gpu.buffer);
      ctx.pool.release(cos.buffer);
      ctx.pool.release(sin.buffer);
    }
  }

  /** Embedding rows of a chunk's ids: only the distinct rows are read and uploaded (stored dtype). */
  private async embedChunk(windows: ReadonlyArray<ArrayLike<number>>, c: Chunk, L: number, signal?: AbortSignal): Promise<BufferView> {
    const { ctx, arch } = this;
    const ids = new Int32Array(c.tokens);
    for (let w = 0; w < c.windows; w++) for (let t = 0; t < L; t++) ids[w * L + t] = windows[c.w0 + w]![t]!;
    const uniq = [...new Set(ids)].sort((a, b) => a - b);
    const local = new Map(uniq.map((id, i) => [id, i]));
    const parts: Uint8Array[] = [];
    let dtype: StoredTensor['dtype'] = 'F32';
    for (let i = 0; i < uniq.length; ) {
      let j = i + 1;
      while (j < uniq.length && uniq[j] === uniq[j - 1]! + 1) j++;
      const st = await widenBlockFp8(await this.weights.rows(arch.names.embed, uniq[i]!, j - i, signal), signal);
      dtype = st.dtype;
      parts.push(await storedBytes(st, signal));
      i = j;
    }
    const table = new Uint8Array(parts.reduce((a, p) => a + p.byteLength, 0));
    let off = 0;
    for (const p of parts) {
      table.set(p, off);
      off += p.byteLength;
    }
    const t = await uploadTensor(ctx, table, dtype, [uniq.length, arch.hidden], { name: arch.names.embed, signal });
    const idBuf = await uploadedBuffer(ctx, Uint32Array.from(ids, (id) => local.get(id)!), 'token ids');
    try {
      const out = await outputBuffer(ctx, c.tokens * arch.hidden, 'hidden states');
      try {
        await embed(ctx, t, idBuf, c.tokens, out);
      } catch (e) {
        ctx.pool.release(out.buffer);
        throw e;
      }
      return out;
    } finally {
      releaseTensor(ctx, t);
      ctx.pool.release(idBuf.buffer);
    }
  }

  private async runLayer(
    layer: number, chunks: Chunk[], windows: ReadonlyArray<ArrayLike<number>>, L: number,
    rope: { cos: BufferView; sin: BufferView }, opts: GpuForwardOptions, routingOut: LayerRouting[], stats: CalibrationStats | null,
    toGpu: (c: Chunk) => Promise<BufferView>, store: (c: Chunk, out: BufferView) => Promise<void>,
    reconstructionOut?: LayerReconstruction[],
  ): Promise<Omit<LayerReport, 'ms'>> {
    const { ctx, arch } = this;
    const H = arch.hidden;
    const N = windows.length * L;
    const moe = arch.moeLayers.has(layer);
    const { experts: E, topK: k } = moeSpecAt(arch, layer).router;
    const edits = moe ? opts.plan?.experts?.(layer) : undefined;
    const w = new LayerWeights(ctx, this.weights, opts.plan, opts.signal, opts.maxBindingBytes);
    const norms = stats ? new InputNormAccumulators(ctx) : null;
    // The unpruned block shares the layer's weights unless the plan changes weights under their names (merged means, masks).
    const sums = moe && reconstructionOut ? new ReconstructionSums() : null;
    const refW = sums ? (edits?.merges?.length || opts.plan?.mask ? new LayerWeights(ctx, this.weights, undefined, opts.signal, opts.maxBindingBytes) : w) : null;
    const env: LayerEnv = {
      ctx, arch, layer, seqLen: L, rope, w, src: this.weights, norms, ...(opts.signal ? { signal: opts.signal } : {}),
      ...(sums && refW ? { reconstruction: { weights: refW, add: (rows: Float32Array) => sums.add(rows) } } : {}),
    };
    const wantRouting = moe && opts.routing;
    const route = wantRouting ? { experts: new Int32Array(N * k), weights: new Float32Array(N * k), logits: new Float32Array(N * E) } : null;
    const moments = moe && stats ? new LogitMoments(E) : null;
    const perExpert = new Uint32Array(moe ? E : 0);
    const co = moe && stats ? await zeroedBuffer(ctx, E * E, 'coactivation') : null;
    const hidIn = opts.layerHidden ? new Float32Array(N * H) : null;
    const hidOut = opts.layerHidden ? new Float32Array(N * H) : null;
    try {
      if (opts.sequential) await this.prunePass(env, chunks, moe, E, edits, opts.sequential, opts.expertSaliency === true, opts.maxBindingBytes);
      for (const c of chunks) {
        throwIfAborted(opts.signal);
        const x = await toGpu(c);
        const base = c.w0 * L;
        const onRouting = async (r: ChunkRouting): Promise<void> => {
          r.counts.forEach((n, e) => (perExpert[e]! += n));
          if (co) await countCoactivation(ctx, r.ids, c.tokens, k, E, co);
          if (!route && !moments) return;
          const logits = await readF32(ctx, r.logits, c.tokens * E);
          moments?.add(logits, c.tokens);
          if (route) {
            route.logits.set(logits, base * E);
            const ids = await readBuffer(ctx, r.ids.buffer, c.tokens * k * 4);
            route.experts.set(new Int32Array(ids.buffer, ids.byteOffset, c.tokens * k), base * k);
            route.weights.set(await readF32(ctx, r.weights, c.tokens * k), base * k);
          }
        };
        const out = await this.layerChunk(env, x, c.tokens, moe, edits, onRouting);
        if (hidIn) hidIn.set(await readF32(ctx, x, c.tokens * H), base * H);
        if (hidOut) hidOut.set(await readF32(ctx, out, c.tokens * H), base * H);
        ctx.pool.release(x.buffer);
        c.gpu = null;
        await store(c, out);
      }
      if (hidIn && hidOut) opts.layerHidden!(layer, hidIn, hidOut);
      if (sums) reconstructionOut!.push(sums.result(layer));
      if (route) routingOut.push({ layer, topK: k, ...route });
      if (stats && norms) await norms.read(stats.inputNorms);
      if (stats && moe) {
        const coCounts = new Uint32Array((await readBuffer(ctx, co!.buffer, E * E * 4)).buffer.slice(0));
        const removed = [...(edits?.removed ?? [])].sort((a, b) => a - b);
        const blk = `model.layers.${layer}.${arch.names.moeBlock}`;
        const unrouted: string[] = [];
        for (let e = 0; e < E; e++) if (!perExpert[e] && !edits?.removed?.has(e)) unrouted.push(`${blk}.experts.${e}`);
        for (let e = 0; e < E; e++) coCounts[e * E + e] = perExpert[e]!;
        const s: MoeLayerStats = { layer, experts: E, topK: k, tokens: N, routerLogits: moments!.summary(), tokensPerExpert: perExpert, coactivation: coCounts, unrouted, removed };
        stats.moeLayers.push(s);
      }
      return { layer, moe, weightBytes: w.bytes, poolPeakBytes: ctx.pool.stats().peakBytes };
    } finally {
      norms?.release();
      if (co) ctx.pool.release(co.buffer);
      await w.release();
      if (refW && refW !== w) await refW.release();
    }
  }

  /**
   * The dense statistics pass of one layer (outputs dropped, the chunks' inputs kept), then the pruner. Spilled
   * chunks are uploaded for the pass and stay on the CPU, so GPU memory stays one chunk of hidden states.
   */
  private async prunePass(env: LayerEnv, chunks: Chunk[], moe: boolean, E: number, edits: Parameters<typeof moeBlock>[4], prune: LayerPruner, saliency = false, maxBindingBytes?: number): Promise<void> {
    const { ctx, arch, layer } = env;
    const norms = new InputNormAccumulators(ctx);
    const counts = new Uint32Array(moe ? E : 0);
    const outputs = moe && saliency ? new ExpertSaliencyAccumulator(E) : null;
    try {
      // Statistics only: the reconstruction probe belongs to the output pass.
      const dense: LayerEnv = { ...env, norms, reconstruction: null, expertOutputs: outputs };
      for (const c of chunks) {
        throwIfAborted(env.signal);
        await this.withChunk(c, async (x) => {
          const out = await this.layerChunk(dense, x, c.tokens, moe, edits, async (r) => r.counts.forEach((n, e) => (counts[e]! += n)));
          ctx.pool.release(out.buffer);
        });
      }
      const inputNorms: Record<string, InputNorm> = {};
      await norms.read(inputNorms);
      const removed = edits?.removed ?? new Set<number>();
      const names = new Map<string, number>();
      const expertNames = (ex: number): readonly [string, string, string] => expertSource(env, ex).names;
      if (moe) for (let ex = 0; ex < E; ex++) for (const n of expertNames(ex)) names.set(n, ex);
      const blk = `model.layers.${layer}.${arch.names.moeBlock}`;
      await prune({
        layer, moe, inputNorms, experts: moe ? E : 0, tokensPerExpert: counts, removed, expertNames,
        weight: async (name) => {
          const ex = names.get(name);
          if (ex !== undefined) {
            const w = await expertWeights(env, ex, edits);
            const i = w.names.indexOf(name);
            const scale = w.scales[i];
            return { t: [w.gate, w.up, w.down][i]!, ...(scale ? { scale } : {}) };
          }
          const t = moe && name === `${blk}.gate.weight` ? await routerWeight(env, name, edits) : await env.w.tensor(name);
          const scale = await env.w.blockScale(name);
          return { t, ...(scale ? { scale } : {}) };
        },
        allTokenNorms: (experts) => this.allTokenNorms(env, chunks, edits, experts),
        ...(outputs ? { saliency: outputs } : {}),
        ...(moe ? { expertProbe: (o?: ExpertProbeOptions) => this.expertProbe(env, chunks, edits, E, o?.perToken === true, maxBindingBytes, o?.rowWeights) } : {}),
      });
    } finally {
      norms.release();
    }
  }

  /** Runs `f` on a chunk's hidden states on the GPU without changing where the chunk lives. */
  private async withChunk(c: Chunk, f: (x: BufferView) => Promise<void>): Promise<void> {
    if (c.gpu) return f(c.gpu);
    const x = await uploadedBuffer(this.ctx, c.cpu!, 'hidden states');
    try {
      await f(x);
    } finally {
      this.ctx.pool.release(x.buffer);
    }
  }

  private async allTokenNorms(env: LayerEnv, chunks: Chunk[], edits: Parameters<typeof moeBlock>[4], experts: readonly number[]): Promise<Map<number, { gateUp: InputNorm; down: InputNorm }>> {
    const { ctx, arch } = env;
    const out = new Map<number, { gateUp: InputNorm; down: InputNorm }>();
    if (!experts.length) return out;
    const H = arch.hidden;
    const I = moeSpecAt(arch, env.layer).intermediate;
    const plain: LayerEnv = { ...env, norms: null, reconstruction: null, expertOutputs: null };
    const s = new Scratch(ctx);
    try {
      const gateUp = await s.zeros(H, 'all-token norms');
      const down = new Map<number, BufferView>();
      for (const ex of experts) down.set(ex, await s.zeros(I, 'all-token norms'));
      let rows = 0;
      for (const c of chunks) {
        throwIfAborted(env.signal);
        await this.withChunk(c, async (x) => {
          const cs = new Scratch(ctx);
          try {
            const moeIn = await this.moeInput(plain, cs, x, c.tokens);
            await colSumSq(ctx, { x: moeIn, rows: c.tokens, cols: H, acc: gateUp });
            for (const ex of experts) await expertActivationNorms(plain, cs, moeIn, c.tokens, ex, edits, down.get(ex)!);
          } finally {
            cs.release();
          }
        });
        rows += c.tokens;
      }
      const gu = await readF32(ctx, gateUp, H);
      for (const ex of experts) out.set(ex, { gateUp: { rows, sumSq: gu.slice() }, down: { rows, sumSq: (await readF32(ctx, down.get(ex)!, I)).slice() } });
      return out;
    } finally {
      s.release();
    }
  }

  /**
   * Every expert on every token of the layer's input, a few tokens at a time so the stacked outputs [E, m, hidden] stay
   * within one binding: per token the Gram of the expert outputs (read back when `perToken`), and per expert the output
   * sum (on the GPU), whose Gram gives HC-SMoE's cosine similarities. Dense weights (no masks): the layer before pruning.
   */
  private async expertProbe(
    env: LayerEnv, chunks: Chunk[], edits: Parameters<typeof moeBlock>[4], E: number, perToken: boolean, maxBindingBytes?: number,
    rowWeights?: ExpertProbeOptions['rowWeights'],
  ): Promise<ExpertProbe> {
    const { ctx, arch, layer } = env;
    const H = arch.hidden;
    const N = chunks.reduce((a, c) => a + c.tokens, 0);
    const plain: LayerEnv = { ...env, norms: null, reconstruction: null, expertOutputs: null };
    const routerName = `model.layers.${layer}.${arch.names.moeBlock}.gate.weight`;
    const logits = new Float32Array(N * E);
    const gram = perToken ? new Float32Array(N * E * E) : null;
    let sumSqRef = 0;
    // Tokens per pass of the stacked outputs: one binding at most (tests shrink it through maxBindingBytes).
    const m = Math.max(1, Math.floor(Math.min(ctx.limits.maxStorageBufferBindingSize, maxBindingBytes ?? 64 * MiB) / (E * H * 4)));
    const s = new Scratch(ctx);
    try {
      const sums = await s.zeros(E * H, 'expert output sums');
      let base = 0;
      for (const c of chunks) {
        throwIfAborted(env.signal);
        await this.withChunk(c, async (x) => {
          const cs = new Scratch(ctx);
          try {
            const n = c.tokens;
            const moeIn = await this.moeInput(plain, cs, x, n);
            const rw = await routerWeight(plain, routerName, edits);
            const rs = await plain.w.blockScale(routerName);
            const lg = await cs.out(n * E, 'router logits');
            await matmul(ctx, { x: moeIn, w: rw, y: lg, tokens: n, ...(rs ? { scale: rs } : {}) });
            const chunkLogits = await readF32(ctx, lg, n * E);
            logits.set(chunkLogits, base * E);
            const rowW = rowWeights ? cs.own(await uploadedBuffer(ctx, rowWeights(chunkLogits.slice(), n), 'expert row weights')) : undefined;
            const y = await moeBlock(plain, cs, moeIn, n, edits, async () => {});
            const rows = await cs.out(2 * n, 'block output norms');
            await rowSqDiff(ctx, y, y, n, H, rows);
            const r = await readF32(ctx, rows, 2 * n);
            for (let j = 0; j < n; j++) sumSqRef += r[2 * j + 1]!;
            for (let t0 = 0; t0 < n; t0 += m) {
              const mm = Math.min(m, n - t0);
              const F = await cs.out(E * mm * H, 'expert outputs');
              for (let ex = 0; ex < E; ex++) {
                const w = await expertWeights(plain, ex, edits);
                const I = w.gate.shape[0]!;
                const [sg, su, sd] = w.scales;
                const g = await cs.out(mm * I, 'expert gate');
                const u = await cs.out(mm * I, 'expert up');
                await matmul(ctx, { x: moeIn, xOffset: t0 * H, w: w.gate, y: g, tokens: mm, ...(sg ? { scale: sg } : {}) });
                await matmul(ctx, { x: moeIn, xOffset: t0 * H, w: w.up, y: u, tokens: mm, ...(su ? { scale: su } : {}) });
                const act = await cs.out(mm * I, 'expert act');
                await siluMul(ctx, g, u, act, mm * I);
                cs.free(g);
                cs.free(u);
                await matmul(ctx, { x: act, w: w.down, y: F, yOffset: ex * mm * H, yStride: H, tokens: mm, ...(sd ? { scale: sd } : {}) });
                cs.free(act);
                await colSum(ctx, { f: F, rows: mm, cols: H, fOffset: ex * mm * H, acc: sums, accOffset: ex * H, ...(rowW ? { weights: { w: rowW, offset: ex * n + t0 } } : {}) });
              }
              if (gram) {
                const G = await cs.out(mm * E * E, 'expert output Gram');
                await expertGram(ctx, F, E, mm, H, G);
                gram.set(await readF32(ctx, G, mm * E * E), (base + t0) * E * E);
                cs.free(G);
              }
              cs.free(F);
            }
          } finally {
            cs.release();
          }
        });
        base += c.tokens;
      }
      const og = await s.out(E * E, 'output-sum Gram');
      await expertGram(ctx, sums, E, 1, H, og);
      return { layer, tokens: N, experts: E, logits, gram, sumSqRef, outputGram: (await readF32(ctx, og, E * E)).slice() };
    } finally {
      s.release();
    }
  }

  /** Attention and the post-attention norm of a MoE layer: the MoE block's input [n, hidden] (scratch), and the residual stream. */
  private async moeInput(e: LayerEnv, s: Scratch, x: BufferView, n: number): Promise<BufferView> {
    return (await this.attentionPart(e, s, x, n, true)).moeIn!;
  }

  private async attentionPart(e: LayerEnv, s: Scratch, x: BufferView, n: number, moe: boolean): Promise<{ afterAttn: BufferView; moeIn: BufferView | null }> {
    const { ctx, arch, layer } = e;
    const H = arch.hidden;
    const p = `model.layers.${layer}`;
    const h1 = await normRows(e, s, `${p}.input_layernorm`, x, n, H, arch.norm, arch.normEps);
    const afterAttn = await attentionBlock(e, s, h1, n);
    s.free(h1);
    await addInto(ctx, afterAttn, x, n * H);
    if (!moe) return { afterAttn, moeIn: null };
    // Arctic's parallel residual: the MoE reads the layer INPUT, a dense residual MLP the post-attention stream.
    const moeIn = await normRows(e, s, `${p}.post_attention_layernorm`, arch.parallelResidualMlp ? x : afterAttn, n, H, arch.norm, arch.normEps);
    return { afterAttn, moeIn };
  }

  /** One decoder layer on one chunk of whole windows; returns the new hidden states (caller owns them). */
  private async layerChunk(e: LayerEnv, x: BufferView, n: number, moe: boolean, edits: Parameters<typeof moeBlock>[4], onRouting: (r: ChunkRouting) => Promise<void>): Promise<BufferView> {
    const { ctx, arch, layer } = e;
    const H = arch.hidden;
    const p = `model.layers.${layer}`;
    const s = new Scratch(ctx);
    try {
      const { afterAttn, moeIn } = await this.attentionPart(e, s, x, n, moe);
      let out: BufferView;
      if (moeIn) {
        const parallel = arch.parallelResidualMlp;
        out = await moeBlock(e, s, moeIn, n, edits, onRouting);
        if (e.reconstruction) await this.reconstruct(e, e.reconstruction, s, moeIn, n, out);
        await addInto(ctx, out, afterAttn, n * H);
        if (parallel) {
          const rn = await normRows(e, s, `${p}.residual_layernorm`, afterAttn, n, H, arch.norm, arch.normEps);
          const rm = await swiglu(e, s, rn, n, [`${p}.residual_mlp.w1.weight`, `${p}.residual_mlp.w3.weight`, `${p}.residual_mlp.w2.weight`]);
          await addInto(ctx, out, rm, n * H);
        }
      } else {
        const h2 = await normRows(e, s, `${p}.post_attention_layernorm`, afterAttn, n, H, arch.norm, arch.normEps);
        const d = arch.names.denseMlp;
        out = await swiglu(e, s, h2, n, [`${p}.${d.prefix}.${d.proj[0]}.weight`, `${p}.${d.prefix}.${d.proj[1]}.weight`, `${p}.${d.prefix}.${d.proj[2]}.weight`]);
        await addInto(ctx, out, afterAttn, n * H);
      }
      return s.keep(out);
    } finally {
      s.release();
    }
  }

  /** The unpruned MoE block on the same input, and per token Σ(ŷ − y)², Σy² of the pruned output ŷ against it. */
  private async reconstruct(e: LayerEnv, probe: ReconstructionProbe, s: Scratch, moeIn: BufferView, n: number, pruned: BufferView): Promise<void> {
    const { ctx, arch } = e;
    const H = arch.hidden;
    const orig: LayerEnv = { ...e, w: probe.weights, norms: null, reconstruction: null, expertOutputs: null };
    const y = await moeBlock(orig, s, moeIn, n, undefined, async () => {});
    const rows = await s.out(2 * n, 'reconstruction sums');
    await rowSqDiff(ctx, pruned, y, n, H, rows);
    probe.add((await readF32(ctx, rows, 2 * n)).slice());
    s.free(y);
    s.free(rows);
  }

  /** Final norm and lm_head over every chunk: logits read back and/or NLL from the GPU kernel. */
  private async head(
    chunks: Chunk[], windows: ReadonlyArray<ArrayLike<number>>, L: number, want: 'logits' | 'nll' | 'both',
    budgets: Required<EngineBudgets>, opts: GpuForwardOptions, toGpu: (c: Chunk) => Promise<BufferView>,
  ): Promise<{ logits: Float32Array | null; nll: Float64Array | null }> {
    const { ctx, arch } = this;
    const H = arch.hidden;
    const V = arch.vocab;
    const W = windows.length;
    let headName = `${arch.names.lmHead}.weight`;
    if (!this.weights.has(headName)) {
      if (!arch.tieEmbeddings) throw new MoePruneError('MissingTensor', `the checkpoint has no "${headName}" and tie_word_embeddings is false`);
      headName = arch.names.embed;
    }
    const headShape = this.weights.shape(headName);
    if (!headShape || headShape[0] !== V || headShape[1] !== H)
      throw new MoePruneError('InvalidShape', `"${headName}" has shape ${JSON.stringify(headShape)}, expected [${V}, ${H}]`);
    const w = new LayerWeights(ctx, this.weights, opts.plan, opts.signal, opts.maxBindingBytes);
    const env: LayerEnv = { ctx, arch, layer: -1, seqLen: L, rope: { cos: null!, sin: null! }, w, src: this.weights, norms: null };
    const biasName = arch.lmHeadBias ? `${arch.names.lmHead}.bias` : undefined;
    let biasAll: Promise<Float32Array> | undefined;
    const biasValues = (name: string): Promise<Float32Array> =>
      (biasAll ??= (async () => storedToF32(await this.weights.rows(name, 0, undefined, opts.signal), opts.signal))());
    const probe = await this.weights.rows(headName, 0, 1, opts.signal);
    const whole = V * H * elemBytes(probe.dtype) <= budgets.headBytes;
    const rangeRows = whole ? V : Math.max(1, Math.floor(budgets.headBytes / (H * elemBytes(probe.dtype))));
    const logitsOut = want !== 'nll' ? new Float32Array(W * L * V) : null;
    const nllOut = want !== 'logits' ? new Float64Array(W * (L - 1)) : null;
    const sub = Math.max(1, Math.floor(Math.min(ctx.limits.maxStorageBufferBindingSize, budgets.activationBytes / 2) / (V * 4)));
    try {
      for (const c of chunks) {
        throwIfAborted(opts.signal);
        const x = await toGpu(c);
        const s = new Scratch(ctx);
        try {
          const xN = await normRows(env, s, arch.names.finalNorm, x, c.tokens, H, arch.norm, arch.normEps);
          for (let t0 = 0; t0 < c.tokens; t0 += sub) {
            const m = Math.min(sub, c.tokens - t0);
            const logits = await s.out(m * V, 'logits');
            for (let v0 = 0; v0 < V; v0 += rangeRows) {
              const r = Math.min(rangeRows, V - v0);
              const name = whole ? headName : `${headName}[${v0}:${v0 + r}]`;
              const Wt: GpuTensor = whole ? await w.tensor(headName) : await uploadTensor(ctx, (await this.weights.rows(headName, v0, r, opts.signal)).bytes, probe.dtype, [r, H], { name, signal: opts.signal });
              // A block-FP8 head: the whole scale grid in one binding, this range's rows found through rowOffset.
              const ps = probe.scale;
              const scale: BlockScale | undefined = whole
                ? await w.blockScale(headName)
                : ps && { view: await w.f32(`scale:${headName}`, () => ps.values), block: ps.block, rowOffset: v0 };
              const bias = biasName ? await w.f32(`${biasName}[${v0}]`, async () => (await biasValues(biasName)).slice(v0, v0 + r)) : undefined;
              try {
                await matmul(ctx, { x: xN, xOffset: t0 * H, w: Wt, y: logits, yOffset: v0, yStride: V, tokens: m, ...(bias ? { bias } : {}), ...(scale ? { scale } : {}) });
              } finally {
                if (!whole) releaseTensor(ctx, Wt);
              }
            }
            const first = c.w0 * L + t0;
            if (logitsOut) logitsOut.set(await readF32(ctx, logits, m * V), first * V);
            if (nllOut) {
              const targets = new Uint32Array(m);
              for (let j = 0; j < m; j++) {
                const pos = first + j;
                const t = pos % L;
                targets[j] = t + 1 < L ? windows[Math.floor(pos / L)]![t + 1]! : NO_TARGET;
              }
              const tb = s.own(await uploadedBuffer(ctx, targets, 'nll targets'));
              const out = s.own(await nllKernel(ctx, logits, tb, m, V));
              const vals = await readF32(ctx, out, m);
              for (let j = 0; j < m; j++) {
                const pos = first + j;
                const t = pos % L;
                if (t + 1 < L) nllOut[Math.floor(pos / L) * (L - 1) + t] = vals[j]!;
              }
            }
            s.free(logits);
          }
        } finally {
          s.release();
        }
        // Hidden states are not needed after the head: free the chunk now (a spilled run re-uploaded it).
        ctx.pool.release(x.buffer);
        c.gpu = null;
      }
    } finally {
      await w.release();
    }
    return { logits: logitsOut, nll: nllOut };
  }
}
