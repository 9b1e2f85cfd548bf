import { MoePruneError, throwIfAborted } from '../core/errors.ts';
import type { LongTask } from '../core/progress.ts';
import type { ByteSource } from '../formats/bytes.ts';
import { byteSize, dtypeBits, type DType, type Shape } from '../formats/dtype.ts';
import type { GpuContext } from './device.ts';
import { readBuffer, STORAGE_USAGE } from './pool.ts';

/** Rows [rowStart, rowStart + rows) of dim 0, stored from byte 0 of `buffer` (padded to 4 bytes). */
export interface GpuTensorPart {
  readonly buffer: GPUBuffer;
  readonly rowStart: number;
  readonly rows: number;
  /** Meaningful bytes in the buffer: rows × rowBytes (the buffer itself may be larger). */
  readonly byteLength: number;
}

/** A tensor on the GPU, split along dim 0 into parts that each fit one storage binding. */
export interface GpuTensor {
  readonly dtype: DType;
  readonly shape: Shape;
  /** Bytes of one dim-0 row (one element for 1-D tensors). */
  readonly rowBytes: number;
  readonly parts: readonly GpuTensorPart[];
}

/** Where a tensor's bytes come from: memory, or a range of a (possibly huge) file read in pieces. */
export type TensorBytes = Uint8Array | { readonly source: ByteSource; readonly offset: number };

export interface SplitOptions {
  /** Upper bound for one part's bytes; defaults to the device's binding and buffer limits. Tests lower it. */
  readonly maxBindingBytes?: number;
}

/** Largest byte count one part may hold on this device (multiple of 4, as storage bindings require). */
export function maxPartBytes(ctx: GpuContext, opts: SplitOptions = {}): number {
  const device = Math.min(ctx.limits.maxStorageBufferBindingSize, ctx.limits.maxBufferSize);
  const limit = Math.min(device, opts.maxBindingBytes ?? Infinity);
  return Math.floor(limit / 4) * 4;
}

/** Rows per dim 0 and bytes per row; a scalar is one row. Sub-byte rows cannot be split and are refused. */
export function rowLayout(dtype: DType, shape: Shape, name = 'tensor'): { rows: number; rowBytes: number } {
  const rows = shape.length === 0 ? 1 : shape[0]!;
  const rowElems = shape.slice(1).reduce((a, b) => a * b, 1);
  const bits = rowElems * dtypeBits(dtype);
  if (bits % 8 !== 0) throw new MoePruneError('UnsupportedDtype', `${dtype} rows of ${rowElems} elements are not whole bytes`, name);
  return { rows, rowBytes: bits / 8 };
}

/** Splits `rows` rows of `rowBytes` bytes into consecutive [rowStart, rows] ranges of at most `maxBytes`. */
export function planParts(rows: number, rowBytes: number, maxBytes: number, name = 'tensor'): Array<{ rowStart: number; rows: number }> {
  if (rowBytes > maxBytes)
    throw new MoePruneError(
      'InvalidShape',
      `one row is ${rowBytes} bytes but this GPU binds at most ${maxBytes} bytes per buffer; the tensor cannot be split along dim 0`,
      name,
    );
  const perPart = rowBytes === 0 ? Math.max(rows, 1) : Math.floor(maxBytes / rowBytes);
  const out: Array<{ rowStart: number; rows: number }> = [];
  for (let r = 0; r < rows; r += perPart) out.push({ rowStart: r, rows: Math.min(perPart, rows - r) });
  if (out.length === 0) out.push({ rowStart: 0, rows: 0 });
  return out;
}

/** Pieces a part is written in, so a large file range is never read whole into memory. */
const UPLOAD_CHUNK = 16 << 20;

export interface UploadOptions extends SplitOptions, LongTask {
  readonly name?: string;
}

/**
 * Uploads a tensor's raw bytes (any whole-byte dtype, unconverted) into one or more storage buffers split along
 * dim 0 so that each part fits the device's binding and buffer limits. Kernels (e.g. unpack) run per part.
 */
export async function uploadTensor(ctx: GpuContext, src: TensorBytes, dtype: DType, shape: Shape, opts: UploadOptions = {}): Promise<GpuTensor> {
  const name = opts.name ?? ('source' in src ? src.source.name : 'tensor');
  const total = byteSize(dtype, shape);
  if (src instanceof Uint8Array && src.byteLength !== total)
    throw new MoePruneError('InvalidShape', `${dtype}${JSON.stringify(shape)} needs ${total} bytes but ${src.byteLength} were given`, name);
  const { rows, rowBytes } = rowLayout(dtype, shape, name);
  const plan = planParts(rows, rowBytes, maxPartBytes(ctx, opts), name);

  const parts: GpuTensorPart[] = [];
  let done = 0;
  try {
    for (const p of plan) {
      const byteLength = p.rows * rowBytes;
      const buffer = await ctx.pool.acquire(Math.max(4, byteLength), STORAGE_USAGE, name);
      parts.push({ buffer, rowStart: p.rowStart, rows: p.rows, byteLength });
      const base = p.rowStart * rowBytes;
      for (let off = 0; off < byteLength; off += UPLOAD_CHUNK) {
        throwIfAborted(opts.signal);
        const len = Math.min(UPLOAD_CHUNK, byteLength - off);
        const chunk = src instanceof Uint8Array ? src.subarray(base + off, base + off + len) : await src.source.read(src.offset + base + off, len, opts.signal);
        writePadded(ctx.device.queue, buffer, off, chunk);
        done += len;
        opts.onProgress?.({ phase: 'upload to GPU', done, total, unit: 'bytes', file: name });
      }
    }
  } catch (e) {
    for (const p of parts) ctx.pool.release(p.buffer);
    throw e;
  }
  return { dtype, shape: [...shape], rowBytes, parts };
}

/** queue.writeBuffer needs a 4-byte multiple size and (for offset views) aligned data; pad the tail with zeros. */
function writePadded(queue: GPUQueue, buffer: GPUBuffer, offset: number, bytes: Uint8Array): void {
  if (bytes.byteLength % 4 === 0 && bytes.byteOffset % 4 === 0) {
    queue.writeBuffer(buffer, offset, bytes as Uint8Array<ArrayBuffer>);
    return;
  }
  const padded = new Uint8Array(Math.ceil(bytes.byteLength / 4) * 4);
  padded.set(bytes);
  queue.writeBuffer(buffer, offset, padded);
}

/** Reads a whole tensor back (tests, small results). Large tensors should be read part by part. */
export async function readTensor(ctx: GpuContext, t: GpuTensor): Promise<Uint8Array> {
  const out = new Uint8Array(t.parts.reduce((a, p) => a + p.byteLength, 0));
  for (const p of t.parts) out.set(await readBuffer(ctx, p.buffer, p.byteLength), p.rowStart * t.rowBytes);
  return out;
}

/** Reads an F32 tensor back as numbers. */
export async function readTensorF32(ctx: GpuContext, t: GpuTensor): Promise<Float32Array> {
  if (t.dtype !== 'F32') throw new MoePruneError('InvalidArgument', `readTensorF32 needs an F32 tensor, got ${t.dtype}`);
  const bytes = await readTensor(ctx, t);
  return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
}

/** Returns the tensor's buffers to the pool; the tensor must not be used afterwards. */
export function releaseTensor(ctx: GpuContext, t: GpuTensor): void {
  for (const p of t.parts) ctx.pool.release(p.buffer);
}
