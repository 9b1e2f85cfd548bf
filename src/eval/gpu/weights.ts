/**
 * Tensors for the GPU engine in a dtype the kernels read: F32/F16/BF16 stay as stored (bytes go straight
 * from the file to the GPU, bf16 stays packed); block-FP8 weights are dequantised on the CPU to F32 per
 * tensor (the kernels have no FP8 path). Nothing is read before the engine asks for it.
 */
import { MoePruneError } from '../../core/errors.ts';
import { requireFile, type FileSet } from '../../formats/bytes.ts';
import { decodeToF32, encodeFromF32, type Shape } from '../../formats/dtype.ts';
import { INDEX_FILE, readShardIndex, SINGLE_FILE } from '../../formats/safetensors/index-file.ts';
import { openSafetensors, type SafetensorsFile } from '../../formats/safetensors/reader.ts';
import type { WeightDType } from '../../gpu/kernels/kernel-args.ts';
import type { TensorBytes } from '../../gpu/tensor.ts';
import { CheckpointWeights } from '../reference/weights.ts';

/** A tensor (or rows of one) ready to upload: bytes in `dtype`, either in memory or a range of a file. */
export interface StoredTensor {
  readonly dtype: WeightDType;
  readonly shape: Shape;
  readonly bytes: TensorBytes;
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
export function elemBytes(dtype: WeightDType): number {
  return dtype === 'F32' ? 4 : 2;
}

/** A sub-block of a stored tensor: `shape` elements starting `elemOffset` elements in (contiguous). */
export function subTensor(t: StoredTensor, elemOffset: number, shape: Shape): StoredTensor {
  const b = elemOffset * elemBytes(t.dtype);
  const n = shape.reduce((a, x) => a * x, 1) * elemBytes(t.dtype);
  const bytes = t.bytes instanceof Uint8Array ? t.bytes.subarray(b, b + n) : { source: t.bytes.source, offset: t.bytes.offset + b };
  return { dtype: t.dtype, shape, bytes };
}

/** Values of a stored tensor as f32 (reads file ranges). */
export async function storedToF32(t: StoredTensor, signal?: AbortSignal): Promise<Float32Array> {
  const n = t.shape.reduce((a, x) => a * x, 1) * elemBytes(t.dtype);
  const bytes = t.bytes instanceof Uint8Array ? t.bytes : await t.bytes.source.read(t.bytes.offset, n, signal);
  return decodeToF32(t.dtype, bytes);
}

/** f32 values narrowed to `dtype` (round to nearest even, as the export writes merged experts). */
export function f32ToStored(values: Float32Array, dtype: WeightDType, shape: Shape): StoredTensor {
  return { dtype, shape, bytes: encodeFromF32(dtype, values) };
}

/** The tensors of a checkpoint folder (sharded with an index, a single model.safetensors, or loose shards). */
export class CheckpointTensors implements GpuWeightSource {
  private constructor(
    private readonly where: ReadonlyMap<string, SafetensorsFile>,
    /** Dequantising reader for block-FP8 weights. */
    private readonly f32: CheckpointWeights,
  ) {}

  static async open(files: FileSet, signal?: AbortSignal): Promise<CheckpointTensors> {
    let shards: string[];
    if (files.get(INDEX_FILE)) shards = [...new Set((await readShardIndex(requireFile(files, INDEX_FILE), signal)).weightMap.values())];
    else if (files.get(SINGLE_FILE)) shards = [SINGLE_FILE];
    else shards = files.names().filter((n) => n.endsWith('.safetensors'));
    if (!shards.length) throw new MoePruneError('MissingFile', `the checkpoint has no ${INDEX_FILE}, ${SINGLE_FILE} or .safetensors file`);
    const where = new Map<string, SafetensorsFile>();
    for (const s of shards.sort()) {
      const st = await openSafetensors(requireFile(files, s), signal);
      for (const name of st.tensors.keys()) where.set(name, st);
    }
    return new CheckpointTensors(where, await CheckpointWeights.open(files, signal));
  }

  names(): string[] {
    return [...this.where.keys()];
  }
  has(name: string): boolean {
    return this.where.has(name);
  }
  shape(name: string): Shape | undefined {
    return this.where.get(name)?.tensors.get(name)?.shape;
  }

  async rows(name: string, start = 0, count?: number, signal?: AbortSignal): Promise<StoredTensor> {
    const f = this.where.get(name);
    if (!f) throw new MoePruneError('MissingTensor', `the checkpoint has no tensor "${name}"`);
    const info = f.info(name);
    const total = info.shape.length === 0 ? 1 : info.shape[0]!;
    const n = count ?? total - start;
    if (start < 0 || n < 0 || start + n > total)
      throw new MoePruneError('InvalidArgument', `rows ${start}..${start + n} out of range for "${name}" with ${total} rows`, f.name);
    const shape = info.shape.length === 0 ? [] : [n, ...info.shape.slice(1)];
    if (KERNEL_DTYPES.has(info.dtype)) {
      const rowBytes = total === 0 ? 0 : info.byteLength / total;
      return { dtype: info.dtype as WeightDType, shape, bytes: { source: f.source, offset: f.dataStart + info.begin + start * rowBytes } };
    }
    // FP8 (with block scales) and other dtypes: widen on the CPU, once per tensor upload.
    const values = await this.f32.readRows(name, start, n, signal);
    return { dtype: 'F32', shape, bytes: new Uint8Array(values.buffer, values.byteOffset, values.byteLength) };
  }
}
