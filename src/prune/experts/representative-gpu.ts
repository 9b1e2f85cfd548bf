/**
 * Closest-to-centroid selection with the distances on the GPU (shaders/rowdist.wgsl): for each chunk of θ the
 * members' chunks go up as [m, C] matrices (in batches that fit one binding), the centroid chunk beside it, and ‖θ_i − θ̄‖² accumulates on the
 * GPU across chunks. Same rule and tie-break as the CPU `selectRepresentative` (lowest index wins).
 */
import { MoePruneError, throwIfAborted } from '../../core/errors.ts';
import type { LongTask } from '../../core/progress.ts';
import type { GpuContext } from '../../gpu/device.ts';
import { rowdistAccumulate } from '../../gpu/kernels/rowdist.ts';
import { STORAGE_USAGE } from '../../gpu/pool.ts';
import { readBuffer } from '../../gpu/pool.ts';
import type { ExpertIndex } from '../../models/types.ts';
import { memberChunks, type ExpertParamSource } from './representative.ts';
import { readAhead } from '../../core/read-ahead.ts';

export async function selectRepresentativeGpu(
  ctx: GpuContext,
  members: readonly ExpertIndex[],
  source: ExpertParamSource,
  opts: LongTask & { readonly maxBindingBytes?: number } = {},
): Promise<{ representative: ExpertIndex; sqDistances: Float64Array }> {
  const sorted = [...members].sort((a, b) => a - b);
  if (sorted.length === 0) throw new MoePruneError('InvalidArgument', 'cannot choose a representative of an empty cluster');
  if (sorted.length <= 2) return { representative: sorted[0]!, sqDistances: new Float64Array(0) };
  const m = sorted.length;
  const accBytes = m * 4;
  const acc = await ctx.pool.acquire(accBytes, STORAGE_USAGE, 'centroid distances');
  ctx.device.queue.writeBuffer(acc, 0, new Float32Array(m));
  // Members go up in batches that fit one binding (a cluster of many large experts would not).
  const maxBinding = opts.maxBindingBytes ?? Math.min(ctx.limits.maxStorageBufferBindingSize, ctx.limits.maxBufferSize);
  // The next chunk's members are read while this chunk is on the GPU.
  const spares: Float32Array[] = [];
  const chunks = readAhead(memberChunks(source, sorted, opts.signal, spares), m);
  let inFlight: Promise<unknown> = Promise.resolve();
  try {
    for (let c = 0; c < source.chunkCount; c++) {
      throwIfAborted(opts.signal);
      const rows: Float32Array[] = [];
      for (const e of sorted) {
        const r = await chunks.next();
        if (r.done) throw new MoePruneError('InvalidArgument', `expert ${e} has no parameter chunk ${c}`);
        rows.push(r.value);
      }
      const len = rows[0]!.length;
      if (rows.some((r) => r.length !== len)) throw new MoePruneError('InvalidArgument', `cluster members have different parameter counts in chunk ${c}`);
      const centroid = new Float32Array(len);
      for (const r of rows) for (let t = 0; t < len; t++) centroid[t] = centroid[t]! + r[t]! / m;
      const perBatch = Math.max(1, Math.floor(maxBinding / (len * 4)));
      const cb = await ctx.pool.acquire(centroid.byteLength, STORAGE_USAGE, 'centroid chunk');
      try {
        ctx.device.queue.writeBuffer(cb, 0, centroid);
        for (let first = 0; first < m; first += perBatch) {
          const batch = rows.slice(first, first + perBatch);
          const xBytes = batch.length * len * 4;
          const xb = await ctx.pool.acquire(xBytes, STORAGE_USAGE, 'cluster chunk');
          try {
            // Row by row into one [batch, len] buffer: no host-side copy of the batch.
            batch.forEach((r, i) => ctx.device.queue.writeBuffer(xb, i * len * 4, r as Float32Array<ArrayBuffer>));
            await rowdistAccumulate(ctx, { buffer: xb, byteLength: xBytes }, { buffer: cb, byteLength: centroid.byteLength }, { buffer: acc, byteLength: accBytes }, { m: batch.length, dc: len, accOffset: first });
          } finally {
            ctx.pool.release(xb);
          }
        }
      } finally {
        ctx.pool.release(cb);
      }
      // writeBuffer has copied them: the source may refill these arrays.
      spares.push(...rows);
      // At most two chunks queued on the GPU: each holds its uploads in staging memory until it runs, and a slow
      // (software) adapter would otherwise collect a whole layer of them.
      await inFlight;
      inFlight = ctx.device.queue.onSubmittedWorkDone();
      opts.onProgress?.({ phase: 'choosing representatives', done: c + 1, total: source.chunkCount, unit: 'steps' });
    }
    const d = new Float32Array((await readBuffer(ctx, acc, accBytes)).buffer.slice(0, accBytes));
    let best = 0;
    for (let i = 1; i < m; i++) if (d[i]! < d[best]!) best = i;
    return { representative: sorted[best]!, sqDistances: Float64Array.from(d) };
  } finally {
    await chunks.return(undefined);
    ctx.pool.release(acc);
  }
}
