// Worker thread of src/cli/cpu-workers.ts: runs the WebAssembly kernel (sq-distances.wat) on chunks that lie in the
// memory it shares with the main thread. The main thread hands over the compiled module and writes each call's
// address table, so this thread imports nothing and starts at once; only the k partial sums come back.
import { parentPort, workerData } from 'node:worker_threads';

const { memory, module } = workerData;
const { sq_distances: sqDistances } = new WebAssembly.Instance(module, { env: { memory } }).exports;
parentPort.on('message', ({ id, args }) => {
  try {
    const out = sqDistances(...args);
    parentPort.postMessage({ id, out: new Float64Array(memory.buffer, out, args[1]).slice() });
  } catch (e) {
    parentPort.postMessage({ id, error: e instanceof Error ? e.message : String(e) });
  }
});
