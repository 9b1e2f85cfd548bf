import { MoePruneError } from '../../core/errors.ts';
import type { GpuContext } from '../device.ts';
import { grid2d, submitDispatches, uniformParams, workgroupSize, type BufferView } from '../dispatch.ts';
import type { GpuTensor } from '../tensor.ts';
import { f32Bits, needElems, needInt, placeholder, singlePart, weightDtypeCode } from './kernel-args.ts';
import kernel from '../../../shaders/norm.wgsl?raw';
import widen from '../../../shaders/lib/widen.wgsl?raw';

/** The kernel reads stored-dtype tensors through the shared helpers of lib/widen.wgsl (appended, so line numbers hold). */
const code = `${kernel}\n${widen}`;

export type NormKind = 'rms' | 'layer';

export interface NormArgs {
  readonly kind: NormKind;
  /** f32 [rows, dim] from element xOffset. */
  readonly x: BufferView;
  /** f32 [rows, dim] from element outOffset; must be a different buffer from x. */
  readonly out: BufferView;
  readonly rows: number;
  /** Normalised length: hidden size, or head_dim for the per-head q/k norm (rows = tokens · heads). */
  readonly dim: number;
  /** [dim], F32/F16/BF16, one part. */
  readonly weight: GpuTensor;
  /** LayerNorm bias [dim], same dtype as weight. */
  readonly bias?: GpuTensor;
  readonly eps: number;
  readonly xOffset?: number;
  readonly outOffset?: number;
}

/** CPU reference: the f32 formulas of norm.wgsl (statistics in f64, so it is the exact value the kernel rounds). */
export function normReference(kind: NormKind, x: Float32Array, rows: number, dim: number, w: Float32Array, eps: number, b?: Float32Array): Float32Array {
  const y = new Float32Array(rows * dim);
  for (let r = 0; r < rows; r++) {
    const o = r * dim;
    if (kind === 'rms') {
      let ss = 0;
      for (let i = 0; i < dim; i++) ss += x[o + i]! ** 2;
      const inv = 1 / Math.sqrt(ss / dim + eps);
      for (let i = 0; i < dim; i++) y[o + i] = w[i]! * x[o + i]! * inv;
    } else {
      let mean = 0;
      for (let i = 0; i < dim; i++) mean += x[o + i]!;
      mean /= dim;
      let v = 0;
      for (let i = 0; i < dim; i++) v += (x[o + i]! - mean) ** 2;
      const inv = 1 / Math.sqrt(v / dim + eps);
      for (let i = 0; i < dim; i++) y[o + i] = (x[o + i]! - mean) * inv * w[i]! + (b ? b[i]! : 0);
    }
  }
  return y;
}

/** RMSNorm / LayerNorm of every row (one workgroup per row). */
export async function norm(ctx: GpuContext, a: NormArgs): Promise<void> {
  const what = `${a.kind}norm [${a.rows}, ${a.dim}]`;
  needInt(a.rows, `${what}: rows`);
  needInt(a.dim, `${what}: dim`, 1);
  const xOff = a.xOffset ?? 0;
  const outOff = a.outOffset ?? 0;
  needElems(a.x, xOff + a.rows * a.dim, `${what}: x`);
  needElems(a.out, outOff + a.rows * a.dim, `${what}: out`);
  if (a.x.buffer === a.out.buffer) throw new MoePruneError('InvalidArgument', `${what}: x and out must be different buffers`);
  const dtype = weightDtypeCode(a.weight.dtype, what);
  if (a.weight.shape.length !== 1 || a.weight.shape[0] !== a.dim)
    throw new MoePruneError('InvalidShape', `${what}: weight is ${JSON.stringify(a.weight.shape)}, expected [${a.dim}]`);
  if (a.bias && (a.kind !== 'layer' || a.bias.dtype !== a.weight.dtype || a.bias.shape[0] !== a.dim))
    throw new MoePruneError('InvalidArgument', `${what}: a bias must be a LayerNorm bias [${a.dim}] of the weight's dtype`);
  if (a.rows === 0) return;
  const wg = workgroupSize(ctx, 64);
  const pipeline = await ctx.pipelines.get({
    name: 'norm',
    code,
    entryPoint: 'main',
    constants: { MODE: a.kind === 'rms' ? 0 : 1, DTYPE: dtype, HAS_BIAS: a.bias ? 1 : 0, WG: wg },
  });
  const u = await uniformParams(ctx, [a.rows, a.dim, f32Bits(a.eps), xOff, outOff]);
  const dummy = await placeholder(ctx);
  try {
    const weight = singlePart(a.weight, `${what} weight`);
    const bias = a.bias ? singlePart(a.bias, `${what} bias`) : dummy;
    await submitDispatches(ctx, 'norm', [{ pipeline, bindings: [a.x, a.out, u, weight, bias], workgroups: grid2d(ctx, a.rows) }]);
  } finally {
    ctx.pool.release(u);
    ctx.pool.release(dummy.buffer);
  }
}
