import { MoePruneError } from '../../core/errors.ts';
import type { GpuContext } from '../device.ts';
import { grid2d, submitDispatches, uniformParams, workgroupSize, type BufferView } from '../dispatch.ts';
import { needElems, needInt, placeholder } from './kernel-args.ts';
import code from '../../../shaders/stats.wgsl?raw';

export interface ColSumSqArgs {
  /** f32 rows of `cols` values (the input of a linear map), rows `xStride` elements apart (default cols). */
  readonly x: BufferView;
  readonly rows: number;
  readonly cols: number;
  /** f32 [cols] running sums, added to (zero it once before the first chunk). */
  readonly acc: BufferView;
  /** Only rows ids[offset .. offset + rows) of x (an expert's tokens, from buildExpertLists). */
  readonly gather?: { readonly ids: BufferView; readonly offset?: number };
  readonly xOffset?: number;
  readonly xStride?: number;
}

/** CPU reference: acc[c] += Σ_j x[row(j), c]² (f64 sums). */
export function colSumSqReference(x: Float32Array, rows: ArrayLike<number>, cols: number, acc: Float32Array, xOffset = 0, xStride = cols): void {
  for (let c = 0; c < cols; c++) {
    let s = 0;
    for (let j = 0; j < rows.length; j++) s += x[xOffset + rows[j]! * xStride + c]! ** 2;
    acc[c] = acc[c]! + s;
  }
}

/** CPU reference: co[a·E + b] += 1 for each ordered pair in each token's top-k (diagonal: tokens per expert). */
export function coactivationReference(ids: ArrayLike<number>, tokens: number, k: number, experts: number, co: Uint32Array): void {
  for (let t = 0; t < tokens; t++) for (let a = 0; a < k; a++) for (let b = 0; b < k; b++) co[ids[t * k + a]! * experts + ids[t * k + b]!]!++;
}

/** Per-input-channel squared norms (Wanda's ‖X_j‖²), added into acc. */
export async function colSumSq(ctx: GpuContext, a: ColSumSqArgs): Promise<void> {
  const what = `column sum of squares [${a.rows}, ${a.cols}]`;
  needInt(a.rows, `${what}: rows`);
  needInt(a.cols, `${what}: cols`);
  const off = a.xOffset ?? 0;
  const stride = a.xStride ?? a.cols;
  if (stride < a.cols) throw new MoePruneError('InvalidArgument', `${what}: row stride ${stride} is below cols`);
  needElems(a.acc, a.cols, `${what}: acc`);
  if (a.gather) needElems(a.gather.ids, (a.gather.offset ?? 0) + a.rows, `${what}: token list`);
  else if (a.rows > 0) needElems(a.x, off + (a.rows - 1) * stride + a.cols, `${what}: x`);
  if (a.rows === 0 || a.cols === 0) return;
  const wg = workgroupSize(ctx, 64);
  const pipeline = await ctx.pipelines.get({ name: 'stats', code, entryPoint: 'colsumsq', constants: { GATHER: a.gather ? 1 : 0, WG: wg } });
  const dummy = await placeholder(ctx);
  const u = await uniformParams(ctx, [a.rows, a.cols, off, stride, a.gather?.offset ?? 0, 0]);
  try {
    await submitDispatches(ctx, 'colsumsq', [{ pipeline, bindings: [a.x, a.gather?.ids ?? dummy, a.acc, u], workgroups: grid2d(ctx, Math.ceil(a.cols / wg)) }]);
  } finally {
    ctx.pool.release(u);
    ctx.pool.release(dummy.buffer);
  }
}

/** Co-activation counts from router ids [tokens, k], added into co (u32 [experts, experts], zeroed once). */
export async function coactivation(ctx: GpuContext, ids: BufferView, tokens: number, k: number, experts: number, co: BufferView): Promise<void> {
  const what = `co-activation (${tokens} tokens, top-${k}, ${experts} experts)`;
  needInt(tokens, `${what}: tokens`);
  needInt(k, `${what}: k`, 1);
  needInt(experts, `${what}: experts`, 1);
  needElems(ids, tokens * k, `${what}: ids`);
  needElems(co, experts * experts, `${what}: counts`);
  if (tokens === 0) return;
  const wg = workgroupSize(ctx, 64);
  const pipeline = await ctx.pipelines.get({ name: 'stats', code, entryPoint: 'coact', constants: { WG: wg } });
  const u = await uniformParams(ctx, [tokens, k, 0, 0, 0, experts]);
  try {
    await submitDispatches(ctx, 'coact', [{ pipeline, bindings: [undefined, ids, undefined, u, co], workgroups: grid2d(ctx, Math.ceil(tokens / wg)) }]);
  } finally {
    ctx.pool.release(u);
  }
}
