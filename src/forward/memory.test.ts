import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { writeSyntheticMixtral } from '../../bench/synthetic.ts';
import { describeGpu } from '../../tests/gpu-harness.ts';
import { openNodeFileSet } from '../cli/node-files.ts';
import { GpuForwardEngine } from './engine.ts';

const dir = mkdtempSync(join(tmpdir(), 'moe-prune-depth-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Peak GPU memory of a calibration pass over `layers` identical decoder layers. */
async function peak(gpu: Parameters<typeof GpuForwardEngine.open>[0], layers: number): Promise<{ pool: number; layerWeights: number; weightsOnDisk: number }> {
  const shape = { layers, experts: 4, hidden: 64, intermediate: 128, vocab: 256, topK: 2, shardBytes: 1 << 20 };
  const { bytes } = await writeSyntheticMixtral(join(dir, `l${layers}`), shape, 3);
  const engine = await GpuForwardEngine.open(gpu, await openNodeFileSet(join(dir, `l${layers}`)));
  const ids = Array.from({ length: 2 }, (_, w) => Int32Array.from({ length: 16 }, (_, t) => (w * 31 + t * 7) % 256));
  gpu.pool.trim(); // free buffers left by an earlier run would count as held
  const r = await engine.forward(ids, { output: 'nll', stats: true });
  return { pool: r.peakPoolBytes, layerWeights: r.peakLayerWeightBytes, weightsOnDisk: bytes };
}

describeGpu('only one decoder layer is on the GPU', (gpu) => {
  it('peak GPU memory does not grow with depth (2 vs 8 identical layers)', async () => {
    const a = await peak(gpu(), 2);
    const b = await peak(gpu(), 8);
    expect(b.weightsOnDisk / a.weightsOnDisk).toBeGreaterThan(3);
    expect(b.layerWeights).toBe(a.layerWeights);
    // The same per-layer working set; embedding and lm_head are the same size in both.
    expect(b.pool).toBeLessThanOrEqual(a.pool * 1.05);
    // And far below holding every layer's weights at once.
    expect(b.pool).toBeLessThan(b.weightsOnDisk / 2);
  });
});
