import { MoePruneError } from '../../core/errors.ts';
import type { GpuContext } from '../device.ts';
import { grid2d, submitDispatches, uniformParams, workgroupSize, type BufferView } from '../dispatch.ts';
import { needElems, needInt } from './kernel-args.ts';
import code from '../../../shaders/rope.wgsl?raw';

export interface RopeArgs {
  /** f32 q or k, rotated in place: [tokens, heads, headStride] unless tokenStride says otherwise. */
  readonly x: BufferView;
  readonly tokens: number;
  readonly heads: number;
  /** Elements between heads (head_dim, or MLA's nope + rope). */
  readonly headStride: number;
  /** Elements between tokens; default heads · headStride. */
  readonly tokenStride?: number;
  /** Rotated values per head (even): head_dim, partial rotary dim, or MLA qk_rope_head_dim. */
  readonly rotaryDim: number;
  /** First rotated value inside a head (MLA: qk_nope_head_dim); default 0. */
  readonly rotaryOffset?: number;
  readonly interleaved: boolean;
  /** f32 [positions, rotaryDim/2]; token t uses row t % positions. */
  readonly cos: BufferView;
  readonly sin: BufferView;
  readonly positions: number;
  readonly xOffset?: number;
}

/** CPU reference with the same arguments (x updated in place). */
export function ropeReference(x: Float32Array, a: Omit<RopeArgs, 'x' | 'cos' | 'sin'> & { cos: Float32Array; sin: Float32Array }): void {
  const half = a.rotaryDim / 2;
  const ts = a.tokenStride ?? a.heads * a.headStride;
  for (let t = 0; t < a.tokens; t++)
    for (let h = 0; h < a.heads; h++) {
      const base = (a.xOffset ?? 0) + t * ts + h * a.headStride + (a.rotaryOffset ?? 0);
      for (let i = 0; i < half; i++) {
        const c = a.cos[(t % a.positions) * half + i]!;
        const s = a.sin[(t % a.positions) * half + i]!;
        const ia = a.interleaved ? base + 2 * i : base + i;
        const ib = a.interleaved ? ia + 1 : base + i + half;
        const u = x[ia]!;
        const v = x[ib]!;
        x[ia] = u * c - v * s;
        x[ib] = v * c + u * s;
      }
    }
}

/** Applies the rotary embedding in place (one invocation per rotated pair). */
export async function rope(ctx: GpuContext, a: RopeArgs): Promise<void> {
  const what = `rope [${a.tokens}, ${a.heads}, ${a.headStride}] rot ${a.rotaryDim}`;
  const off = a.rotaryOffset ?? 0;
  const ts = a.tokenStride ?? a.heads * a.headStride;
  const xOff = a.xOffset ?? 0;
  for (const [v, n] of [[a.tokens, 'tokens'], [a.heads, 'heads'], [a.headStride, 'headStride'], [ts, 'tokenStride'], [off, 'rotaryOffset'], [xOff, 'xOffset']] as const)
    needInt(v, `${what}: ${n}`);
  needInt(a.positions, `${what}: positions`, 1);
  if (a.rotaryDim % 2 !== 0 || a.rotaryDim < 2 || off + a.rotaryDim > a.headStride)
    throw new MoePruneError('InvalidArgument', `${what}: the rotary dim must be even and fit inside a head from offset ${off}`);
  const half = a.rotaryDim / 2;
  needElems(a.cos, a.positions * half, `${what}: cos table`);
  needElems(a.sin, a.positions * half, `${what}: sin table`);
  if (a.tokens > 0) needElems(a.x, xOff + (a.tokens - 1) * ts + (a.heads - 1) * a.headStride + off + a.rotaryDim, `${what}: x`);
  const total = a.tokens * a.heads * half;
  if (total === 0) return;
  if (total > 0xffffffff) throw new MoePruneError('InvalidArgument', `${what}: too many pairs for one call; split the tokens`);
  const wg = workgroupSize(ctx, 64);
  const pipeline = await ctx.pipelines.get({ name: 'rope', code, entryPoint: 'main', constants: { INTERLEAVED: a.interleaved ? 1 : 0, WG: wg } });
  const u = await uniformParams(ctx, [a.tokens, a.heads, half, ts, a.headStride, off, xOff, a.positions]);
  try {
    await submitDispatches(ctx, 'rope', [{ pipeline, bindings: [a.x, a.cos, a.sin, u], workgroups: grid2d(ctx, Math.ceil(total / wg)) }]);
  } finally {
    ctx.pool.release(u);
  }
}
