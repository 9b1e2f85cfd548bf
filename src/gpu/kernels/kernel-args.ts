/**
 * Small helpers shared by the forward-pass kernels: weight dtype codes for the shaders' DTYPE override,
 * f32 parameters passed as u32 bits, argument checks, and a placeholder binding for optional buffers.
 */
import { MoePruneError } from '../../core/errors.ts';
import type { DType } from '../../formats/dtype.ts';
import type { GpuContext } from '../device.ts';
import type { BufferView } from '../dispatch.ts';
import { STORAGE_USAGE } from '../pool.ts';
import type { GpuTensor } from '../tensor.ts';

/** Weight dtypes the kernels read directly (16-bit ones two per u32 word), with the shaders' DTYPE value. */
export const WEIGHT_DTYPE_CODE = { F32: 0, F16: 1, BF16: 2 } as const;
export type WeightDType = keyof typeof WEIGHT_DTYPE_CODE;

/** Every DTYPE value of lib/widen.wgsl: the weight dtypes plus F8_E4M3 (read only where its block scales are handled). */
export const WIDEN_DTYPE_CODE = { ...WEIGHT_DTYPE_CODE, F8_E4M3: 3 } as const;

export function weightDtypeCode(dtype: DType, what: string): number {
  if (!(dtype in WEIGHT_DTYPE_CODE))
    throw new MoePruneError('UnsupportedDtype', `${what}: the GPU kernels read F32, F16 or BF16 weights, not ${dtype} (dequantise it first)`);
  return WEIGHT_DTYPE_CODE[dtype as WeightDType];
}

/** The u32 bit pattern of an f32, for uniform parameters (shaders bitcast it back). */
export function f32Bits(x: number): number {
  const f = new Float32Array([x]);
  return new Uint32Array(f.buffer)[0]!;
}

/** Throws InvalidArgument unless `view` holds at least `elems` 4-byte elements. */
export function needElems(view: BufferView, elems: number, what: string): void {
  if (!Number.isSafeInteger(elems) || elems < 0) throw new MoePruneError('InvalidArgument', `${what}: bad element count ${elems}`);
  if (elems * 4 > view.byteLength)
    throw new MoePruneError('InvalidArgument', `${what} needs ${elems} 4-byte elements but its buffer view holds ${Math.floor(view.byteLength / 4)}`);
}

export function needInt(v: number, what: string, min = 0): void {
  if (!Number.isSafeInteger(v) || v < min) throw new MoePruneError('InvalidArgument', `${what} must be an integer ≥ ${min}, got ${v}`);
}

/** A 1-D tensor in one part (norm weights, biases), bound whole. */
export function singlePart(t: GpuTensor, what: string): BufferView {
  if (t.parts.length !== 1) throw new MoePruneError('InvalidArgument', `${what} must be in one GPU part, it has ${t.parts.length}`);
  return t.parts[0]!;
}

/**
 * Auto pipeline layouts contain every binding an entry point references, even behind a false override, so
 * optional inputs that are switched off get this 16-byte placeholder. Release it after submitting.
 */
export async function placeholder(ctx: GpuContext): Promise<BufferView> {
  const buffer = await ctx.pool.acquire(16, STORAGE_USAGE, 'unused binding');
  return { buffer, byteLength: 16 };
}

/** A zero-filled pooled f32/u32 buffer of `elems` elements (accumulators). */
export async function zeroedBuffer(ctx: GpuContext, elems: number, label: string): Promise<BufferView> {
  const byteLength = Math.max(4, elems * 4);
  const buffer = await ctx.pool.acquire(byteLength, STORAGE_USAGE, label);
  ctx.device.queue.writeBuffer(buffer, 0, new Uint8Array(Math.ceil(byteLength / 4) * 4));
  return { buffer, byteLength };
}

/** A pooled buffer holding a copy of `data` (4-byte words: f32 inputs, token ids, hidden states). */
export async function uploadedBuffer(ctx: GpuContext, data: Float32Array | Uint32Array, label: string): Promise<BufferView> {
  const byteLength = Math.max(4, data.byteLength);
  const buffer = await ctx.pool.acquire(byteLength, STORAGE_USAGE, label);
  if (data.byteLength > 0) ctx.device.queue.writeBuffer(buffer, 0, data.buffer as ArrayBuffer, data.byteOffset, data.byteLength);
  return { buffer, byteLength };
}

/** An uninitialised pooled buffer of `elems` 4-byte elements (kernel outputs). */
export async function outputBuffer(ctx: GpuContext, elems: number, label: string): Promise<BufferView> {
  const byteLength = Math.max(4, elems * 4);
  return { buffer: await ctx.pool.acquire(byteLength, STORAGE_USAGE, label), byteLength };
}

/** Block scales of an FP8 weight as a kernel binds them (see matmul.ts `BlockScale`). */
export interface ScaleGrid {
  readonly view: BufferView;
  readonly block: readonly [number, number];
  readonly rowOffset?: number;
}

/**
 * The widen-dtype code of a 2-D weight [out, in] read by a kernel, and its FP8 block-scale layout checked: block
 * scales go with F8_E4M3 weights only, and the grid must cover the weight's rows from `rowOffset`.
 */
export function weightLayout(w: GpuTensor, sc: ScaleGrid | undefined, what: string): { outDim: number; inDim: number; dtype: number; scaleCols: number; rowOffset: number } {
  if (w.shape.length !== 2) throw new MoePruneError('InvalidShape', `${what}: the weight must be 2-D [out, in]`);
  const [outDim, inDim] = w.shape as [number, number];
  const dtype = w.dtype === 'F8_E4M3' ? WIDEN_DTYPE_CODE.F8_E4M3 : weightDtypeCode(w.dtype, what);
  const scaleCols = sc ? Math.ceil(inDim / sc.block[1]) : 0;
  const rowOffset = sc?.rowOffset ?? 0;
  if (sc) {
    if (w.dtype !== 'F8_E4M3') throw new MoePruneError('InvalidArgument', `${what}: block scales go with F8_E4M3 weights only`);
    needInt(sc.block[0], `${what}: scale block rows`, 1);
    needInt(sc.block[1], `${what}: scale block columns`, 1);
    needInt(rowOffset, `${what}: scale rowOffset`);
    needElems(sc.view, Math.ceil((rowOffset + outDim) / sc.block[0]) * scaleCols, `${what}: block scales`);
  }
  return { outDim, inDim, dtype, scaleCols, rowOffset };
}
