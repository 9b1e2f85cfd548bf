import { MoePruneError } from '../../core/errors.ts';
import { decodeToF32, type DType } from '../../formats/dtype.ts';
import type { GpuContext } from '../device.ts';
import { grid2d, submitDispatches, uniformParams, workgroupSize, type Dispatch } from '../dispatch.ts';
import { STORAGE_USAGE } from '../pool.ts';
import { maxPartBytes, planParts, type GpuTensor, type GpuTensorPart, type SplitOptions } from '../tensor.ts';
import { WIDEN_DTYPE_CODE } from './kernel-args.ts';
import kernel from '../../../shaders/unpack.wgsl?raw';
import widen from '../../../shaders/lib/widen.wgsl?raw';

/** The kernel reads stored-dtype tensors through the shared helpers of lib/widen.wgsl (appended, so line numbers hold). */
const code = `${kernel}\n${widen}`;

/** Elements per invocation: 8 ran about 2x faster than 1 on SwiftShader and stays coalesced on GPUs. */
const ITEMS = 8;

/** dtypes the unpack kernel widens: all of lib/widen.wgsl's (FP8 without its block scales). */
export type UnpackDType = keyof typeof WIDEN_DTYPE_CODE;

function canUnpack(dtype: DType): dtype is UnpackDType {
  return dtype in WIDEN_DTYPE_CODE;
}

/** CPU reference: the same widening the kernel does, from little-endian bytes. */
export function unpackReference(dtype: UnpackDType, bytes: Uint8Array): Float32Array {
  return decodeToF32(dtype, bytes);
}

/**
 * Widens an F32/F16/BF16/F8_E4M3 tensor to a new F32 tensor. Output parts are planned for f32 size (twice a 16-bit
 * input), and each lies inside one input part, so any split of the input works.
 */
export async function unpack(ctx: GpuContext, src: GpuTensor, opts: SplitOptions = {}): Promise<GpuTensor> {
  if (!canUnpack(src.dtype)) throw new MoePruneError('UnsupportedDtype', `the unpack kernel cannot widen ${src.dtype} to f32`);
  const elemBytes = src.dtype === 'F32' ? 4 : src.dtype === 'F8_E4M3' ? 1 : 2;
  const rowElems = src.rowBytes / elemBytes;
  const outRowBytes = rowElems * 4;
  const wg = workgroupSize(ctx);
  const pipeline = await ctx.pipelines.get({ name: 'unpack', code, entryPoint: 'main', constants: { DTYPE: WIDEN_DTYPE_CODE[src.dtype], WG: wg, ITEMS } });

  const parts: GpuTensorPart[] = [];
  const dispatches: Dispatch[] = [];
  const params: GPUBuffer[] = [];
  try {
    for (const inPart of src.parts) {
      for (const sub of planParts(inPart.rows, outRowBytes, maxPartBytes(ctx, opts), 'unpack output')) {
        const count = sub.rows * rowElems;
        const byteLength = count * 4;
        const buffer = await ctx.pool.acquire(Math.max(4, byteLength), STORAGE_USAGE, 'unpacked');
        parts.push({ buffer, rowStart: inPart.rowStart + sub.rowStart, rows: sub.rows, byteLength });
        if (count === 0) continue;
        const u = await uniformParams(ctx, [count, sub.rowStart * rowElems]);
        params.push(u);
        dispatches.push({ pipeline, bindings: [inPart, { buffer, byteLength }, u], workgroups: grid2d(ctx, Math.ceil(count / (wg * ITEMS))) });
      }
    }
    await submitDispatches(ctx, 'unpack', dispatches);
  } catch (e) {
    for (const p of parts) ctx.pool.release(p.buffer);
    throw e;
  } finally {
    for (const u of params) ctx.pool.release(u);
  }
  return { dtype: 'F32', shape: [...src.shape], rowBytes: outRowBytes, parts };
}
