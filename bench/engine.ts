/**
 * The streaming forward engine: calibration-pass throughput, and peak GPU (buffer pool) and JS memory for a
 * 4-layer and a 16-layer checkpoint whose layers are identical in size. Only one layer's weights are ever on the
 * GPU, so the 16-layer peaks should match the 4-layer ones (ratio ≈ 1), while the weights on disk grow 4×.
 */
import { join } from 'node:path';
import { openNodeFileSet } from '../src/cli/node-files.ts';
import type { GpuContext } from '../src/gpu/device.ts';
import { GpuForwardEngine } from '../src/forward/engine.ts';
import { writeSyntheticMixtral, type SyntheticShape } from './synthetic.ts';

export interface EngineBenchResult {
  readonly layers: number;
  readonly tokens: number;
  readonly seconds: number;
  readonly tokensPerSecond: number;
  readonly peakGpuBytes: number;
  readonly peakJsHeapBytes: number;
  readonly checkpointBytes: number;
}

/** Highest heap use seen while `f` runs (sampled every 10 ms and at the end). */
async function withHeapPeak<T>(f: () => Promise<T>): Promise<{ value: T; peak: number }> {
  let peak = process.memoryUsage().heapUsed;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().heapUsed)), 10);
  try {
    const value = await f();
    peak = Math.max(peak, process.memoryUsage().heapUsed);
    return { value, peak };
  } finally {
    clearInterval(timer);
  }
}

export async function benchEngine(gpu: GpuContext, workDir: string, layers: number, windows = 8, seqLen = 64): Promise<EngineBenchResult> {
  const shape: SyntheticShape = { layers, experts: 8, hidden: 256, intermediate: 512, vocab: 2048, topK: 2, shardBytes: 16 << 20 };
  const dir = join(workDir, `engine-${layers}`);
  const { bytes } = await writeSyntheticMixtral(dir, shape, 7);
  const engine = await GpuForwardEngine.open(gpu, await openNodeFileSet(dir));
  let s = 99;
  const ids = Array.from({ length: windows }, () => Int32Array.from({ length: seqLen }, () => (s = (s * 1103515245 + 12345) >>> 0) % shape.vocab));
  await engine.forward(ids.slice(0, 1), { output: 'none' }); // warm-up: pipeline compilation
  global.gc?.();
  gpu.pool.trim(); // buffers left free by the previous run must not count as this run's memory
  const t = performance.now();
  const { value: r, peak } = await withHeapPeak(() => engine.forward(ids, { output: 'nll', stats: true }));
  const seconds = (performance.now() - t) / 1000;
  return { layers, tokens: windows * seqLen, seconds, tokensPerSecond: (windows * seqLen) / seconds, peakGpuBytes: r.peakPoolBytes, peakJsHeapBytes: peak, checkpointBytes: bytes };
}
