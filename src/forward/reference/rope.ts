/**
 * Rotary position embeddings as transformers 5.18 computes them (modeling_rope_utils.py), in f32 steps.
 * Supported rope types: default, linear, dynamic (NTK), yarn (DeepSeek-V3), longrope (Phi-3.5-MoE).
 * The config may hold the parameters as v5 `rope_parameters` or as v4 `rope_theta` + `rope_scaling`.
 */
import { MoePruneError } from '../../core/errors.ts';
import type { ConfigReader } from '../../models/arch.ts';

export type RopeType = 'default' | 'linear' | 'dynamic' | 'yarn' | 'longrope';

export interface RopeSpec {
  readonly type: RopeType;
  readonly theta: number;
  /** Rotated dimensions per head (head_dim, or qk_rope_head_dim for MLA). */
  readonly dim: number;
  /** Rotate pairs (x0,x1),(x2,x3)… (DeepSeek) instead of halves (x_i, x_{i+dim/2}). */
  readonly interleaved: boolean;
  readonly factor: number;
  readonly maxPositionEmbeddings: number;
  readonly originalMaxPositionEmbeddings: number;
  readonly attentionFactor: number | null;
  readonly mscale: number | null;
  readonly mscaleAllDim: number | null;
  readonly betaFast: number;
  readonly betaSlow: number;
  readonly truncate: boolean;
  readonly shortFactor: readonly number[] | null;
  readonly longFactor: readonly number[] | null;
  /** PhiMoE overrides longrope's attention factor with short_mscale / long_mscale. */
  readonly shortMscale: number | null;
  readonly longMscale: number | null;
}

const f = Math.fround;

function numOr(o: Record<string, unknown>, k: string, d: number | null): number | null {
  const v = o[k];
  return typeof v === 'number' && Number.isFinite(v) ? v : d;
}

function numList(o: Record<string, unknown>, k: string): number[] | null {
  const v = o[k];
  return Array.isArray(v) && v.every((x) => typeof x === 'number') ? (v as number[]) : null;
}

export function parseRope(c: ConfigReader, dim: number, interleaved: boolean): RopeSpec {
  const params: Record<string, unknown> = { ...(c.obj('rope_scaling') ?? {}), ...(c.obj('rope_parameters') ?? {}) };
  const theta = numOr(params, 'rope_theta', null) ?? c.num('rope_theta', 10000);
  const rawType = (params.rope_type ?? params.type ?? 'default') as unknown;
  if (typeof rawType !== 'string') throw new MoePruneError('InvalidConfig', 'rope type must be a string', c.file);
  const type = rawType === 'su' ? 'longrope' : rawType;
  if (!['default', 'linear', 'dynamic', 'yarn', 'longrope'].includes(type))
    throw new MoePruneError('UnsupportedFamily', `rope type "${type}" is not supported by the forward pass`, c.file);
  const maxPos = c.int('max_position_embeddings', 2048);
  const origMax = numOr(params, 'original_max_position_embeddings', null) ?? c.optInt('original_max_position_embeddings') ?? maxPos;
  let factor = numOr(params, 'factor', null);
  if (factor === null && (type === 'yarn' || type === 'longrope')) factor = maxPos / origMax;
  if (factor === null && (type === 'linear' || type === 'dynamic'))
    throw new MoePruneError('InvalidConfig', `rope type "${type}" needs a "factor"`, c.file);
  const spec: RopeSpec = {
    type: type as RopeType,
    theta,
    dim: Math.floor(dim * (numOr(params, 'partial_rotary_factor', 1) ?? 1)),
    interleaved,
    factor: factor ?? 1,
    maxPositionEmbeddings: maxPos,
    originalMaxPositionEmbeddings: origMax,
    attentionFactor: numOr(params, 'attention_factor', null),
    mscale: numOr(params, 'mscale', null),
    mscaleAllDim: numOr(params, 'mscale_all_dim', null),
    betaFast: numOr(params, 'beta_fast', null) || 32,
    betaSlow: numOr(params, 'beta_slow', null) || 1,
    truncate: params.truncate !== false,
    shortFactor: numList(params, 'short_factor'),
    longFactor: numList(params, 'long_factor'),
    shortMscale: numOr(params, 'short_mscale', null),
    longMscale: numOr(params, 'long_mscale', null),
  };
  if (spec.type === 'longrope' && (!spec.shortFactor || !spec.longFactor || spec.shortFactor.length !== spec.dim / 2 || spec.longFactor.length !== spec.dim / 2))
    throw new MoePruneError('InvalidConfig', `longrope needs short_factor and long_factor of ${spec.dim / 2} values`, c.file);
  return spec;
}

function yarnMscale(scale: number, m = 1): number {
  return scale <= 1 ? 1 : 0.1 * m * Math.log(scale) + 1;
}

/** Inverse frequencies (dim/2 of them, f32) and the cos/sin scale, for a batch whose longest window is seqLen. */
export function ropeFrequencies(r: RopeSpec, seqLen: number): { invFreq: Float32Array; scale: number } {
  const half = r.dim / 2;
  const invFreq = new Float32Array(half);
  const expo = (i: number) => f(f(2 * i) / r.dim);
  const base = (b: number) => {
    for (let i = 0; i < half; i++) invFreq[i] = f(1 / f(b ** expo(i)));
  };
  switch (r.type) {
    case 'default':
      base(r.theta);
      return { invFreq, scale: 1 };
    case 'linear':
      base(r.theta);
      for (let i = 0; i < half; i++) invFreq[i] = f(invFreq[i]! / r.factor);
      return { invFreq, scale: 1 };
    case 'dynamic': {
      // NTK: the base grows once the sequence is longer than max_position_embeddings.
      const L = Math.max(seqLen, r.maxPositionEmbeddings);
      base(r.theta * ((r.factor * L) / r.maxPositionEmbeddings - (r.factor - 1)) ** (r.dim / (r.dim - 2)));
      return { invFreq, scale: 1 };
    }
    case 'yarn': {
      let scale = r.attentionFactor;
      if (scale === null) scale = r.mscale && r.mscaleAllDim ? yarnMscale(r.factor, r.mscale) / yarnMscale(r.factor, r.mscaleAllDim) : yarnMscale(r.factor);
      const corr = (rot: number) => (r.dim * Math.log(r.originalMaxPositionEmbeddings / (rot * 2 * Math.PI))) / (2 * Math.log(r.theta));
      let low = corr(r.betaFast);
      let high = corr(r.betaSlow);
      if (r.truncate) {
        low = Math.floor(low);
        high = Math.ceil(high);
      }
      low = Math.max(low, 0);
      high = Math.min(high, r.dim - 1);
      if (low === high) high += 0.001;
      for (let i = 0; i < half; i++) {
        const pos = f(r.theta ** expo(i));
        const extra = f(1 / pos);
        const inter = f(1 / f(r.factor * pos));
        const ramp = f(Math.min(1, Math.max(0, f(f(i - low) / f(high - low)))));
        const extraFactor = f(1 - ramp);
        invFreq[i] = f(f(inter * f(1 - extraFactor)) + f(extra * extraFactor));
      }
      return { invFreq, scale };
    }
    case 'longrope': {
      const long = seqLen > r.originalMaxPositionEmbeddings;
      const ext = long ? r.longFactor! : r.shortFactor!;
      for (let i = 0; i < half; i++) invFreq[i] = f(1 / f(ext[i]! * f(r.theta ** expo(i))));
      let scale = r.attentionFactor ?? (r.factor <= 1 ? 1 : Math.sqrt(1 + Math.log(r.factor) / Math.log(r.originalMaxPositionEmbeddings)));
      const m = long ? r.longMscale : r.shortMscale;
      if (m !== null) scale = m;
      return { invFreq, scale };
    }
  }
}

/** cos/sin tables [seqLen, dim/2] (already multiplied by the rope's attention scale), as f32. */
export function ropeTables(r: RopeSpec, seqLen: number): { cos: Float32Array; sin: Float32Array } {
  const { invFreq, scale } = ropeFrequencies(r, seqLen);
  const half = r.dim / 2;
  const cos = new Float32Array(seqLen * half);
  const sin = new Float32Array(seqLen * half);
  for (let p = 0; p < seqLen; p++)
    for (let i = 0; i < half; i++) {
      const a = f(invFreq[i]! * p);
      cos[p * half + i] = f(Math.cos(a)) * scale;
      sin[p * half + i] = f(Math.sin(a)) * scale;
    }
  return { cos, sin };
}

/**
 * Rotates, in place, `dim` values starting at `offset` inside each head of x: [tokens, heads, stride], where
 * token t sits at position positions[t]. Halves layout: (x_i, x_{i+dim/2}); interleaved: (x_{2i}, x_{2i+1}).
 * The interleaved result stays interleaved: q and k are permuted alike, so their dot products are unchanged.
 */
export function applyRope(
  x: Float32Array,
  tokens: number,
  heads: number,
  stride: number,
  offset: number,
  r: RopeSpec,
  tables: { cos: Float32Array; sin: Float32Array },
  positions: ArrayLike<number>,
): void {
  const half = r.dim / 2;
  for (let t = 0; t < tokens; t++) {
    const pc = positions[t]! * half;
    for (let h = 0; h < heads; h++) {
      const o = (t * heads + h) * stride + offset;
      for (let i = 0; i < half; i++) {
        const c = tables.cos[pc + i]!;
        const s = tables.sin[pc + i]!;
        const ia = r.interleaved ? o + 2 * i : o + i;
        const ib = r.interleaved ? o + 2 * i + 1 : o + i + half;
        const a = x[ia]!;
        const b = x[ib]!;
        x[ia] = a * c - b * s;
        x[ib] = b * c + a * s;
      }
    }
  }
}
