import { MoePruneError } from '../core/errors.ts';

export interface PoolStats {
  /** Bytes of every buffer the pool has created and not destroyed (in use + idle). */
  readonly bytesLive: number;
  /** Bytes of buffers currently handed out. */
  readonly bytesInUse: number;
  /** Highest `bytesLive` seen since creation or the last `resetPeak`. */
  readonly peakBytes: number;
  readonly buffersLive: number;
  readonly allocations: number;
  readonly reuses: number;
}

/**
 * Rounds a size up to its bucket: powers of two up to 1 MiB, then steps of 1/8 of the enclosing power of two,
 * so that large tensors waste at most 12.5 % while similar sizes still share buffers.
 */
export function bucketSize(bytes: number): number {
  const min = 256;
  if (bytes <= min) return min;
  const pow = 2 ** Math.ceil(Math.log2(bytes));
  if (pow <= 1 << 20) return pow;
  const step = pow / 16;
  return Math.ceil(bytes / step) * step;
}

/**
 * GPU buffers recycled by (size bucket, usage). Release a buffer only after the command buffer that uses it
 * was submitted: later queue writes are ordered after that submission, so reuse is then safe.
 */
export class BufferPool {
  private readonly free = new Map<string, GPUBuffer[]>();
  private readonly owned = new Set<GPUBuffer>();
  private readonly inUse = new Set<GPUBuffer>();
  private live = 0;
  private used = 0;
  private peak = 0;
  private allocations = 0;
  private reuses = 0;

  constructor(
    private readonly device: GPUDevice,
    private readonly maxBufferSize: number,
  ) {}

  /**
   * A buffer of at least `bytes` bytes with exactly `usage`. The buffer may be larger (bucket size); its
   * contents are undefined. Allocation errors become GpuOutOfMemory / GpuValidation errors.
   */
  async acquire(bytes: number, usage: GPUBufferUsageFlags, label = 'pooled'): Promise<GPUBuffer> {
    if (!Number.isSafeInteger(bytes) || bytes < 0) throw new MoePruneError('InvalidArgument', `bad GPU buffer size ${bytes}`);
    if (bytes > this.maxBufferSize)
      throw new MoePruneError(
        'GpuOutOfMemory',
        `a ${label} buffer of ${bytes} bytes exceeds this GPU's maxBufferSize of ${this.maxBufferSize} bytes; split the tensor into parts`,
      );
    // Buckets never exceed the adapter's limit: a request just under it gets a buffer of exactly the limit.
    const size = Math.min(bucketSize(Math.max(bytes, 4)), Math.floor(this.maxBufferSize / 4) * 4);
    const key = `${size}:${usage}`;
    const list = this.free.get(key);
    const reused = list?.pop();
    if (reused) {
      this.reuses++;
      this.markUsed(reused);
      return reused;
    }
    // Push, create and pop with no await in between: error scopes are one stack per device, and concurrent
    // acquires (layer weights upload in parallel) would otherwise pop each other's scopes.
    this.device.pushErrorScope('out-of-memory');
    this.device.pushErrorScope('validation');
    const buf = this.device.createBuffer({ size, usage, label });
    const popped = [this.device.popErrorScope(), this.device.popErrorScope()];
    const [validation, oom] = await Promise.all(popped);
    if (oom || validation) {
      buf.destroy();
      if (oom)
        throw new MoePruneError(
          'GpuOutOfMemory',
          `allocating a ${size}-byte ${label} buffer: the GPU is out of memory (${oom.message}); close other GPU programs or use a smaller model/chunk`,
        );
      throw new MoePruneError('GpuValidation', `allocating a ${size}-byte ${label} buffer: ${validation!.message}`);
    }
    this.allocations++;
    this.owned.add(buf);
    this.live += size;
    this.peak = Math.max(this.peak, this.live);
    this.markUsed(buf);
    return buf;
  }

  private markUsed(buf: GPUBuffer): void {
    this.inUse.add(buf);
    this.used += buf.size;
  }

  /** Returns a buffer to the pool. Buffers not made by this pool are destroyed instead. */
  release(buf: GPUBuffer): void {
    if (!this.owned.has(buf)) {
      buf.destroy();
      return;
    }
    if (!this.inUse.delete(buf)) return; // double release is harmless
    this.used -= buf.size;
    if (buf.mapState !== 'unmapped') buf.unmap();
    const key = `${buf.size}:${buf.usage}`;
    let list = this.free.get(key);
    if (!list) this.free.set(key, (list = []));
    list.push(buf);
  }

  /** Destroys idle buffers (e.g. between pipeline stages), lowering `bytesLive`. */
  trim(): void {
    for (const list of this.free.values()) for (const b of list) this.forget(b);
    this.free.clear();
  }

  /** Destroys every buffer, including those still in use. */
  destroyAll(): void {
    this.trim();
    for (const b of [...this.inUse]) this.forget(b);
    this.inUse.clear();
    this.used = 0;
  }

  private forget(b: GPUBuffer): void {
    if (!this.owned.delete(b)) return;
    this.live -= b.size;
    b.destroy();
  }

  resetPeak(): void {
    this.peak = this.live;
  }

  stats(): PoolStats {
    return {
      bytesLive: this.live,
      bytesInUse: this.used,
      peakBytes: this.peak,
      buffersLive: this.owned.size,
      allocations: this.allocations,
      reuses: this.reuses,
    };
  }
}

// Numeric flag values (from the WebGPU spec) rather than GPUBufferUsage, which Node only has after the
// `webgpu` globals were installed.
/** Usage flags for storage buffers that kernels read and write and that can be copied in and out. */
export const STORAGE_USAGE = 0x0080 /* STORAGE */ | 0x0008 /* COPY_DST */ | 0x0004; /* COPY_SRC */
/** Usage flags for per-dispatch parameter blocks. */
export const UNIFORM_USAGE = 0x0040 /* UNIFORM */ | 0x0008; /* COPY_DST */
const MAP_READ_USAGE = 0x0001 /* MAP_READ */ | 0x0008; /* COPY_DST */

/**
 * Copies `bytes` bytes of `buf` (from `offset`) back to the CPU through a staging buffer.
 * The buffer needs COPY_SRC usage. Returns exactly `bytes` bytes.
 */
export async function readBuffer(
  ctx: { device: GPUDevice; pool: BufferPool },
  buf: GPUBuffer,
  bytes: number,
  offset = 0,
): Promise<Uint8Array> {
  if (offset % 4 !== 0) throw new MoePruneError('InvalidArgument', `readBuffer offset ${offset} is not a multiple of 4`);
  const padded = Math.ceil(bytes / 4) * 4;
  if (offset + padded > buf.size)
    throw new MoePruneError('InvalidArgument', `readBuffer wants bytes ${offset}..${offset + padded} of a ${buf.size}-byte buffer`);
  if (padded === 0) return new Uint8Array(0);
  const staging = await ctx.pool.acquire(padded, MAP_READ_USAGE, 'readback');
  try {
    const enc = ctx.device.createCommandEncoder({ label: 'readback' });
    enc.copyBufferToBuffer(buf, offset, staging, 0, padded);
    ctx.device.queue.submit([enc.finish()]);
    await staging.mapAsync(0x0001 /* GPUMapMode.READ */, 0, padded);
    return new Uint8Array(staging.getMappedRange(0, padded).slice(0, bytes));
  } finally {
    ctx.pool.release(staging);
  }
}
