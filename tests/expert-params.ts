/** Test helpers for the representative selection: seeded expert parameter vectors and a source that refills spares. */
import { memoryParamSource, type ExpertParamSource } from '../src/prune/experts/representative.ts';

/** `count` seeded vectors of `len` values in [-0.5, 0.5) (Park–Miller, so every run draws the same). */
export function thetas(count: number, len: number, seed: number): Float32Array[] {
  let s = seed;
  const r = () => ((s = (s * 16807) % 2147483647) / 2147483647) - 0.5;
  return Array.from({ length: count }, () => Float32Array.from({ length: len }, r));
}

/**
 * A source that fills the spare it is handed (as the checkpoint source does), so shared arrays come back; every array
 * it returns goes into `handed` when given, so a test can count the distinct arrays in use.
 */
export function refilling(th: Float32Array[], chunk: number, handed?: Set<Float32Array>): ExpertParamSource {
  const base = memoryParamSource(th, chunk);
  return {
    chunkCount: base.chunkCount,
    chunk: (e, c, _signal, into) => {
      const x = base.chunk(e, c) as Float32Array;
      const out = into?.length === x.length ? into : new Float32Array(x.length);
      out.set(x);
      handed?.add(out);
      return out;
    },
  };
}
