import { describe, expect, it } from 'vitest';
import { memoryParamSource, selectRepresentative, type ExpertParamSource } from '../prune/experts/representative.ts';
import { chunkSqDistances, type ParamValues } from '../prune/experts/sq-distances.ts';
import { openCpuWorkers, representativeWorkers } from './cpu-workers.ts';
import type { GpuAdapterSummary } from '../gpu/device.ts';
import { refilling, thetas } from '../../tests/expert-params.ts';

describe('CPU worker threads for the representatives (src/cli/cpu-workers.ts)', () => {
  const th = thetas(7, 5000, 23);

  it('a chunk on a worker (float32 or bfloat16 bits) gives the bits chunkSqDistances gives here', async () => {
    const w = openCpuWorkers(1);
    try {
      const place = <T extends ParamValues>(x: T): T => {
        const y = w.allocLike(x);
        y.set(x);
        return y;
      };
      const xs = th.slice(0, 5).map(place);
      expect(w.shares(xs[0]!)).toBe(true);
      expect(w.shares(th[0]!)).toBe(false);
      expect([...(await w.sqDistances(xs))]).toEqual([...chunkSqDistances(xs, new Float64Array(5))]);
      const bits = th.slice(1, 7).map((x) => place(Uint16Array.from(new Uint32Array(x.buffer), (u) => u >>> 16)));
      expect([...(await w.sqDistances(bits))]).toEqual([...chunkSqDistances(bits, new Float64Array(6))]);
      // Mixed kinds, or an array outside the workers' memory, are refused rather than misread.
      await expect(w.sqDistances([xs[0]!, bits[0]!])).rejects.toThrow(/different lengths or kinds/);
      await expect(w.sqDistances([th[0]!])).rejects.toThrow(/outside the workers' memory/);
      // A released array's memory is handed out again.
      const again = w.allocLike(bits[0]!);
      w.release(bits[5]!);
      expect(w.allocLike(bits[5]!).byteOffset).toBe(bits[5]!.byteOffset);
      expect(again.every((v) => v === 0)).toBe(true);
    } finally {
      await w.close();
    }
  }, 30_000);

  it('the same distances and representative with 1, 2 or 3 threads as inline, from both kinds of source', async () => {
    const members = [0, 2, 3, 5, 6];
    const inline = await selectRepresentative(members, memoryParamSource(th, 300));
    for (const count of [1, 2, 3]) {
      const w = openCpuWorkers(count);
      try {
        for (const src of [memoryParamSource(th, 300), refilling(th, 300)]) {
          const r = await selectRepresentative(members, src, { workers: w });
          expect([...r.sqDistances]).toEqual([...inline.sqDistances]);
          expect(r.representative).toBe(inline.representative);
        }
      } finally {
        await w.close();
      }
    }
  }, 60_000);

  it('a cancel rejects the selection with the cancel; closing rejects what still waits', async () => {
    const w = openCpuWorkers(2);
    try {
      const ac = new AbortController();
      let reads = 0;
      const base = refilling(th, 50);
      const src: ExpertParamSource = {
        chunkCount: base.chunkCount,
        chunk: async (e, c, signal, into) => {
          signal?.throwIfAborted();
          if (++reads === 12) ac.abort();
          return base.chunk(e, c, signal, into);
        },
      };
      await expect(selectRepresentative([0, 1, 2], src, { signal: ac.signal, workers: w })).rejects.toThrow(/cancelled/);
      expect(reads).toBeLessThan(base.chunkCount * 3);
      // The pool still works after a cancelled job.
      const again = await selectRepresentative([0, 1, 2], memoryParamSource(th, 500), { workers: w });
      expect(again.sqDistances).toHaveLength(3);
      const ten = new Float32Array(10);
      const waiting = expect(w.sqDistances([w.allocLike(ten), w.allocLike(ten)])).rejects.toThrow(/closed/);
      await w.close();
      await waiting;
      await expect(w.sqDistances([w.allocLike(ten)])).rejects.toThrow(/closed/);
    } finally {
      await w.close();
    }
  }, 60_000);
});

describe('representativeWorkers: which commands compute the representatives on CPU threads', () => {
  const adapter = (over: Partial<GpuAdapterSummary>): GpuAdapterSummary => ({ vendor: 'nvidia', architecture: 'hopper', device: '', description: 'H100', isFallbackAdapter: false, label: 'H100', ...over });

  it('none for a real GPU; threads without a GPU or with a software adapter, announced when they start', async () => {
    expect(representativeWorkers({ adapter: adapter({}), backend: 'driver' })).toBeUndefined();
    const soft = [
      { adapter: adapter({}), backend: 'swiftshader' as const },
      { adapter: adapter({ vendor: 'google', architecture: 'swiftshader', description: 'SwiftShader driver' }) },
      { adapter: adapter({ vendor: 'mesa', description: 'llvmpipe (LLVM 17, 256 bits)' }) },
      { adapter: adapter({ isFallbackAdapter: true }) },
    ];
    for (const gpu of soft) {
      const lines: string[] = [];
      const w = representativeWorkers(gpu, (l) => lines.push(l));
      try {
        expect(w).toBeDefined();
        expect(lines).toEqual([]);
        const x = w!.allocLike(new Float32Array(16));
        await w!.sqDistances([x, x, x]);
        expect(lines).toEqual([`moe-prune: software adapter: stage 1's representatives run on ${w!.width} CPU thread${w!.width === 1 ? '' : 's'}\n`]);
      } finally {
        await w?.close();
      }
    }
    const none = representativeWorkers(undefined, () => {
      throw new Error('no notice without a GPU: --cpu already said so');
    });
    try {
      const x = none!.allocLike(new Float32Array(8));
      expect([...(await none!.sqDistances([x, x, x]))]).toEqual([0, 0, 0]);
    } finally {
      await none?.close();
    }
  }, 30_000);
});
