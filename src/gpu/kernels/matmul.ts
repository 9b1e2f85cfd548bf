import { MoePruneError } from '../../core/errors.ts';
import { decodeToF32 } from '../../formats/dtype.ts';
import { dequantBlockFp8 } from '../../formats/fp8.ts';
import type { GpuContext } from '../device.ts';
import { submitDispatches, uniformParams, type BufferView, type Dispatch } from '../dispatch.ts';
import type { GpuTensor } from '../tensor.ts';
import { needElems, needInt, outputBuffer, placeholder, weightLayout } from './kernel-args.ts';
import kernel from '../../../shaders/matmul.wgsl?raw';
import widen from '../../../shaders/lib/widen.wgsl?raw';

/** The kernel reads stored-dtype tensors through the shared helpers of lib/widen.wgsl (appended, so line numbers hold). */
const code = `${kernel}\n${widen}`;

/** Threads per workgroup side; each thread owns 4 tokens × 4 outputs, so a workgroup covers 32 × 32. */
const SIDE = 8;
const BLOCK = 4 * SIDE;

/**
 * Token list of one expert: entries ids[offset .. offset + tokens) are token rows (of x for `gather`, of y for
 * `scatterAdd`), weights[offset + j] the router weight of entry j (needed by scatterAdd).
 */
export interface ExpertRows {
  readonly ids: BufferView;
  readonly weights?: BufferView;
  readonly offset?: number;
}

/**
 * Block scales of an FP8 weight (DeepSeek-V3 `<weight>_scale_inv`): f32 [ceil(rows / block[0]), ceil(in / block[1])]
 * in one binding (it is tiny: 1/16384 of the weight's elements for 128 × 128 blocks). The real weight is
 * fp8 × scale of the block the element falls in.
 */
export interface BlockScale {
  readonly view: BufferView;
  /** Block rows × columns (DeepSeek-V3: 128 × 128). */
  readonly block: readonly [number, number];
  /** Row of the scale grid's weight that W's row 0 is (W a row range of a larger tensor); default 0. */
  readonly rowOffset?: number;
}

export interface MatmulArgs {
  /** f32 activations, row-major [rows, in] from element `xOffset`. */
  readonly x: BufferView;
  /** Weight [out, in] (F32/F16/BF16/F8_E4M3, any number of dim-0 parts). */
  readonly w: GpuTensor;
  /** Block scales of an F8_E4M3 weight. */
  readonly scale?: BlockScale;
  /** f32 output, row-major with `yStride` elements per row (default out) from element `yOffset`. */
  readonly y: BufferView;
  /** Rows computed: tokens of x, or entries of the expert list. */
  readonly tokens: number;
  /** f32 [out]. */
  readonly bias?: BufferView;
  /** Input row j is x[ids[offset + j]] (gathered tokens); the output row stays j unless scatterAdd is set. */
  readonly gather?: ExpertRows;
  /** Output: y[ids[offset + j]] += weights[offset + j] · result (an expert's weighted return to its tokens). */
  readonly scatterAdd?: ExpertRows;
  /** Hook for per-weight masks: one bit per element of W (bit o·in + i, LSB first in u32 words); 0 = pruned. */
  readonly mask?: BufferView;
  readonly xOffset?: number;
  readonly yOffset?: number;
  readonly yStride?: number;
}

/**
 * CPU reference of `matmul` with the same argument meaning; W given as f32 [out, in] (an FP8 weight already
 * widened and block-dequantised: `fp8Reference`). Updates y in place.
 */
export function matmulReference(a: {
  x: Float32Array; w: Float32Array; y: Float32Array; tokens: number; inDim: number; outDim: number;
  bias?: Float32Array; gather?: Uint32Array; scatter?: { ids: Uint32Array; weights: Float32Array }; mask?: Uint32Array;
  xOffset?: number; yOffset?: number; yStride?: number;
}): void {
  const stride = a.yStride ?? a.outDim;
  for (let j = 0; j < a.tokens; j++) {
    const xr = (a.xOffset ?? 0) + (a.gather ? a.gather[j]! : j) * a.inDim;
    for (let o = 0; o < a.outDim; o++) {
      let s = 0;
      for (let i = 0; i < a.inDim; i++) {
        const e = o * a.inDim + i;
        if (a.mask && ((a.mask[e >>> 5]! >>> (e & 31)) & 1) === 0) continue;
        s += a.x[xr + i]! * a.w[e]!;
      }
      const v = Math.fround(s) + (a.bias ? a.bias[o]! : 0);
      if (a.scatter) a.y[(a.yOffset ?? 0) + a.scatter.ids[j]! * stride + o]! += a.scatter.weights[j]! * v;
      else a.y[(a.yOffset ?? 0) + j * stride + o] = v;
    }
  }
}

/** The f32 weight `matmul` computes with for FP8 bytes and their block scales (decodeToF32 + dequantBlockFp8). */
export function fp8Reference(bytes: Uint8Array, inDim: number, scale: Float32Array, block: readonly [number, number] = [128, 128], rowOffset = 0): Float32Array {
  return dequantBlockFp8(decodeToF32('F8_E4M3', bytes), inDim, scale, Math.ceil(inDim / block[1]), block, rowOffset);
}

/**
 * y = x · Wᵀ (+ bias) with W in its stored dtype, one dispatch per W part (each writes its slice of output
 * columns), all in one submission. Variants: gathered input rows, weighted scatter-add output, both.
 */
export async function matmul(ctx: GpuContext, a: MatmulArgs): Promise<void> {
  const { w, tokens } = a;
  const what = `matmul ${w.dtype}${JSON.stringify(w.shape)}`;
  const sc = a.scale;
  const { outDim, inDim, dtype, scaleCols, rowOffset } = weightLayout(w, sc, what);
  const xOff = a.xOffset ?? 0;
  const yOff = a.yOffset ?? 0;
  const yStride = a.yStride ?? outDim;
  needInt(tokens, `${what}: tokens`);
  needInt(xOff, `${what}: xOffset`);
  needInt(yOff, `${what}: yOffset`);
  if (yStride < outDim) throw new MoePruneError('InvalidArgument', `${what}: yStride ${yStride} is below out ${outDim}`);
  if (a.gather && a.scatterAdd && (a.gather.ids !== a.scatterAdd.ids || (a.gather.offset ?? 0) !== (a.scatterAdd.offset ?? 0)))
    throw new MoePruneError('InvalidArgument', `${what}: gather and scatterAdd must use the same token list`);
  const list = a.gather ?? a.scatterAdd;
  const idsOff = list?.offset ?? 0;
  if (list) needElems(list.ids, idsOff + tokens, `${what}: token list`);
  if (a.scatterAdd) {
    if (!a.scatterAdd.weights) throw new MoePruneError('InvalidArgument', `${what}: scatterAdd needs router weights`);
    needElems(a.scatterAdd.weights, idsOff + tokens, `${what}: router weights`);
  }
  // Rows reached through a token list are checked by the list's builder; plain rows are checked here.
  if (!a.gather) needElems(a.x, xOff + tokens * inDim, `${what}: x`);
  if (!a.scatterAdd) needElems(a.y, yOff + Math.max(0, tokens - 1) * yStride + (tokens > 0 ? outDim : 0), `${what}: y`);
  if (a.bias) needElems(a.bias, outDim, `${what}: bias`);
  if (a.mask) needElems(a.mask, Math.ceil((outDim * inDim) / 32), `${what}: mask`);
  if (outDim * inDim > 0xffffffff) throw new MoePruneError('InvalidShape', `${what}: more than 2³² weights in one tensor`);
  if (tokens === 0 || outDim === 0) return;

  // A vec4 group of FP8 weights must sit in one scale block (true for the usual 128-wide blocks).
  const vec = inDim % 4 === 0 && xOff % 4 === 0 && (!sc || sc.block[1] % 4 === 0);
  const tokenGroups = Math.ceil(tokens / BLOCK);
  const maxGroups = ctx.limits.maxComputeWorkgroupsPerDimension;
  if (tokenGroups > maxGroups) throw new MoePruneError('InvalidArgument', `${what}: ${tokens} rows in one call is too many; split the tokens`);
  const pipeline = await ctx.pipelines.get({
    name: 'matmul',
    code,
    entryPoint: vec ? 'main_vec4' : 'main',
    constants: {
      DTYPE: dtype,
      GATHER: a.gather ? 1 : 0,
      SCATTER: a.scatterAdd ? 1 : 0,
      HAS_BIAS: a.bias ? 1 : 0,
      HAS_MASK: a.mask ? 1 : 0,
      HAS_SCALE: sc ? 1 : 0,
      SCALE_BR: sc?.block[0] ?? 128,
      SCALE_BC: sc?.block[1] ?? 128,
      WG: SIDE,
    },
  });
  const dummy = await placeholder(ctx);
  const params: GPUBuffer[] = [];
  try {
    const dispatches: Dispatch[] = [];
    for (const part of w.parts) {
      if (part.rows === 0) continue;
      const outGroups = Math.ceil(part.rows / BLOCK);
      if (outGroups > maxGroups) throw new MoePruneError('InvalidArgument', `${what}: a part of ${part.rows} rows is too large for one dispatch`);
      const u = await uniformParams(ctx, [
        tokens, inDim, part.rows, yStride, part.rowStart, xOff, yOff, idsOff, part.rowStart * inDim, rowOffset + part.rowStart, scaleCols,
      ]);
      params.push(u);
      dispatches.push({
        pipeline,
        bindings: [a.x, part, a.y, u, list?.ids ?? dummy, a.scatterAdd?.weights ?? dummy, a.bias ?? dummy, a.mask ?? dummy, sc?.view ?? dummy],
        workgroups: [outGroups, tokenGroups],
      });
    }
    await submitDispatches(ctx, 'matmul', dispatches);
  } finally {
    for (const u of params) ctx.pool.release(u);
    ctx.pool.release(dummy.buffer);
  }
}

/** Plain linear layer: a new pooled f32 [tokens, out] = x · Wᵀ (+ bias). */
export async function linear(ctx: GpuContext, x: BufferView, w: GpuTensor, tokens: number, bias?: BufferView, scale?: BlockScale): Promise<BufferView> {
  const y = await outputBuffer(ctx, tokens * (w.shape[0] ?? 0), 'linear out');
  try {
    await matmul(ctx, { x, w, y, tokens, ...(bias ? { bias } : {}), ...(scale ? { scale } : {}) });
  } catch (e) {
    ctx.pool.release(y.buffer);
    throw e;
  }
  return y;
}
