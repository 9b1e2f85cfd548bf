/**
 * Oracle helper: runs the CPU reference forward pass on fixture checkpoints and prints JSON for the Python
 * oracle test (oracle/tests/test_forward_reference.py), which compares it with transformers.
 *
 *   npx tsx oracle/js/forward-logits.ts --ids 1,17,42 --ids 1,5,9 <checkpoint dir> [<dir> ...]
 *
 * Output: {"adapter": "cpu", "results": {"<dir>": {"logits": [[...vocab] per position, window-major], "routing": [{"layer", "experts":
 * [[k ids] per position]}], "nll": [...], "mean_nll": x, "perplexity": y, "peak_layer_weight_bytes": n}}}
 * (the same shape as gpu-forward.ts), or {"<dir>": {"error": "..."}} in `results` when a checkpoint fails.
 */
import { openNodeFileSet } from '../../src/cli/node-files.ts';
import { parseForwardArgs } from './args.ts';
import { perplexityFromNll } from '../../src/eval/perplexity.ts';
import { openReferenceModel, referenceForward } from '../../src/forward/reference/forward.ts';

async function main(): Promise<void> {
  const { windows, dirs } = parseForwardArgs(process.argv.slice(2), 'forward-logits.ts');
  const out: Record<string, unknown> = {};
  for (const dir of dirs) {
    try {
      const model = await openReferenceModel(await openNodeFileSet(dir));
      const res = await referenceForward(model, windows, { output: 'both' });
      const V = model.arch.vocab;
      const logits: number[][] = [];
      for (let p = 0; p < res.windows * res.tokens; p++) logits.push(Array.from(res.logits!.subarray(p * V, p * V + V)));
      const nll = Array.from(res.nll!);
      const ppl = perplexityFromNll(res.nll!);
      out[dir] = {
        logits,
        routing: res.routing.map((r) => ({
          layer: r.layer,
          experts: Array.from({ length: res.windows * res.tokens }, (_, t) => Array.from(r.experts.subarray(t * r.topK, t * r.topK + r.topK))),
          weights: Array.from({ length: res.windows * res.tokens }, (_, t) => Array.from(r.weights.subarray(t * r.topK, t * r.topK + r.topK))),
        })),
        nll,
        mean_nll: ppl.meanNll,
        perplexity: ppl.perplexity,
        peak_layer_weight_bytes: res.peakLayerWeightBytes,
      };
    } catch (e) {
      out[dir] = { error: e instanceof Error ? e.message : String(e) };
    }
  }
  process.stdout.write(JSON.stringify({ adapter: 'cpu', results: out }) + '\n');
}

await main();
