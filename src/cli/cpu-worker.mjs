// Worker thread of src/cli/cpu-workers.ts: computes chunkSqDistances for the chunks it is sent. The member arrays
// live in shared memory (nothing is copied); only the k partial sums come back.
import { parentPort } from 'node:worker_threads';
import { register as registerTsx } from 'tsx/esm/api';

registerTsx();
const { chunkSqDistances, SQ_BLOCK } = await import('../prune/experts/sq-distances.ts');
const scratch = new Float64Array(SQ_BLOCK);
parentPort.on('message', ({ id, xs }) => {
  try {
    parentPort.postMessage({ id, out: chunkSqDistances(xs, new Float64Array(xs.length), scratch) });
  } catch (e) {
    parentPort.postMessage({ id, error: e instanceof Error ? e.message : String(e) });
  }
});
parentPort.postMessage({ ready: true });
