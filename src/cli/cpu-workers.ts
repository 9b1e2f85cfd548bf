/**
 * The CLI's CPU threads for stage 1's representatives: `ChunkDistanceWorkers` over Node worker threads. Chunks are
 * handed to idle workers whole (in shared memory) and their partial sums are joined by the caller in chunk order,
 * so the distances are the same bits for any number of workers, or none.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { MoePruneError } from '../core/errors.ts';
import type { ChunkDistanceWorkers } from '../prune/experts/representative.ts';

export interface CpuWorkers extends ChunkDistanceWorkers {
  /** Stops the threads; calls still waiting are rejected. */
  close(): Promise<void>;
}

interface Task {
  readonly id: number;
  readonly xs: readonly Float32Array[];
  readonly resolve: (out: Float64Array) => void;
  readonly reject: (e: Error) => void;
}

type Reply = { ready: true } | { id: number; out: Float64Array } | { id: number; error: string };

/** One thread less than the machine has (this one reads and decodes), at least one, at most 15. */
export function defaultCpuWorkerCount(): number {
  return Math.min(15, Math.max(1, availableParallelism() - 1));
}

export function openCpuWorkers(count = defaultCpuWorkerCount()): CpuWorkers {
  if (!(Number.isInteger(count) && count >= 1)) throw new MoePruneError('InvalidArgument', `CPU worker count must be a positive integer, got ${count}`);
  const url = new URL('./cpu-worker.mjs', import.meta.url);
  const queue: Task[] = [];
  const idle: Worker[] = [];
  const busy = new Map<Worker, Task>();
  let nextId = 0;
  let closed = false;
  let alive = count;
  const fail = (t: Task, message: string) => t.reject(new MoePruneError('InvalidArgument', `CPU worker: ${message}`));
  const pump = () => {
    while (idle.length > 0 && queue.length > 0) {
      const w = idle.pop()!;
      const t = queue.shift()!;
      busy.set(w, t);
      w.ref();
      w.postMessage({ id: t.id, xs: t.xs });
    }
  };
  // Started at the first chunk: a job whose clusters need no parameters starts no thread.
  let workers: Worker[] = [];
  const start = () => Array.from({ length: count }, () => {
    const w = new Worker(url);
    // An idle pool never keeps the process alive; a worker with a task does.
    w.unref();
    w.on('message', (r: Reply) => {
      const t = busy.get(w);
      busy.delete(w);
      w.unref();
      if (t && 'id' in r) {
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
  });
  return {
    width: count,
    shares: (x) => x.buffer instanceof SharedArrayBuffer,
    alloc: (n) => new Float32Array(new SharedArrayBuffer(n * 4)),
    sqDistances(xs) {
      if (closed || alive === 0) return Promise.reject(new MoePruneError('InvalidArgument', `CPU workers are ${closed ? 'closed' : 'gone'}`));
      return new Promise<Float64Array>((resolve, reject) => {
        if (workers.length === 0) workers = start();
        queue.push({ id: nextId++, xs, resolve, reject });
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
