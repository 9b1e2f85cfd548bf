/**
 * Kernels of shaders/expert_signals.wgsl: per-row output norms of an expert (with the weighted scatter-add into the
 * MoE output), per-row squared differences of two blocks' outputs, and per-token Gram matrices of stacked expert
 * outputs. They feed the expert-choice criteria (REAP/EAN/frequency, reconstruction error, NAEE, HC-SMoE).
 */
import { MoePruneError } from '../../core/errors.ts';
import type { GpuContext } from '../device.ts';
import { grid2d, submitDispatches, uniformParams, workgroupSize, type BufferView } from '../dispatch.ts';
import { needElems, needInt, placeholder } from './kernel-args.ts';
import code from '../../../shaders/expert_signals.wgsl?raw';

export interface ScatterNormsArgs {
  /** f32 [rows, cols]: one expert's un-weighted outputs for its gathered tokens. */
  readonly f: BufferView;
  readonly rows: number;
  readonly cols: number;
  /** f32: norms[normOffset + j] = ‖f[j]‖₂. */
  readonly norms: BufferView;
  readonly normOffset?: number;
  /** out[ids[offset + j]] += weights[offset + j] · f[j] (the expert list of buildExpertLists; out is [tokens, cols]). */
  readonly scatter?: { readonly ids: BufferView; readonly weights: BufferView; readonly offset?: number; readonly out: BufferView };
}

/** CPU reference of scatterNorms (f64 sums of squares, rounded once; the scatter-add rounds like the kernel). */
export function scatterNormsReference(
  f: Float32Array, rows: number, cols: number, norms: Float32Array, normOffset = 0,
  scatter?: { ids: ArrayLike<number>; weights: ArrayLike<number>; offset?: number; out: Float32Array },
): void {
  for (let j = 0; j < rows; j++) {
    let s = 0;
    for (let c = 0; c < cols; c++) s += f[j * cols + c]! ** 2;
    norms[normOffset + j] = Math.sqrt(s);
    if (scatter) {
      const o = scatter.offset ?? 0;
      const t = scatter.ids[o + j]!;
      const g = scatter.weights[o + j]!;
      for (let c = 0; c < cols; c++) scatter.out[t * cols + c] = scatter.out[t * cols + c]! + Math.fround(g * f[j * cols + c]!);
    }
  }
}

/** CPU reference of rowSqDiff: out[2j] = Σ (a − b)², out[2j + 1] = Σ b² (f64). */
export function rowSqDiffReference(a: Float32Array, b: Float32Array, rows: number, cols: number): Float64Array {
  const out = new Float64Array(2 * rows);
  for (let j = 0; j < rows; j++)
    for (let c = 0; c < cols; c++) {
      const x = b[j * cols + c]!;
      const d = Math.fround(a[j * cols + c]! - x);
      out[2 * j]! += d * d;
      out[2 * j + 1]! += x * x;
    }
  return out;
}

/** CPU reference of colSum: acc[accOffset + c] += Σ_r w_r · f[fOffset + r·cols + c] (f64 sums; w_r = weights[weightOffset + r], or 1). */
export function colSumReference(
  f: Float32Array, rows: number, cols: number, acc: Float32Array, fOffset = 0, accOffset = 0, weights?: { readonly w: Float32Array; readonly offset?: number },
): void {
  for (let c = 0; c < cols; c++) {
    let s = 0;
    for (let r = 0; r < rows; r++) s += Math.fround(f[fOffset + r * cols + c]! * (weights ? weights.w[(weights.offset ?? 0) + r]! : 1));
    acc[accOffset + c] = acc[accOffset + c]! + s;
  }
}

/** CPU reference of expertGram: G[t, i, j] = ⟨f[i, t], f[j, t]⟩ over f [experts, tokens, cols] (f64). */
export function expertGramReference(f: Float32Array, experts: number, tokens: number, cols: number): Float64Array {
  const G = new Float64Array(tokens * experts * experts);
  for (let t = 0; t < tokens; t++)
    for (let i = 0; i < experts; i++)
      for (let j = i; j < experts; j++) {
        let s = 0;
        const a = (i * tokens + t) * cols;
        const b = (j * tokens + t) * cols;
        for (let c = 0; c < cols; c++) s += f[a + c]! * f[b + c]!;
        G[t * experts * experts + i * experts + j] = s;
        G[t * experts * experts + j * experts + i] = s;
      }
  return G;
}

async function pipelineFor(ctx: GpuContext, entryPoint: string, scatter?: boolean): Promise<{ pipeline: GPUComputePipeline; wg: number }> {
  const wg = workgroupSize(ctx, 64);
  // Only overrides the entry point uses: a constant for an unused override fails pipeline creation on some adapters.
  const constants: Record<string, number> = scatter === undefined ? { WG: wg } : { WG: wg, SCATTER: scatter ? 1 : 0 };
  return { pipeline: await ctx.pipelines.get({ name: 'expert_signals', code, entryPoint, constants }), wg };
}

/** ‖f[j]‖₂ per row into `norms`, and optionally the weighted scatter-add of the rows into the MoE output. */
export async function scatterNorms(ctx: GpuContext, a: ScatterNormsArgs): Promise<void> {
  const what = `expert output norms [${a.rows}, ${a.cols}]`;
  needInt(a.rows, `${what}: rows`);
  needInt(a.cols, `${what}: cols`, 1);
  const normOff = a.normOffset ?? 0;
  needInt(normOff, `${what}: norm offset`);
  needElems(a.f, a.rows * a.cols, `${what}: f`);
  needElems(a.norms, normOff + a.rows, `${what}: norms`);
  const sc = a.scatter;
  if (sc) {
    needElems(sc.ids, (sc.offset ?? 0) + a.rows, `${what}: token list`);
    needElems(sc.weights, (sc.offset ?? 0) + a.rows, `${what}: router weights`);
    if (sc.out.buffer === a.f.buffer || sc.out.buffer === a.norms.buffer) throw new MoePruneError('InvalidArgument', `${what}: the output must be its own buffer`);
  }
  if (a.rows === 0) return;
  const { pipeline } = await pipelineFor(ctx, 'scatter_norms', !!sc);
  // Two placeholders: a writable binding may not alias the read-only ones.
  const dummy = await placeholder(ctx);
  const dummyOut = await placeholder(ctx);
  const u = await uniformParams(ctx, [a.rows, a.cols, sc?.offset ?? 0, normOff, 0, 0]);
  try {
    await submitDispatches(ctx, 'expert output norms', [
      { pipeline, bindings: [a.f, undefined, sc?.out ?? dummyOut, u, sc?.ids ?? dummy, sc?.weights ?? dummy, a.norms], workgroups: grid2d(ctx, a.rows) },
    ]);
  } finally {
    ctx.pool.release(u);
    ctx.pool.release(dummy.buffer);
    ctx.pool.release(dummyOut.buffer);
  }
}

/** Per row: out[2j] = Σ (a − b)², out[2j + 1] = Σ b² (out f32 [rows, 2]). */
export async function rowSqDiff(ctx: GpuContext, a: BufferView, b: BufferView, rows: number, cols: number, out: BufferView): Promise<void> {
  const what = `row squared differences [${rows}, ${cols}]`;
  needInt(rows, `${what}: rows`);
  needInt(cols, `${what}: cols`, 1);
  needElems(a, rows * cols, `${what}: a`);
  needElems(b, rows * cols, `${what}: b`);
  needElems(out, 2 * rows, `${what}: out`);
  if (rows === 0) return;
  const { pipeline } = await pipelineFor(ctx, 'sqdiff');
  const u = await uniformParams(ctx, [rows, cols, 0, 0, 0, 0]);
  try {
    await submitDispatches(ctx, 'row squared differences', [{ pipeline, bindings: [a, b, out, u], workgroups: grid2d(ctx, rows) }]);
  } finally {
    ctx.pool.release(u);
  }
}

/** G[t, i, j] = ⟨f[i, t], f[j, t]⟩ for stacked expert outputs f [experts, tokens, cols] (out f32 [tokens, experts, experts]). */
export async function expertGram(ctx: GpuContext, f: BufferView, experts: number, tokens: number, cols: number, out: BufferView): Promise<void> {
  const what = `expert output Gram matrices (${experts} experts × ${tokens} tokens × ${cols})`;
  needInt(experts, `${what}: experts`, 1);
  needInt(tokens, `${what}: tokens`);
  needInt(cols, `${what}: cols`, 1);
  needElems(f, experts * tokens * cols, `${what}: f`);
  needElems(out, tokens * experts * experts, `${what}: out`);
  if (tokens === 0) return;
  const pairs = (experts * (experts + 1)) / 2;
  const { pipeline } = await pipelineFor(ctx, 'gram');
  const u = await uniformParams(ctx, [tokens, cols, 0, 0, experts, pairs]);
  try {
    await submitDispatches(ctx, 'expert Gram', [{ pipeline, bindings: [f, undefined, out, u], workgroups: grid2d(ctx, tokens * pairs) }]);
  } finally {
    ctx.pool.release(u);
  }
}

/** acc[accOffset + c] += Σ_r f[fOffset + r·cols + c]: one expert's outputs summed over tokens (zero acc once). */
export async function colSum(
  ctx: GpuContext,
  a: { f: BufferView; rows: number; cols: number; acc: BufferView; fOffset?: number; accOffset?: number; weights?: { readonly w: BufferView; readonly offset?: number } },
): Promise<void> {
  const what = `column sums [${a.rows}, ${a.cols}]`;
  needInt(a.rows, `${what}: rows`);
  needInt(a.cols, `${what}: cols`, 1);
  const fOff = a.fOffset ?? 0;
  const accOff = a.accOffset ?? 0;
  const wOff = a.weights?.offset ?? 0;
  needInt(fOff, `${what}: f offset`);
  needInt(accOff, `${what}: acc offset`);
  needInt(wOff, `${what}: weight offset`);
  needElems(a.f, fOff + a.rows * a.cols, `${what}: f`);
  needElems(a.acc, accOff + a.cols, `${what}: acc`);
  if (a.weights) needElems(a.weights.w, wOff + a.rows, `${what}: row weights`);
  if (a.acc.buffer === a.f.buffer || a.acc.buffer === a.weights?.w.buffer) throw new MoePruneError('InvalidArgument', `${what}: the sums must be their own buffer`);
  if (a.rows === 0) return;
  const { pipeline, wg } = await pipelineFor(ctx, 'colsum');
  const dummy = a.weights ? undefined : await placeholder(ctx);
  const u = await uniformParams(ctx, [a.rows, a.cols, fOff, accOff, a.weights ? 1 : 0, wOff]);
  try {
    await submitDispatches(ctx, 'column sums', [{ pipeline, bindings: [a.f, a.weights?.w ?? dummy, a.acc, u], workgroups: grid2d(ctx, Math.ceil(a.cols / wg)) }]);
  } finally {
    ctx.pool.release(u);
    if (dummy) ctx.pool.release(dummy.buffer);
  }
}
