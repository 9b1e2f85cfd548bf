import { describe, expect, it } from 'vitest';
import { clusterAction, memoryParamSource, selectRepresentative, type ChunkDistanceWorkers, type ExpertParamSource } from './representative.ts';
import { chunkSqDistances, joinLanes, sqScratch, type ParamValues } from './sq-distances.ts';
import { refilling, thetas } from '../../../tests/expert-params.ts';

/** Direct (non-streaming) closest-to-centroid in float64. */
function direct(members: number[], th: Float32Array[]): number {
  const len = th[0]!.length;
  const c = new Float64Array(len);
  for (const m of members) for (let t = 0; t < len; t++) c[t] = c[t]! + th[m]![t]! / members.length;
  let best = -1, bestD = Infinity;
  for (const m of members) {
    let s = 0;
    for (let t = 0; t < len; t++) s += (th[m]![t]! - c[t]!) ** 2;
    if (s < bestD) (bestD = s), (best = m);
  }
  return best;
}

/** A 4-value-chunk source whose `at`-th read aborts `ac`; each read yields to the timers first, as a file read would. */
function cancellingAt(th: Float32Array[], at: number): { src: ExpertParamSource; ac: AbortController; reads: () => number } {
  const base = memoryParamSource(th, 4);
  const ac = new AbortController();
  let reads = 0;
  const src: ExpertParamSource = {
    chunkCount: base.chunkCount,
    chunk: async (e, c, signal) => {
      signal?.throwIfAborted();
      if (++reads === at) ac.abort();
      await new Promise((r) => setTimeout(r, 1));
      return base.chunk(e, c);
    },
  };
  return { src, ac, reads: () => reads };
}

describe('closest-to-centroid representative (streaming)', () => {
  const th = thetas(10, 53, 11);

  it('matches a direct computation for every chunk size and memory mode', async () => {
    for (const members of [[0, 3, 4], [1, 2, 5, 7, 9], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]]) {
      const want = direct(members, th);
      for (const chunk of [1, 7, 53, 100])
        for (const memory of ['hold-chunk', 'refetch'] as const) {
          const r = await selectRepresentative(members, memoryParamSource(th, chunk), { memory });
          expect(r.representative).toBe(want);
          expect(r.sqDistances).toHaveLength(members.length);
        }
    }
  });

  it('reads each member chunk once (hold-chunk) or twice (refetch)', async () => {
    for (const [memory, perChunk] of [['hold-chunk', 1], ['refetch', 2]] as const) {
      let reads = 0;
      const base = memoryParamSource(th, 10);
      const src: ExpertParamSource = { chunkCount: base.chunkCount, chunk: (e, c) => (reads++, base.chunk(e, c)) };
      await selectRepresentative([2, 4, 6], src, { memory });
      expect(reads).toBe(3 * base.chunkCount * perChunk);
    }
  });

  it('lowest index wins exact ties; pairs never read parameters', async () => {
    const same = [th[0]!, th[0]!, th[0]!, th[1]!];
    expect((await selectRepresentative([2, 1, 0], memoryParamSource(same, 8))).representative).toBe(0);
    const noRead: ExpertParamSource = { chunkCount: 3, chunk: () => { throw new Error('must not read'); } };
    expect((await selectRepresentative([7, 4], noRead)).representative).toBe(4);
    expect((await selectRepresentative([5], noRead)).representative).toBe(5);
  });

  it('rejects mismatched chunk lengths', async () => {
    const src: ExpertParamSource = { chunkCount: 1, chunk: (e) => new Float32Array(e === 1 ? 4 : 5) };
    await expect(selectRepresentative([0, 1, 2], src)).rejects.toThrow(/expert 1 parameter chunk 0 has 4 values, other members have 5/);
  });
});

/**
 * The distances written out plainly from sq-distances.ts' definition: per chunk, pass 1 adds each member in turn,
 * pass 2 keeps eight lane sums per member (t mod 8) joined in the fixed order; chunks added in order.
 */
function sequentialDistances(members: number[], th: Float32Array[], chunk: number): Float64Array {
  const k = members.length;
  const len = th[0]!.length;
  const dist = new Float64Array(k);
  for (let lo = 0; lo < len; lo += chunk) {
    const hi = Math.min(len, lo + chunk);
    const sum = new Float64Array(hi - lo);
    for (const m of members) for (let t = lo; t < hi; t++) sum[t - lo] = sum[t - lo]! + th[m]![t]!;
    for (let t = 0; t < sum.length; t++) sum[t] = sum[t]! / k;
    members.forEach((m, i) => {
      const s = new Float64Array(8);
      for (let t = lo; t < hi; t++) {
        const v = th[m]![t]! - sum[t - lo]!;
        s[(t - lo) % 8] = s[(t - lo) % 8]! + v * v;
      }
      dist[i] = dist[i]! + joinLanes(s);
    });
  }
  return dist;
}

describe('representative: read ahead and four members per sweep', () => {
  const th = thetas(12, 61, 5);

  it('gives bit-identical distances to the member-by-member sums for 3 to 12 members, in both memory modes', async () => {
    for (let k = 3; k <= 12; k++) {
      const members = Array.from({ length: k }, (_, i) => i);
      for (const chunk of [1, 8, 61]) {
        const want = sequentialDistances(members, th, chunk);
        for (const memory of ['hold-chunk', 'refetch'] as const) {
          const r = await selectRepresentative(members, memoryParamSource(th, chunk), { memory });
          expect([...r.sqDistances]).toEqual([...want]);
        }
      }
    }
  });

  it("reads chunk c+1's members while chunk c is computed, in member order, each once", async () => {
    const base = memoryParamSource(th, 16);
    const log: string[] = [];
    const src: ExpertParamSource = {
      chunkCount: base.chunkCount,
      chunk: async (e, c) => {
        log.push(`read ${c}:${e}`);
        await new Promise((r) => setTimeout(r, 1));
        return base.chunk(e, c);
      },
    };
    await selectRepresentative([5, 1, 3], src, {}, () => log.push('got'));
    const reads = log.filter((l) => l.startsWith('read'));
    expect(reads).toEqual(Array.from({ length: base.chunkCount }, (_, c) => [1, 3, 5].map((e) => `read ${c}:${e}`)).flat());
    // Chunk 1's first member is being read before chunk 0's last member reaches the arithmetic (the third 'got'),
    // and chunk 2's before chunk 1's: the reads run ahead of the arithmetic.
    const nthGot = (n: number) => log.reduce((at, l, i) => (at.seen < n && l === 'got' ? { seen: at.seen + 1, i } : at), { seen: 0, i: -1 }).i;
    expect(log.indexOf('read 1:1')).toBeLessThan(nthGot(3));
    expect(log.indexOf('read 2:1')).toBeLessThan(nthGot(6));
  });

  it('hands finished chunks back to the source to refill: a bounded set of arrays, same distances', async () => {
    const seen = new Set<Float32Array>();
    const src = refilling(th, 4, seen);
    const members = [0, 2, 4, 6, 8];
    const r = await selectRepresentative(members, src);
    expect([...r.sqDistances]).toEqual([...sequentialDistances(members, th, 4)]);
    // The chunk in use and the one read ahead: 2 × 5 arrays (+5 for the shorter last chunk), however many chunks.
    expect(src.chunkCount).toBeGreaterThan(10);
    expect(seen.size).toBeLessThanOrEqual(2 * members.length + members.length);
  });

  it('a cancel stops the reads: nothing past the chunk ahead is read, and the error is the cancel', async () => {
    const { src, ac, reads } = cancellingAt(th, 5);
    await expect(selectRepresentative([0, 1, 2], src, { signal: ac.signal })).rejects.toThrow();
    // Aborted at the 5th read (chunk 1): at most one chunk (3 members) ahead was requested after it.
    expect(reads()).toBeLessThanOrEqual(5 + 3);
    expect(reads()).toBeLessThan(src.chunkCount * 3);
  });
});

describe('one chunk in cache-sized blocks (chunkSqDistances)', () => {
  const th = thetas(13, 2500, 3);

  it('gives the plainly written sums bit for bit for 1 to 13 members, across block ends, with scratch reused', () => {
    const scratch = sqScratch(1);
    for (let k = 1; k <= 13; k++) {
      const members = Array.from({ length: k }, (_, i) => i);
      for (const len of [97, 1024, 2500]) {
        const want = sequentialDistances(members, th.map((x) => x.subarray(0, len)), len);
        const got = chunkSqDistances(members.map((m) => th[m]!.subarray(0, len)), new Float64Array(k).fill(7), scratch);
        expect([...got]).toEqual([...want]);
      }
    }
  });
});

/**
 * In-process stand-in for worker threads: each chunk's sums finish after a pseudo-random delay, so later chunks
 * often finish first; `copies` counts chunks that had to be copied into "shared" arrays.
 */
function fakeWorkers(width: number, seed: number): ChunkDistanceWorkers & { calls: number; copies: number; released: number; maxBusy: number } {
  const shared = new WeakSet<ParamValues>();
  let s = seed;
  let busy = 0;
  const w = {
    width,
    calls: 0,
    copies: 0,
    released: 0,
    maxBusy: 0,
    shares: (x: ParamValues) => shared.has(x),
    allocLike: <T extends ParamValues>(like: T): T => {
      w.copies++;
      const x = like.slice().fill(0) as T;
      shared.add(x);
      return x;
    },
    release: (x: ParamValues) => {
      if (!shared.has(x)) throw new Error('released an array the workers did not hand out');
      w.released++;
    },
    sqDistances: async (xs: readonly ParamValues[]) => {
      w.calls++;
      w.maxBusy = Math.max(w.maxBusy, ++busy);
      if (!xs.every((x) => shared.has(x))) throw new Error('a chunk outside shared memory reached a worker');
      s = (s * 16807) % 2147483647;
      await new Promise((r) => setTimeout(r, s % 3));
      busy--;
      return chunkSqDistances(xs, new Float64Array(xs.length));
    },
  };
  return w;
}

describe('representative on worker threads (ChunkDistanceWorkers)', () => {
  const th = thetas(9, 203, 17);

  it('the same distances bit for bit for any number of workers and finishing order, as inline', async () => {
    for (const members of [[0, 1, 2], [1, 3, 4, 6, 8], [0, 1, 2, 3, 4, 5, 6, 7, 8]]) {
      for (const chunk of [1, 16, 203]) {
        const want = sequentialDistances(members, th, chunk);
        const inline = await selectRepresentative(members, memoryParamSource(th, chunk));
        expect([...inline.sqDistances]).toEqual([...want]);
        for (const width of [1, 2, 3, 7]) {
          const workers = fakeWorkers(width, width * 31 + chunk);
          const r = await selectRepresentative(members, memoryParamSource(th, chunk), { workers });
          expect([...r.sqDistances]).toEqual([...want]);
          expect(r.representative).toBe(inline.representative);
          expect(workers.calls).toBe(Math.ceil(203 / chunk));
          // At most one chunk queued per worker besides the ones computing.
          expect(workers.maxBusy).toBeLessThanOrEqual(width + 1);
        }
      }
    }
  });

  it('a source that refills spares gets shared arrays back: copies stop after the first chunks', async () => {
    const src = refilling(th, 8);
    const members = [0, 2, 4, 6];
    const workers = fakeWorkers(2, 5);
    const r = await selectRepresentative(members, src, { workers });
    expect([...r.sqDistances]).toEqual([...sequentialDistances(members, th, 8)]);
    expect(src.chunkCount).toBeGreaterThan(20);
    // Chunks in flight (≤ width + 1), the one being read and the one read ahead: never one copy per chunk.
    expect(workers.copies).toBeLessThanOrEqual(5 * members.length + members.length);
    // Every array handed out goes back to the workers when the selection ends.
    expect(workers.released).toBe(workers.copies);
  });

  it('a bfloat16 source sends its stored bits to the workers, with the distances of the values they stand for', async () => {
    const bits = th.map((x) => Uint16Array.from(new Uint32Array(x.buffer, x.byteOffset, x.length), (u) => u >>> 16));
    const values = bits.map((b) => new Float32Array(Uint32Array.from(b, (u) => u << 16).buffer));
    const float = memoryParamSource(values, 16);
    const kinds = new Set<string>();
    const src: ExpertParamSource = {
      ...float,
      chunk: float.chunk,
      bf16Chunk: async (e, c, _signal, into) => {
        const x = bits[e]!.subarray(c * 16, Math.min(203, (c + 1) * 16));
        const out = into?.length === x.length ? into : new Uint16Array(x.length);
        out.set(x);
        return out;
      },
    };
    const workers = fakeWorkers(2, 3);
    const spy: ChunkDistanceWorkers = { ...workers, sqDistances: (xs) => (xs.forEach((x) => kinds.add(x.constructor.name)), workers.sqDistances(xs)) };
    const members = [0, 3, 5, 8];
    const r = await selectRepresentative(members, src, { workers: spy });
    expect([...kinds]).toEqual(['Uint16Array']);
    expect([...r.sqDistances]).toEqual([...sequentialDistances(members, values, 16)]);
    // Inline (no workers) reads the float chunks: the same bits.
    expect([...(await selectRepresentative(members, src)).sqDistances]).toEqual([...r.sqDistances]);
  });

  it('a cancel stops the reads and rejects with the cancel while chunks are computing', async () => {
    const { src, ac, reads } = cancellingAt(th, 10);
    const workers = fakeWorkers(2, 9);
    await expect(selectRepresentative([0, 1, 2], src, { signal: ac.signal, workers })).rejects.toThrow(/cancelled/);
    expect(reads()).toBeLessThanOrEqual(10 + 3);
    expect(workers.calls).toBeLessThan(src.chunkCount);
  });

  it('a failing worker fails the selection with its error', async () => {
    const workers = fakeWorkers(2, 1);
    const failing: ChunkDistanceWorkers = { ...workers, sqDistances: () => Promise.reject(new Error('worker died')) };
    await expect(selectRepresentative([0, 1, 2], memoryParamSource(th, 50), { workers: failing })).rejects.toThrow('worker died');
  });
});

describe('reconstruction rules', () => {
  it('per-layer (official code): merge every cluster when the layer has ≤ κ_L clusters', () => {
    expect(clusterAction('per-layer', 2, 2, 5)).toBe('merge');
    expect(clusterAction('per-layer', 2, 3, 5)).toBe('select');
    expect(clusterAction('per-layer', 2, 2, 1)).toBe('keep');
  });
  it('per-cluster-size (paper summary): merge clusters with fewer than κ members', () => {
    expect(clusterAction('per-cluster-size', 3, 40, 2)).toBe('merge');
    expect(clusterAction('per-cluster-size', 3, 40, 3)).toBe('select');
    expect(clusterAction('none', 3, 1, 2)).toBe('select');
  });
});
