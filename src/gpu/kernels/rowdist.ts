import { MoePruneError } from '../../core/errors.ts';
import type { GpuContext } from '../device.ts';
import { submitDispatches, uniformParams, workgroupSize, type BufferView } from '../dispatch.ts';
import { STORAGE_USAGE } from '../pool.ts';
import type { GpuTensor } from '../tensor.ts';
import code from '../../../shaders/rowdist.wgsl?raw';

/** Elements per invocation per segment; with 64 invocations a workgroup reduces 4096 elements per tree. */
const ITEMS = 64;

/** CPU reference: acc[accOffset + r] += Σ_k (x[xOffset + r*rowStride + k] - c[cOffset + k])² for k < dc. */
export function rowdistReference(a: RowdistChunk & { x: Float32Array; c: Float32Array; acc: Float32Array }): void {
  const stride = a.rowStride ?? a.dc;
  for (let r = 0; r < a.m; r++) {
    let s = 0;
    for (let k = 0; k < a.dc; k++) {
      const diff = a.x[(a.xOffset ?? 0) + r * stride + k]! - a.c[(a.cOffset ?? 0) + k]!;
      s += diff * diff;
    }
    a.acc[(a.accOffset ?? 0) + r]! += s;
  }
}

/** Shape of one chunk: `m` rows of `dc` columns; offsets are in f32 elements. */
export interface RowdistChunk {
  readonly m: number;
  readonly dc: number;
  /** Elements between rows in x; defaults to dc (rows stored back to back). */
  readonly rowStride?: number;
  readonly xOffset?: number;
  readonly cOffset?: number;
  readonly accOffset?: number;
}

/**
 * Adds the squared distance of each of m row-chunks of `x` to the chunk of `c` into `acc`. Call it once per
 * chunk (columns of a matrix, or expert weights streamed piece by piece); the sum builds up on the GPU.
 */
export async function rowdistAccumulate(
  ctx: GpuContext,
  x: BufferView,
  c: BufferView,
  acc: BufferView,
  chunk: RowdistChunk,
): Promise<void> {
  const { m, dc } = chunk;
  const stride = chunk.rowStride ?? dc;
  const xOff = chunk.xOffset ?? 0;
  const cOff = chunk.cOffset ?? 0;
  const accOff = chunk.accOffset ?? 0;
  if (m === 0 || dc === 0) return;
  if (xOff + (m - 1) * stride + dc > x.byteLength / 4 || cOff + dc > c.byteLength / 4 || accOff + m > acc.byteLength / 4)
    throw new MoePruneError('InvalidArgument', `rowdist chunk ${JSON.stringify(chunk)} reaches past its buffers`);
  if (m > ctx.limits.maxComputeWorkgroupsPerDimension) throw new MoePruneError('InvalidArgument', `rowdist chunk has ${m} rows; split it`);
  const wg = workgroupSize(ctx, 64);
  const nseg = Math.ceil(dc / (wg * ITEMS));
  if (nseg > ctx.limits.maxComputeWorkgroupsPerDimension) throw new MoePruneError('InvalidArgument', `rowdist chunk of ${dc} columns is too long; split it`);
  const [partial, finish] = await Promise.all([
    ctx.pipelines.get({ name: 'rowdist', code, entryPoint: 'partial', constants: { WG: wg, ITEMS } }),
    ctx.pipelines.get({ name: 'rowdist', code, entryPoint: 'finish', constants: { WG: wg, ITEMS } }),
  ]);
  const partialsBytes = m * nseg * 4;
  const partials = await ctx.pool.acquire(partialsBytes, STORAGE_USAGE, 'rowdist partials');
  const u = await uniformParams(ctx, [m, dc, stride, xOff, cOff, accOff, nseg]);
  const pv = { buffer: partials, byteLength: partialsBytes };
  try {
    // Auto layouts only hold the bindings each entry point uses, in order of binding number.
    await submitDispatches(ctx, 'rowdist', [
      { pipeline: partial, bindings: [x, c, pv, u], workgroups: [nseg, m] },
      { pipeline: finish, bindings: [undefined, undefined, pv, u, acc], workgroups: [Math.ceil(m / 64)] },
    ]);
  } finally {
    ctx.pool.release(partials);
    ctx.pool.release(u);
  }
}

/**
 * Squared distance of every row of an F32 matrix x [n, d] (any number of parts) to the F32 vector c [d],
 * added into `acc` (n f32; a fresh zeroed buffer when omitted). Returns acc.
 */
export async function rowdist(ctx: GpuContext, x: GpuTensor, c: GpuTensor, acc?: BufferView): Promise<BufferView> {
  if (x.dtype !== 'F32' || c.dtype !== 'F32' || x.shape.length !== 2 || c.shape.length !== 1 || c.shape[0] !== x.shape[1])
    throw new MoePruneError('InvalidArgument', `rowdist needs F32 x [n, d] and c [d], got ${x.dtype}${JSON.stringify(x.shape)} and ${c.dtype}${JSON.stringify(c.shape)}`);
  if (c.parts.length !== 1) throw new MoePruneError('InvalidArgument', `rowdist needs c in one GPU part`);
  const [n, d] = x.shape as [number, number];
  let out = acc;
  if (!out) {
    const byteLength = Math.max(4, n * 4);
    const buffer = await ctx.pool.acquire(byteLength, STORAGE_USAGE, 'rowdist acc');
    ctx.device.queue.writeBuffer(buffer, 0, new Float32Array(byteLength / 4));
    out = { buffer, byteLength };
  }
  for (const part of x.parts) await rowdistAccumulate(ctx, part, c.parts[0]!, out, { m: part.rows, dc: d, accOffset: part.rowStart });
  return out;
}
