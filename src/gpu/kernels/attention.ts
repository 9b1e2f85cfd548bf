import { MoePruneError } from '../../core/errors.ts';
import type { GpuContext } from '../device.ts';
import { grid2d, submitDispatches, uniformParams, workgroupSize, type BufferView } from '../dispatch.ts';
import { f32Bits, needElems, needInt } from './kernel-args.ts';
import code from '../../../shaders/attention.wgsl?raw';

/** Largest value head dim the kernel's per-invocation accumulator holds. */
export const ATTENTION_MAX_HDV = 256;

/** Where one operand lives: element offset, elements between tokens and between heads (defaults: dense). */
export interface AttnLayout {
  readonly offset?: number;
  readonly tokenStride?: number;
  readonly headStride?: number;
}

export interface AttentionArgs {
  readonly q: BufferView;
  readonly k: BufferView;
  readonly v: BufferView;
  /** f32 [tokens, heads, vDim] (or per `outLayout`). Must not share a buffer with q/k/v. */
  readonly out: BufferView;
  /** tokens = windows · seqLen (the last window may be shorter). */
  readonly tokens: number;
  readonly seqLen: number;
  readonly heads: number;
  readonly kvHeads: number;
  readonly qkDim: number;
  readonly vDim: number;
  readonly scale: number;
  /** Sliding window (keys with t − j ≥ window are masked); undefined/null = full causal. */
  readonly window?: number | null;
  readonly qLayout?: AttnLayout;
  readonly kLayout?: AttnLayout;
  readonly vLayout?: AttnLayout;
  readonly outLayout?: AttnLayout;
}

type Resolved = { off: number; ts: number; hs: number };

function resolve(l: AttnLayout | undefined, heads: number, dim: number): Resolved {
  const hs = l?.headStride ?? dim;
  return { off: l?.offset ?? 0, ts: l?.tokenStride ?? heads * hs, hs };
}

/** CPU reference (f64 softmax) with the same arguments; returns out as a dense [tokens, heads, vDim] array. */
export function attentionReference(q: Float32Array, k: Float32Array, v: Float32Array, a: Omit<AttentionArgs, 'q' | 'k' | 'v' | 'out' | 'outLayout'>): Float32Array {
  const Q = resolve(a.qLayout, a.heads, a.qkDim);
  const K = resolve(a.kLayout, a.kvHeads, a.qkDim);
  const V = resolve(a.vLayout, a.kvHeads, a.vDim);
  const out = new Float32Array(a.tokens * a.heads * a.vDim);
  const group = a.heads / a.kvHeads;
  for (let t = 0; t < a.tokens; t++)
    for (let h = 0; h < a.heads; h++) {
      const kh = Math.floor(h / group);
      let first = Math.floor(t / a.seqLen) * a.seqLen;
      if (a.window) first = Math.max(first, t + 1 - a.window);
      const scores: number[] = [];
      for (let j = first; j <= t; j++) {
        let s = 0;
        for (let d = 0; d < a.qkDim; d++) s += q[Q.off + t * Q.ts + h * Q.hs + d]! * k[K.off + j * K.ts + kh * K.hs + d]!;
        scores.push(s * a.scale);
      }
      const m = Math.max(...scores);
      const e = scores.map((s) => Math.exp(s - m));
      const sum = e.reduce((x, y) => x + y, 0);
      for (let d = 0; d < a.vDim; d++) {
        let acc = 0;
        for (let j = first; j <= t; j++) acc += e[j - first]! * v[V.off + j * V.ts + kh * V.hs + d]!;
        out[(t * a.heads + h) * a.vDim + d] = acc / sum;
      }
    }
  return out;
}

/** softmax(q·kᵀ·scale + causal mask)·v per window and head, GQA (heads a multiple of kvHeads). */
export async function attention(ctx: GpuContext, a: AttentionArgs): Promise<void> {
  const what = `attention [${a.tokens} tokens, ${a.heads}/${a.kvHeads} heads, ${a.qkDim}/${a.vDim}]`;
  for (const [val, n] of [[a.tokens, 'tokens'], [a.heads, 'heads'], [a.kvHeads, 'kvHeads'], [a.qkDim, 'qkDim'], [a.vDim, 'vDim'], [a.seqLen, 'seqLen']] as const)
    needInt(val, `${what}: ${n}`, n === 'tokens' ? 0 : 1);
  if (a.heads % a.kvHeads !== 0) throw new MoePruneError('InvalidArgument', `${what}: heads must be a multiple of kvHeads`);
  if (a.vDim > ATTENTION_MAX_HDV) throw new MoePruneError('InvalidArgument', `${what}: value head dim above ${ATTENTION_MAX_HDV} is not supported`);
  if ([a.q, a.k, a.v].some((b) => b.buffer === a.out.buffer)) throw new MoePruneError('InvalidArgument', `${what}: out must be its own buffer`);
  const window = a.window ?? 0;
  needInt(window, `${what}: window`);
  const Q = resolve(a.qLayout, a.heads, a.qkDim);
  const K = resolve(a.kLayout, a.kvHeads, a.qkDim);
  const V = resolve(a.vLayout, a.kvHeads, a.vDim);
  const O = resolve(a.outLayout, a.heads, a.vDim);
  if (a.tokens === 0) return;
  const last = (r: Resolved, heads: number, dim: number): number => r.off + (a.tokens - 1) * r.ts + (heads - 1) * r.hs + dim;
  needElems(a.q, last(Q, a.heads, a.qkDim), `${what}: q`);
  needElems(a.k, last(K, a.kvHeads, a.qkDim), `${what}: k`);
  needElems(a.v, last(V, a.kvHeads, a.vDim), `${what}: v`);
  needElems(a.out, last(O, a.heads, a.vDim), `${what}: out`);
  const wg = workgroupSize(ctx, 64);
  const pipeline = await ctx.pipelines.get({ name: 'attention', code, entryPoint: 'main', constants: { WG: wg } });
  const u = await uniformParams(ctx, [
    a.tokens, a.seqLen, a.heads, a.kvHeads, a.qkDim, a.vDim, f32Bits(a.scale), window,
    Q.off, Q.ts, Q.hs, K.off, K.ts, K.hs, V.off, V.ts, V.hs, O.off, O.ts, O.hs,
  ]);
  try {
    await submitDispatches(ctx, 'attention', [
      { pipeline, bindings: [a.q, a.k, a.v, a.out, u], workgroups: grid2d(ctx, Math.ceil((a.tokens * a.heads) / wg)) },
    ]);
  } finally {
    ctx.pool.release(u);
  }
}
