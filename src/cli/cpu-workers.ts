/**
 * The CLI's CPU threads for stage 1's representatives: `ChunkDistanceWorkers` over Node worker threads running the
 * WebAssembly SIMD kernel (sq-distances.wat). Every thread's kernel instance shares one memory: member chunks are
 * read from disk straight into it (`allocLike` hands out arrays there) and the threads compute them where they lie.
 * Chunks go to idle threads whole and the caller joins their partial sums in chunk order, so the distances are the
 * same bits for any number of threads, or none (the TypeScript reference computes the same bits).
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { MoePruneError } from '../core/errors.ts';
import type { ChunkDistanceWorkers } from '../prune/experts/representative.ts';
import { isSoftwareAdapter, type AdapterKind } from './node-gpu.ts';
import { sqKernel, sqKernelMemory, sqKernelModule, WasmArena } from '../prune/experts/sq-distances-kernel.ts';
import type { ParamValues } from '../prune/experts/sq-distances.ts';

export interface CpuWorkers extends ChunkDistanceWorkers {
  /** Stops the threads; calls still waiting are rejected. */
  close(): Promise<void>;
}

interface Task {
  readonly id: number;
  readonly members: readonly number[];
  readonly n: number;
  readonly bf16: boolean;
  readonly k: number;
  readonly resolve: (out: Float64Array) => void;
  readonly reject: (e: Error) => void;
}

type Reply = { id: number; out: Float64Array } | { id: number; error: string };

/** As many threads as the machine has cores (this one mostly waits for reads, which the OS does), at most 15. */
export function defaultCpuWorkerCount(): number {
  return Math.min(15, Math.max(1, availableParallelism()));
}

/**
 * The threads for a command's stage-1 representatives: opened without a GPU or with a software adapter (which
 * computes on this same CPU, after copying every chunk up), undefined with a real GPU (which computes them).
 * `notice` hears one line when a software adapter is passed over, once the threads start (at the first chunk).
 */
export function representativeWorkers(gpu: AdapterKind | undefined, notice?: (line: string) => void): CpuWorkers | undefined {
  if (gpu && !isSoftwareAdapter(gpu)) return undefined;
  const said = gpu && notice ? (n: number) => notice(`moe-prune: software adapter: stage 1's representatives run on ${n} CPU thread${n === 1 ? '' : 's'}\n`) : undefined;
  return openCpuWorkers(defaultCpuWorkerCount(), said);
}

/** `onStart` hears the thread count when the threads start, at the first chunk. */
export function openCpuWorkers(count = defaultCpuWorkerCount(), onStart?: (threads: number) => void): CpuWorkers {
  if (!(Number.isInteger(count) && count >= 1)) throw new MoePruneError('InvalidArgument', `CPU worker count must be a positive integer, got ${count}`);
  const url = new URL('./cpu-worker.mjs', import.meta.url);
  const memory = sqKernelMemory();
  const arena = new WasmArena(memory);
  const kernel = sqKernel(memory);
  /** Where each array from allocLike lives in the kernel's memory. */
  const placed = new WeakMap<ParamValues, { at: number; bytes: number }>();
  const queue: Task[] = [];
  const idle: Worker[] = [];
  const busy = new Map<Worker, Task>();
  /** Each thread's scratch region, grown when a cluster with more members comes. */
  const regions = new Map<Worker, { at: number; bytes: number }>();
  let nextId = 0;
  let closed = false;
  let alive = count;
  const fail = (t: Task, message: string) => t.reject(new MoePruneError('InvalidArgument', `CPU worker: ${message}`));
  const regionFor = (w: Worker, k: number): number => {
    const need = kernel.regionBytes(k);
    const r = regions.get(w);
    if (r && r.bytes >= need) return r.at;
    if (r) arena.release(r.at, r.bytes);
    const at = arena.alloc(need);
    regions.set(w, { at, bytes: need });
    return at;
  };
  const pump = () => {
    while (idle.length > 0 && queue.length > 0) {
      const w = idle.pop()!;
      const t = queue.shift()!;
      busy.set(w, t);
      w.ref();
      w.postMessage({ id: t.id, args: kernel.args(t.members, t.n, t.bf16, regionFor(w, t.k)) });
    }
  };
  // Started at the first chunk: a job whose clusters need no parameters starts no thread.
  let workers: Worker[] = [];
  const start = () => (onStart?.(count), Array.from({ length: count }, () => {
    const w = new Worker(url, { workerData: { memory, module: sqKernelModule() } });
    // An idle pool never keeps the process alive; a worker with a task does.
    w.unref();
    idle.push(w);
    w.on('message', (r: Reply) => {
      const t = busy.get(w);
      busy.delete(w);
      w.unref();
      if (t) {
        if ('out' in r) t.resolve(r.out);
        else fail(t, r.error);
      }
      if (!closed) idle.push(w);
      pump();
    });
    w.on('error', (e) => {
      alive--;
      const t = busy.get(w);
      busy.delete(w);
      if (t) fail(t, e.message);
      for (const q of queue.splice(0)) fail(q, e.message);
    });
    return w;
  }));
  return {
    width: count,
    shares: (x) => placed.has(x),
    allocLike(x) {
      const bytes = x.byteLength;
      const at = arena.alloc(bytes);
      const y = (x instanceof Float32Array ? new Float32Array(memory.buffer, at, x.length) : new Uint16Array(memory.buffer, at, x.length)) as typeof x;
      placed.set(y, { at, bytes });
      return y;
    },
    release(x) {
      const p = placed.get(x);
      if (!p) return;
      placed.delete(x);
      arena.release(p.at, p.bytes);
    },
    sqDistances(xs) {
      if (closed || alive === 0) return Promise.reject(new MoePruneError('InvalidArgument', `CPU workers are ${closed ? 'closed' : 'gone'}`));
      if (xs.length === 0) return Promise.resolve(new Float64Array(0));
      const bf16 = xs[0] instanceof Uint16Array;
      const n = xs[0]?.length ?? 0;
      const members: number[] = [];
      for (const x of xs) {
        const p = placed.get(x);
        if (!p) return Promise.reject(new MoePruneError('InvalidArgument', 'CPU worker: a member chunk outside the workers\' memory'));
        if (x.length !== n || x instanceof Uint16Array !== bf16) return Promise.reject(new MoePruneError('InvalidArgument', 'CPU worker: member chunks of different lengths or kinds'));
        members.push(p.at);
      }
      return new Promise<Float64Array>((resolve, reject) => {
        if (workers.length === 0) workers = start();
        queue.push({ id: nextId++, members, n, bf16, k: xs.length, resolve, reject });
        pump();
      });
    },
    async close() {
      closed = true;
      for (const t of [...queue.splice(0), ...busy.values()]) fail(t, 'closed');
      busy.clear();
      await Promise.all(workers.map((w) => w.terminate()));
    },
  };
}
