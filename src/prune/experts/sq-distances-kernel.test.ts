import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { thetas } from '../../../tests/expert-params.ts';
import { chunkSqDistances, joinLanes, SQ_LANES, type ParamValues } from './sq-distances.ts';
import { sqKernel, sqKernelMemory, WasmArena } from './sq-distances-kernel.ts';

/** The definition written out plainly: centroid in member order, one lane sum per t mod 8, lanes joined in order. */
function definition(xs: readonly Float32Array[]): Float64Array {
  const k = xs.length;
  const n = xs[0]!.length;
  const lanes = Array.from({ length: k }, () => new Float64Array(SQ_LANES));
  for (let t = 0; t < n; t++) {
    let m = 0;
    for (const x of xs) m += x[t]!;
    m /= k;
    xs.forEach((x, i) => {
      const v = x[t]! - m;
      lanes[i]![t % 8] = lanes[i]![t % 8]! + v * v;
    });
  }
  return Float64Array.from(lanes, (l) => joinLanes(l));
}

/** bfloat16 bits of float32 values (truncated) and the float32 values they stand for. */
function bf16Of(x: Float32Array): { bits: Uint16Array; values: Float32Array } {
  const bits = Uint16Array.from(new Uint32Array(x.buffer, x.byteOffset, x.length), (u) => u >>> 16);
  const values = new Float32Array(new Uint32Array(Array.from(bits, (b) => b << 16)).buffer);
  return { bits, values };
}

describe('chunkSqDistances: TypeScript reference and WebAssembly SIMD kernel', () => {
  const sizes = [1, 7, 8, 9, 1023, 1024, 1025, 3001];

  it('the reference equals the definition bit for bit (float32 and bfloat16 members, 1 to 9 members, block tails)', () => {
    for (const k of [1, 2, 3, 5, 9])
      for (const n of sizes) {
        const xs = thetas(k, n, 7 * k + n);
        expect([...chunkSqDistances(xs, new Float64Array(k))]).toEqual([...definition(xs)]);
        const b = xs.map(bf16Of);
        const want = definition(b.map((x) => x.values));
        expect([...chunkSqDistances(b.map((x) => x.bits), new Float64Array(k))]).toEqual([...want]);
      }
  });

  it('the kernel gives the reference bits from members in its memory, both dtypes, with regions reused', async () => {
    const memory = sqKernelMemory(1 << 16);
    const arena = new WasmArena(memory);
    const kernel = sqKernel(memory);
    let checked = 0;
    for (const k of [1, 2, 3, 5, 9, 17])
      for (const n of sizes) {
        const xs = thetas(k, n, 3 * k + n);
        for (const dtype of ['F32', 'BF16'] as const) {
          const vals: ParamValues[] = dtype === 'F32' ? xs : xs.map((x) => bf16Of(x).bits);
          const addrs = vals.map((v) => {
            const at = arena.alloc(v.byteLength);
            new Uint8Array(memory.buffer, at, v.byteLength).set(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
            return at;
          });
          const region = arena.alloc(kernel.regionBytes(k));
          // Leftovers from an earlier call must not leak into this one.
          new Uint8Array(memory.buffer, region, kernel.regionBytes(k)).fill(0x7f);
          const got = kernel.run(addrs, n, dtype === 'BF16', region);
          expect([...got]).toEqual([...chunkSqDistances(vals, new Float64Array(k))]);
          addrs.forEach((a, i) => arena.release(a, vals[i]!.byteLength));
          arena.release(region, kernel.regionBytes(k));
          checked++;
        }
      }
    expect(checked).toBe(6 * sizes.length * 2);
    // Memory grew past its first 64 KiB for the larger calls.
    expect(memory.buffer.byteLength).toBeGreaterThan(1 << 16);
  });

  it('NaN and infinities reach the distances as the reference has them', async () => {
    const memory = sqKernelMemory();
    const arena = new WasmArena(memory);
    const kernel = sqKernel(memory);
    const xs = thetas(3, 40, 5);
    xs[1]![17] = Number.NaN;
    xs[2]![3] = Number.POSITIVE_INFINITY;
    const addrs = xs.map((x) => {
      const at = arena.alloc(x.byteLength);
      new Float32Array(memory.buffer, at, x.length).set(x);
      return at;
    });
    const got = kernel.run(addrs, 40, false, arena.alloc(kernel.regionBytes(3)));
    expect([...got]).toEqual([...chunkSqDistances(xs, new Float64Array(3))]);
    expect(got.every(Number.isNaN)).toBe(true);
  });

  it('sq-distances-wasm.ts is the compiled sq-distances.wat (no stale binary)', async () => {
    // @ts-expect-error: a plain .mjs tool without types
    const { generatedModule, generatedPath } = await import('../../../tools/wasm/build-wasm.mjs');
    const wat = 'src/prune/experts/sq-distances.wat';
    const committed = await readFile(new URL(`../../../${(generatedPath as (w: string) => string)(wat)}`, import.meta.url), 'utf8');
    expect(committed).toBe(await (generatedModule as (w: string) => Promise<string>)(wat));
  });
});
