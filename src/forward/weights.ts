/**
 * Tensors for the GPU engine in a dtype the kernels read: F32/F16/BF16 and block-FP8 (F8_E4M3 2-D weights with
 * a `_scale_inv`) stay as stored (bytes go straight from the file to the GPU, bf16 and fp8 stay packed; the fp8
 * block scales travel with the tensor and the matmul kernel applies them). Other dtypes are widened to F32 on
 * the CPU. Nothing is read before the engine asks for it.
 */
import { MoePruneError } from '../core/errors.ts';
import type { FileSet } from '../formats/bytes.ts';
import { decodeToF32, encodeFromF32, numel, type Shape } from '../formats/dtype.ts';
import { dequantBlockFp8 } from '../formats/fp8.ts';
import type { WeightDType } from '../gpu/kernels/kernel-args.ts';
import type { TensorBytes } from '../gpu/tensor.ts';
import { findNonFiniteTensors, type NonFiniteTensor } from './finite.ts';
import { CheckpointWeights } from './reference/weights.ts';

/** dtypes the engine uploads as stored: the kernels' weight dtypes, and F8_E4M3 for matmul weights with block scales. */
export type StoredDType = WeightDType | 'F8_E4M3';

/** Block scales of an FP8 weight: the whole f32 `_scale_inv` [ceil(rows/block[0]), cols], whatever rows were read. */
export interface StoredScale {
  readonly values: Float32Array;
  readonly cols: number;
  readonly block: readonly [number, number];
  /** Row of the full weight that this tensor's row 0 is. */
  readonly rowOffset: number;
}

/** A tensor (or rows of one) ready to upload: bytes in `dtype`, either in memory or a range of a file. */
export interface StoredTensor {
  readonly dtype: StoredDType;
  readonly shape: Shape;
  readonly bytes: TensorBytes;
  /** Present exactly for block-FP8 weights. */
  readonly scale?: StoredScale;
}

export interface GpuWeightSource {
  has(name: string): boolean;
  /** Logical shape (an FP8 weight's, not its scale's); undefined when absent. */
  shape(name: string): Shape | undefined;
  /** Rows [start, start + count) along dim 0 (all rows when omitted), in a kernel-readable dtype. */
  rows(name: string, start?: number, count?: number, signal?: AbortSignal): Promise<StoredTensor>;
}

const KERNEL_DTYPES: ReadonlySet<string> = new Set(['F32', 'F16', 'BF16']);

/** Bytes per element of a kernel dtype. */
export function elemBytes(dtype: StoredDType): number {
  return dtype === 'F32' ? 4 : dtype === 'F8_E4M3' ? 1 : 2;
}

/** A sub-block of a stored tensor: `shape` elements starting `elemOffset` elements in (contiguous). */
export function subTensor(t: StoredTensor, elemOffset: number, shape: Shape): StoredTensor {
  const b = elemOffset * elemBytes(t.dtype);
  const n = numel(shape) * elemBytes(t.dtype);
  const bytes = t.bytes instanceof Uint8Array ? t.bytes.subarray(b, b + n) : { source: t.bytes.source, offset: t.bytes.offset + b };
  if (!t.scale) return { dtype: t.dtype, shape, bytes };
  const cols = t.shape[t.shape.length - 1]!;
  if (t.shape.length !== 2 || elemOffset % cols !== 0)
    throw new MoePruneError('InvalidArgument', `a block-FP8 sub-tensor must be whole rows of a 2-D weight (offset ${elemOffset}, shape ${JSON.stringify(t.shape)})`);
  return { dtype: t.dtype, shape, bytes, scale: { ...t.scale, rowOffset: t.scale.rowOffset + elemOffset / cols } };
}

/** Bytes of a stored tensor in its dtype (reads a file range). */
export async function storedBytes(t: StoredTensor, signal?: AbortSignal): Promise<Uint8Array> {
  return t.bytes instanceof Uint8Array ? t.bytes : t.bytes.source.read(t.bytes.offset, numel(t.shape) * elemBytes(t.dtype), signal);
}

/** Values of a stored tensor as f32 (reads file ranges). */
export async function storedToF32(t: StoredTensor, signal?: AbortSignal): Promise<Float32Array> {
  const values = decodeToF32(t.dtype, await storedBytes(t, signal));
  const s = t.scale;
  return s ? dequantBlockFp8(values, t.shape[t.shape.length - 1]!, s.values, s.cols, s.block, s.rowOffset) : values;
}

/** `t` in a dtype every kernel reads: block-FP8 widened to F32 on the CPU (FP8 embedding tables), others as they are. */
export async function widenBlockFp8(t: StoredTensor, signal?: AbortSignal): Promise<StoredTensor> {
  return t.scale ? f32ToStored(await storedToF32(t, signal), 'F32', t.shape) : t;
}

/**
 * f32 values narrowed to `dtype` (round to nearest even, as the export writes merged experts). FP8 values
 * (means of block-FP8 experts) stay F32: requantising would need new block scales.
 */
export function f32ToStored(values: Float32Array, dtype: StoredDType, shape: Shape): StoredTensor {
  const d = dtype === 'F8_E4M3' ? 'F32' : dtype;
  return { dtype: d, shape, bytes: encodeFromF32(d, values) };
}

/**
 * The tensors of a checkpoint folder, located through the reference's CheckpointWeights (one read of the shard
 * headers), which also widens the dtypes the GPU does not read.
 */
export class CheckpointTensors implements GpuWeightSource {
  private constructor(private readonly f32: CheckpointWeights) {}

  /** Block scales by weight name, read once (tiny next to the weight). */
  private readonly scales = new Map<string, Promise<Float32Array>>();

  static async open(files: FileSet, signal?: AbortSignal): Promise<CheckpointTensors> {
    return new CheckpointTensors(await CheckpointWeights.open(files, signal));
  }

  names(): string[] {
    return this.f32.names();
  }
  /** Tensors holding NaN or ±Inf (a full read: run it only to explain a non-finite result). */
  nonFiniteTensors(signal?: AbortSignal): Promise<NonFiniteTensor[]> {
    return findNonFiniteTensors(this.f32, signal);
  }
  has(name: string): boolean {
    return this.f32.has(name);
  }
  shape(name: string): Shape | undefined {
    return this.f32.shape(name);
  }

  async rows(name: string, start = 0, count?: number, signal?: AbortSignal): Promise<StoredTensor> {
    const f = this.f32.file(name);
    const info = f.info(name);
    const total = info.shape.length === 0 ? 1 : info.shape[0]!;
    const n = count ?? total - start;
    if (start < 0 || n < 0 || start + n > total)
      throw new MoePruneError('InvalidArgument', `rows ${start}..${start + n} out of range for "${name}" with ${total} rows`, f.name);
    const shape = info.shape.length === 0 ? [] : [n, ...info.shape.slice(1)];
    const rowBytes = total === 0 ? 0 : info.byteLength / total;
    const bytes = { source: f.source, offset: f.dataStart + info.begin + start * rowBytes };
    if (KERNEL_DTYPES.has(info.dtype)) return { dtype: info.dtype as WeightDType, shape, bytes };
    const scaleName = `${name}_scale_inv`;
    if (info.dtype === 'F8_E4M3' && info.shape.length === 2 && this.has(scaleName)) {
      const block = this.f32.blockSize;
      const [R, C] = info.shape as [number, number];
      const want = [Math.ceil(R / block[0]), Math.ceil(C / block[1])];
      const got = this.shape(scaleName) ?? [];
      if (got.length !== 2 || got[0] !== want[0] || got[1] !== want[1])
        throw new MoePruneError('InvalidShape', `"${scaleName}" has shape ${JSON.stringify(got)}, expected ${JSON.stringify(want)} for ${block.join('×')} blocks of "${name}"`, f.name);
      let values = this.scales.get(scaleName);
      if (!values) {
        this.scales.set(scaleName, (values = this.f32.read(scaleName, signal)));
        values.catch(() => this.scales.delete(scaleName)); // an aborted read is not cached
      }
      return { dtype: 'F8_E4M3', shape, bytes, scale: { values: await values, cols: want[1]!, block, rowOffset: start } };
    }
    // Other dtypes: widen on the CPU, once per tensor upload.
    const values = await this.f32.readRows(name, start, n, signal);
    return { dtype: 'F32', shape, bytes: new Uint8Array(values.buffer, values.byteOffset, values.byteLength) };
  }
}
