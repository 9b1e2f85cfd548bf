/**
 * Stage 2's score-and-mask kernel: rowMask (Wanda, one mask per output row) on a BF16 weight, as weight bytes
 * read per second, against a plain copy kernel over the same bytes in the same run.
 */
import type { GpuContext } from '../src/gpu/device.ts';
import type { BufferView } from '../src/gpu/dispatch.ts';
import { encodeFromF32 } from '../src/formats/dtype.ts';
import { rowMask } from '../src/gpu/kernels/prune-mask.ts';
import { STORAGE_USAGE } from '../src/gpu/pool.ts';
import { releaseTensor, uploadTensor } from '../src/gpu/tensor.ts';
import type { BenchRow } from './run.ts';

/** Deterministic values in about [-amp, amp). */
function data(n: number, seed: number, amp: number): Float32Array {
  let s = seed >>> 0 || 1;
  return Float32Array.from({ length: n }, () => ((s = (s * 1103515245 + 12345) >>> 0) / 4294967296 - 0.5) * 2 * amp);
}

export async function benchPruneMask(
  gpu: GpuContext, copyThrough: (gpu: GpuContext, src: BufferView) => Promise<void>, out = 2048, inDim = 2048, repeats = 3,
): Promise<BenchRow[]> {
  const w = await uploadTensor(gpu, encodeFromF32('BF16', data(out * inDim, 7, 0.05)), 'BF16', [out, inDim]);
  const normSq = Float32Array.from(data(inDim, 8, 1), (v) => v * v * 1000);
  const nv = { buffer: await gpu.pool.acquire(inDim * 4, STORAGE_USAGE, 'bench normSq'), byteLength: inDim * 4 };
  gpu.device.queue.writeBuffer(nv.buffer, 0, normSq);
  try {
    const bytes = w.parts.reduce((t, p) => t + p.byteLength, 0);
    const select = async (): Promise<void> => {
      const mask = await rowMask(gpu, { w, normSq: nv, prunePerRow: inDim / 2 });
      await gpu.device.queue.onSubmittedWorkDone();
      gpu.pool.release(mask.buffer);
    };
    const copy = async (): Promise<void> => {
      for (const p of w.parts) await copyThrough(gpu, p);
    };
    await select(); // pipeline creation is not the kernel's speed
    await copy();
    // Alternated, best of each: a shared machine's load drifts during the run.
    let [selectMs, copyMs] = [Infinity, Infinity];
    for (let i = 0; i < repeats; i++) {
      let t = performance.now();
      await select();
      selectMs = Math.min(selectMs, performance.now() - t);
      t = performance.now();
      await copy();
      copyMs = Math.min(copyMs, performance.now() - t);
    }
    const mbps = bytes / 2 ** 20 / (selectMs / 1000);
    return [
      {
        name: `stage 2: score-and-mask kernel (Wanda per-row, BF16 W [${out}×${inDim}], 50 % per row)`,
        value: mbps,
        unit: 'MB/s',
        ratio: copyMs / selectMs,
        ratioOf: 'a plain copy kernel over the same weight bytes (MB/s)',
        note: `weight bytes read by rowMask; best of ${repeats}`,
      },
    ];
  } finally {
    releaseTensor(gpu, w);
    gpu.pool.release(nv.buffer);
  }
}
