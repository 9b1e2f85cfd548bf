import { expect, it } from 'vitest';
import { describeGpu } from '../../../tests/gpu-harness.ts';
import { memoryParamSource, selectRepresentative } from './representative.ts';
import { selectRepresentativeGpu } from './representative-gpu.ts';

/** 9 experts of 1001 parameters; experts 2..6 are noisy copies of one vector, expert 4 the least noisy. */
function experts(): Float32Array[] {
  let s = 5;
  const r = () => ((s = (s * 1664525 + 1013904223) >>> 0) / 4294967296 - 0.5);
  const base = Float32Array.from({ length: 1001 }, r);
  return Array.from({ length: 9 }, (_, e) => Float32Array.from(base, (v) => v + r() * (e === 4 ? 0.01 : 0.2)));
}

describeGpu('closest-to-centroid representative on the GPU', (gpu) => {
  it('picks the same member as the CPU rule, with the same distances, streamed in chunks', async () => {
    const src = memoryParamSource(experts(), 300); // 4 chunks, the last one short
    const members = [2, 3, 4, 5, 6];
    const cpu = await selectRepresentative(members, src);
    const g = await selectRepresentativeGpu(gpu(), members, src);
    expect(g.representative).toBe(4);
    expect(g.representative).toBe(cpu.representative);
    for (let i = 0; i < members.length; i++) expect(g.sqDistances[i]).toBeCloseTo(cpu.sqDistances[i]!, 3);
  });

  it('sends members in batches when a cluster does not fit one binding', async () => {
    const src = memoryParamSource(experts(), 1001);
    const members = [0, 1, 2, 3, 4, 5, 6, 7, 8];
    const whole = await selectRepresentativeGpu(gpu(), members, src);
    const batched = await selectRepresentativeGpu(gpu(), members, src, { maxBindingBytes: 2 * 1001 * 4 }); // 2 members per batch
    expect(batched.representative).toBe(whole.representative);
    expect([...batched.sqDistances]).toEqual([...whole.sqDistances]);
  });

  it('pairs are a tie: the lower index, with no GPU work', async () => {
    const g = await selectRepresentativeGpu(gpu(), [7, 3], memoryParamSource(experts(), 64));
    expect(g).toEqual({ representative: 3, sqDistances: new Float64Array(0) });
  });
});
