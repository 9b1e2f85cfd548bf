/**
 * The CPU reference forward pass: plain TypeScript, f32 math, layer after layer over a batch of equal-length
 * token windows. It holds the hidden states of the whole batch [windows·tokens, hidden] and the weights of ONE
 * decoder layer at a time (read by tensor name through a WeightSource, then dropped). The WGSL engine is tested
 * against it; the pruning plan plugs in through `removedExperts` and by wrapping the WeightSource.
 */
import { MoePruneError, throwIfAborted } from '../../core/errors.ts';
import type { LongTask } from '../../core/progress.ts';
import { readJson, requireFile, type FileSet } from '../../formats/bytes.ts';
import { moeSpecAt, readArchConfig, type ArchConfig } from '../../models/arch.ts';
import { mhaForward, mlaForward, type Batch, type MhaWeights, type MlaWeights } from './attention.ts';
import { moeForward, swiglu, type LinearInputHook, type MlpWeights, type MoeLayerWeights, type MoeRouting } from './moe.ts';
import { addInto, layerNorm, linear, rmsNorm } from './ops.ts';
import { ropeTables } from './rope.ts';
import { CheckpointWeights, type WeightSource } from './weights.ts';

export interface ReferenceModel {
  readonly arch: ArchConfig;
  readonly weights: WeightSource;
}

/** Opens a checkpoint folder: config.json through the typed accessor, tensors through CheckpointWeights. */
export async function openReferenceModel(files: FileSet, signal?: AbortSignal): Promise<ReferenceModel> {
  const config = await readJson(requireFile(files, 'config.json'), signal);
  const weights = await CheckpointWeights.open(files, signal);
  return { arch: readArchConfig(config, 'config.json', weights.names()), weights };
}

export interface ForwardObserver {
  /** Input of every linear map (tensor name of its weight; for experts: only the tokens routed to it). */
  readonly linearInput?: LinearInputHook;
  /** Hidden states entering and leaving decoder layer `layer` ([windows·tokens, hidden]; do not keep references). */
  readonly layerHidden?: (layer: number, input: Float32Array, output: Float32Array) => void;
}

export interface ForwardOptions extends LongTask {
  /** Experts of a MoE layer that a pruning plan removes: never routed to, never loaded. */
  readonly removedExperts?: (layer: number) => ReadonlySet<number> | undefined;
  /** 'logits': all logits [windows·tokens, vocab]; 'nll': per-position next-token NLL only (default 'logits'). */
  readonly output?: 'logits' | 'nll' | 'both';
  readonly observer?: ForwardObserver;
  /** Rows of the lm_head read at a time (bounds memory for large vocabularies). */
  readonly lmHeadChunkRows?: number;
}

export interface LayerRouting extends MoeRouting {
  readonly layer: number;
}

export interface ForwardResult {
  readonly windows: number;
  readonly tokens: number;
  /** [windows·tokens, vocab] when output includes logits. */
  readonly logits: Float32Array | null;
  /** [windows·(tokens−1)]: −log p(token t+1 | tokens ≤ t), window-major, when output includes nll. */
  readonly nll: Float64Array | null;
  /** One entry per MoE layer, in layer order. */
  readonly routing: LayerRouting[];
  /** Largest number of weight bytes (f32) held at once for one decoder layer. */
  readonly peakLayerWeightBytes: number;
}

/** Reads tensors by name for one layer and counts the f32 bytes held. */
class LayerReader {
  bytes = 0;
  constructor(
    private readonly w: WeightSource,
    private readonly signal?: AbortSignal,
  ) {}
  async get(name: string): Promise<Float32Array> {
    const t = await this.w.read(name, this.signal);
    this.bytes += t.byteLength;
    return t;
  }
  async opt(name: string): Promise<Float32Array | undefined> {
    return this.w.has(name) ? this.get(name) : undefined;
  }
  async rows(name: string, start: number, count: number): Promise<Float32Array> {
    const t = await this.w.readRows(name, start, count, this.signal);
    this.bytes += t.byteLength;
    return t;
  }
}

/** Checks a batch of token windows (non-empty, equal lengths, ids in the vocabulary) and returns its size. */
export function checkWindows(windows: ReadonlyArray<ArrayLike<number>>, vocab: number): Batch {
  if (!windows.length) throw new MoePruneError('InvalidArgument', 'the forward pass needs at least one window');
  const T = windows[0]!.length;
  if (T < 1) throw new MoePruneError('InvalidArgument', 'windows must hold at least one token');
  for (const w of windows) {
    if (w.length !== T) throw new MoePruneError('InvalidArgument', `all windows must have the same length (${T}); one has ${w.length}`);
    for (let i = 0; i < w.length; i++)
      if (!Number.isInteger(w[i]) || w[i]! < 0 || w[i]! >= vocab)
        throw new MoePruneError('InvalidArgument', `token id ${w[i]} is outside the vocabulary (0..${vocab - 1})`);
  }
  return { windows: windows.length, tokens: T };
}

async function norm(r: LayerReader, arch: ArchConfig, prefix: string, x: Float32Array): Promise<Float32Array> {
  const w = await r.get(`${prefix}.weight`);
  if (arch.norm === 'rms') return rmsNorm(x, arch.hidden, w, arch.normEps);
  return layerNorm(x, arch.hidden, w, await r.opt(`${prefix}.bias`), arch.normEps);
}

async function mlpWeights(r: LayerReader, prefix: string, proj: readonly [string, string, string]): Promise<{ w: MlpWeights; names: [string, string, string] }> {
  const names: [string, string, string] = [`${prefix}.${proj[0]}.weight`, `${prefix}.${proj[1]}.weight`, `${prefix}.${proj[2]}.weight`];
  return { w: { gate: await r.get(names[0]), up: await r.get(names[1]), down: await r.get(names[2]) }, names };
}

async function attention(r: LayerReader, arch: ArchConfig, L: number, b: Batch, x: Float32Array, tables: ReturnType<typeof ropeTables>, hook?: LinearInputHook): Promise<Float32Array> {
  const p = `model.layers.${L}.self_attn`;
  const a = arch.attention;
  if (a.kind === 'mha') {
    const w: MhaWeights = {
      q: await r.get(`${p}.q_proj.weight`), k: await r.get(`${p}.k_proj.weight`), v: await r.get(`${p}.v_proj.weight`), o: await r.get(`${p}.o_proj.weight`),
      qBias: a.qkvBias ? await r.get(`${p}.q_proj.bias`) : undefined,
      kBias: a.qkvBias ? await r.get(`${p}.k_proj.bias`) : undefined,
      vBias: a.qkvBias ? await r.get(`${p}.v_proj.bias`) : undefined,
      oBias: a.oBias ? await r.get(`${p}.o_proj.bias`) : undefined,
      qNorm: a.qkNorm !== 'none' ? await r.get(`${p}.q_norm.weight`) : undefined,
      kNorm: a.qkNorm !== 'none' ? await r.get(`${p}.k_norm.weight`) : undefined,
    };
    return mhaForward(b, x, arch.hidden, a, w, arch.rope, tables, arch.attnScale, arch.normEps, hook, p);
  }
  const w: MlaWeights = {
    q: a.qLoraRank === null ? await r.get(`${p}.q_proj.weight`) : undefined,
    qA: a.qLoraRank !== null ? await r.get(`${p}.q_a_proj.weight`) : undefined,
    qANorm: a.qLoraRank !== null ? await r.get(`${p}.q_a_layernorm.weight`) : undefined,
    qB: a.qLoraRank !== null ? await r.get(`${p}.q_b_proj.weight`) : undefined,
    qABias: a.bias && a.qLoraRank !== null ? await r.get(`${p}.q_a_proj.bias`) : undefined,
    kvA: await r.get(`${p}.kv_a_proj_with_mqa.weight`),
    kvABias: a.bias ? await r.get(`${p}.kv_a_proj_with_mqa.bias`) : undefined,
    kvANorm: await r.get(`${p}.kv_a_layernorm.weight`),
    kvB: await r.get(`${p}.kv_b_proj.weight`),
    o: await r.get(`${p}.o_proj.weight`),
    oBias: a.bias ? await r.get(`${p}.o_proj.bias`) : undefined,
  };
  return mlaForward(b, x, arch.hidden, a, w, arch.rope, tables, arch.attnScale, hook, p);
}

/** Loads the routed experts of one MoE layer (per-expert or fused layout), skipping removed ones. */
async function moeWeights(r: LayerReader, m: ReferenceModel, L: number, removed: ReadonlySet<number> | undefined): Promise<MoeLayerWeights> {
  const { arch, weights } = m;
  const blk = `model.layers.${L}.${arch.names.moeBlock}`;
  const E = moeSpecAt(arch, L).router.experts;
  const I = arch.moe.intermediate;
  const H = arch.hidden;
  const [g, u, d] = arch.names.expertProj;
  const fusedGateUp = `${blk}.experts.gate_up_proj`;
  const fused = weights.has(fusedGateUp);
  const experts: Array<MlpWeights | undefined> = [];
  const names = (e: number): readonly [string, string, string] =>
    fused ? [`${fusedGateUp}[${e}].gate`, `${fusedGateUp}[${e}].up`, `${blk}.experts.down_proj[${e}]`] : [`${blk}.experts.${e}.${g}.weight`, `${blk}.experts.${e}.${u}.weight`, `${blk}.experts.${e}.${d}.weight`];
  if (fused) {
    const s = weights.shape(fusedGateUp);
    if (!s || s.length !== 3 || s[0] !== E || s[1] !== 2 * I || s[2] !== H)
      throw new MoePruneError('InvalidShape', `"${fusedGateUp}" has shape ${JSON.stringify(s)}, expected [${E}, ${2 * I}, ${H}]`);
  }
  for (let e = 0; e < E; e++) {
    if (removed?.has(e)) {
      experts.push(undefined);
      continue;
    }
    if (fused) {
      const gu = await r.rows(fusedGateUp, e, 1); // [2I, H]: gate rows then up rows (chunk(2) in transformers)
      experts.push({ gate: gu.subarray(0, I * H), up: gu.subarray(I * H), down: await r.rows(`${blk}.experts.down_proj`, e, 1) });
    } else {
      const n = names(e);
      experts.push({ gate: await r.get(n[0]), up: await r.get(n[1]), down: await r.get(n[2]) });
    }
  }
  const w: MoeLayerWeights = {
    router: await r.get(`${blk}.gate.weight`),
    correctionBias: arch.moe.router.correctionBias ? await r.get(`${blk}.gate.e_score_correction_bias`) : undefined,
    expert: (e) => experts[e],
    expertNames: names,
  };
  if (arch.moe.shared && arch.names.sharedMlp) {
    const s = await mlpWeights(r, `model.layers.${L}.${arch.names.sharedMlp}`, ['gate_proj', 'up_proj', 'down_proj']);
    w.shared = s.w;
    w.sharedNames = s.names;
    if (arch.moe.shared.sigmoidGate) w.sharedGate = await r.get(`model.layers.${L}.mlp.shared_expert_gate.weight`);
  }
  return w;
}

async function embed(m: ReferenceModel, windows: ReadonlyArray<ArrayLike<number>>, b: Batch, signal?: AbortSignal): Promise<Float32Array> {
  const H = m.arch.hidden;
  const x = new Float32Array(b.windows * b.tokens * H);
  const rows = new Map<number, Float32Array>();
  for (let w = 0; w < b.windows; w++)
    for (let t = 0; t < b.tokens; t++) {
      const id = windows[w]![t]!;
      let row = rows.get(id);
      if (!row) rows.set(id, (row = await m.weights.readRows(m.arch.names.embed, id, 1, signal)));
      x.set(row, (w * b.tokens + t) * H);
    }
  return x;
}

/** Runs the model over `windows` (equal-length token id arrays). */
export async function referenceForward(m: ReferenceModel, windows: ReadonlyArray<ArrayLike<number>>, opts: ForwardOptions = {}): Promise<ForwardResult> {
  const { arch } = m;
  const b = checkWindows(windows, arch.vocab);
  const N = b.windows * b.tokens;
  const H = arch.hidden;
  const hook = opts.observer?.linearInput;
  const tables = ropeTables(arch.rope, b.tokens);
  let x = await embed(m, windows, b, opts.signal);
  const routing: LayerRouting[] = [];
  let peak = 0;
  for (let L = 0; L < arch.layers; L++) {
    throwIfAborted(opts.signal);
    opts.onProgress?.({ phase: 'forward', done: L, total: arch.layers + 1, unit: 'layers', detail: `layer ${L}` });
    const r = new LayerReader(m.weights, opts.signal);
    const p = `model.layers.${L}`;
    const input = x;
    const h1 = await norm(r, arch, `${p}.input_layernorm`, input);
    const afterAttn = addInto(await attention(r, arch, L, b, h1, tables, hook), input);
    const isMoe = arch.moeLayers.has(L);
    let out: Float32Array;
    if (isMoe) {
      const removed = opts.removedExperts?.(L);
      const mw = await moeWeights(r, m, L, removed);
      // Arctic's parallel residual: the MoE reads the layer INPUT (post_attention_layernorm(input)), while a
      // dense residual MLP reads the post-attention stream; both are added to it.
      const parallel = arch.parallelResidualMlp;
      const moeIn = await norm(r, arch, `${p}.post_attention_layernorm`, parallel ? input : afterAttn);
      const res = moeForward(moeIn, N, H, moeSpecAt(arch, L), mw, removed, hook, `${p}.${arch.names.moeBlock}.gate.weight`);
      routing.push({ layer: L, ...res.routing });
      out = addInto(res.out, afterAttn);
      if (parallel) {
        const rn = await norm(r, arch, `${p}.residual_layernorm`, afterAttn);
        const rm = await mlpWeights(r, `${p}.residual_mlp`, ['w1', 'w3', 'w2']);
        addInto(out, swiglu(rn, N, H, H, rm.w, hook, rm.names));
      }
    } else {
      const h2 = await norm(r, arch, `${p}.post_attention_layernorm`, afterAttn);
      const dm = await mlpWeights(r, `${p}.${arch.names.denseMlp.prefix}`, arch.names.denseMlp.proj);
      const inter = m.weights.shape(dm.names[0])?.[0] ?? arch.denseIntermediate;
      out = addInto(swiglu(h2, N, H, inter, dm.w, hook, dm.names), afterAttn);
    }
    peak = Math.max(peak, r.bytes);
    opts.observer?.layerHidden?.(L, input, out);
    x = out;
  }
  const head = await finalHead(m, x, windows, b, opts);
  opts.onProgress?.({ phase: 'forward', done: arch.layers + 1, total: arch.layers + 1, unit: 'layers' });
  return { windows: b.windows, tokens: b.tokens, ...head, routing, peakLayerWeightBytes: peak };
}

/** Final norm and lm_head, streamed over row chunks of the head; NLL via an online log-sum-exp per position. */
async function finalHead(
  m: ReferenceModel, x: Float32Array, windows: ReadonlyArray<ArrayLike<number>>, b: Batch, opts: ForwardOptions,
): Promise<{ logits: Float32Array | null; nll: Float64Array | null }> {
  const { arch, weights } = m;
  const N = b.windows * b.tokens;
  const H = arch.hidden;
  const V = arch.vocab;
  const r = new LayerReader(weights, opts.signal);
  const hN = await norm(r, arch, arch.names.finalNorm, x);
  let headName = `${arch.names.lmHead}.weight`;
  if (!weights.has(headName)) {
    if (!arch.tieEmbeddings) throw new MoePruneError('MissingTensor', `the checkpoint has no "${headName}" and tie_word_embeddings is false`);
    headName = arch.names.embed;
  }
  const headBias = arch.lmHeadBias ? await weights.read(`${arch.names.lmHead}.bias`, opts.signal) : undefined;
  const want = opts.output ?? 'logits';
  const logits = want !== 'nll' ? new Float32Array(N * V) : null;
  const wantNll = want !== 'logits';
  // Online log-sum-exp state per position, and the logit of the next token.
  const runMax = new Float64Array(N).fill(-Infinity);
  const runSum = new Float64Array(N);
  const target = new Float64Array(N);
  const nextId = (pos: number): number => {
    const t = pos % b.tokens;
    return t + 1 < b.tokens ? windows[Math.floor(pos / b.tokens)]![t + 1]! : -1;
  };
  const chunk = Math.max(1, opts.lmHeadChunkRows ?? 8192);
  for (let v0 = 0; v0 < V; v0 += chunk) {
    throwIfAborted(opts.signal);
    const n = Math.min(chunk, V - v0);
    const W = await weights.readRows(headName, v0, n, opts.signal);
    const z = linear(hN, N, H, W, n, headBias?.subarray(v0, v0 + n));
    for (let t = 0; t < N; t++) {
      if (logits) logits.set(z.subarray(t * n, t * n + n), t * V + v0);
      if (!wantNll) continue;
      const id = nextId(t);
      if (id >= v0 && id < v0 + n) target[t] = z[t * n + id - v0]!;
      let m0 = runMax[t]!;
      for (let j = 0; j < n; j++) if (z[t * n + j]! > m0) m0 = z[t * n + j]!;
      let s = runSum[t]! * Math.exp(runMax[t]! - m0);
      for (let j = 0; j < n; j++) s += Math.exp(z[t * n + j]! - m0);
      runMax[t] = m0;
      runSum[t] = s;
    }
  }
  let nll: Float64Array | null = null;
  if (wantNll) {
    nll = new Float64Array(b.windows * (b.tokens - 1));
    let i = 0;
    for (let pos = 0; pos < N; pos++) if (pos % b.tokens + 1 < b.tokens) nll[i++] = runMax[pos]! + Math.log(runSum[pos]!) - target[pos]!;
  }
  return { logits, nll };
}
