/**
 * The WebAssembly SIMD build of chunkSqDistances (sq-distances.wat, compiled into sq-distances-wasm.ts): one module
 * instance per thread over one shared memory, so a thread computes chunks that another thread read from disk straight
 * into that memory. The kernel works on byte addresses; `WasmArena` hands them out.
 */
import { SQ_DISTANCES_WASM } from './sq-distances-wasm.ts';

const PAGE = 65536;
/** The kernel's memory may grow to 4 GiB (the 32-bit limit); it starts small and grows with the chunks in flight. */
const MAX_PAGES = 65536;

let compiled: WebAssembly.Module | undefined;

function wasmBytes(): Uint8Array<ArrayBuffer> {
  return Uint8Array.from(atob(SQ_DISTANCES_WASM), (c) => c.charCodeAt(0));
}

/**
 * Compiled once per thread (or handed to a worker thread, which then needs no import at all); the module is under a
 * kilobyte, so compiling it synchronously is allowed everywhere.
 */
export function sqKernelModule(): WebAssembly.Module {
  return (compiled ??= new WebAssembly.Module(wasmBytes()));
}

export function sqKernelMemory(initialBytes = 16 << 20): WebAssembly.Memory {
  return new WebAssembly.Memory({ initial: Math.ceil(initialBytes / PAGE), maximum: MAX_PAGES, shared: true });
}

export interface SqKernel {
  /** Bytes of the region `run` needs for k members (scratch, lane sums, results, the address table). */
  regionBytes(k: number): number;
  /**
   * Writes the members' addresses into `region` and returns the export's arguments: a thread holding the module
   * and the memory computes them with `exports.sq_distances(...args)` (k values at the address it returns).
   */
  args(members: readonly number[], n: number, bf16: boolean, region: number): SqKernelArgs;
  /**
   * chunkSqDistances of the k members at byte addresses `members` (n values each: bfloat16 bits when `bf16`,
   * otherwise float32), using the region at `region`.
   */
  run(members: readonly number[], n: number, bf16: boolean, region: number): Float64Array;
}

interface Exports {
  work_bytes(k: number): number;
  sq_distances(table: number, k: number, n: number, bf16: number, work: number): number;
}

/** sq_distances(table, k, n, bf16, work): the kernel export's arguments. */
export type SqKernelArgs = readonly [table: number, k: number, n: number, bf16: 0 | 1, work: number];

export function sqKernel(memory: WebAssembly.Memory): SqKernel {
  const inst = new WebAssembly.Instance(sqKernelModule(), { env: { memory } });
  const x = inst.exports as unknown as Exports;
  const args = (members: readonly number[], n: number, bf16: boolean, region: number): SqKernelArgs => {
    const k = members.length;
    const table = region + x.work_bytes(k);
    new Uint32Array(memory.buffer, table, k).set(members);
    return [table, k, n, bf16 ? 1 : 0, region];
  };
  return {
    regionBytes: (k) => align(x.work_bytes(k) + 4 * k),
    args,
    run(members, n, bf16, region) {
      if (members.length === 0) return new Float64Array(0);
      const out = x.sq_distances(...args(members, n, bf16, region));
      return new Float64Array(memory.buffer, out, members.length).slice();
    },
  };
}

const ALIGN = 64;
const align = (n: number): number => Math.ceil(n / ALIGN) * ALIGN;

/**
 * Addresses in a kernel memory: blocks of equal size are reused (chunks come in a few sizes), new ones are taken
 * from the top and the memory grows when the top passes its end. Address 0 is never handed out.
 */
export class WasmArena {
  private top = ALIGN;
  private readonly free = new Map<number, number[]>();

  constructor(readonly memory: WebAssembly.Memory) {}

  alloc(bytes: number): number {
    const size = align(Math.max(1, bytes));
    const reuse = this.free.get(size)?.pop();
    if (reuse !== undefined) {
      new Uint8Array(this.memory.buffer, reuse, size).fill(0);
      return reuse;
    }
    const at = this.top;
    const end = at + size;
    const have = this.memory.buffer.byteLength;
    if (end > have) {
      if (end > MAX_PAGES * PAGE) throw new RangeError(`the CPU kernel's memory cannot exceed 4 GiB (asked for ${end} bytes)`);
      // At least half again what it has, so a run of chunk allocations grows the memory a few times, not each time.
      this.memory.grow(Math.min(MAX_PAGES - have / PAGE, Math.max(Math.ceil((end - have) / PAGE), Math.ceil(have / PAGE / 2))));
    }
    this.top = end;
    return at;
  }

  release(at: number, bytes: number): void {
    const size = align(Math.max(1, bytes));
    const list = this.free.get(size) ?? [];
    list.push(at);
    this.free.set(size, list);
  }
}
