/**
 * Oracle helper: runs the WebGPU forward engine (src/forward) on fixture checkpoints in ONE process and prints
 * JSON for oracle/tests/test_gpu_engine.py, which compares it with transformers.
 *
 *   npx tsx oracle/js/gpu-forward.ts --ids 1,17,42 --ids 1,5,9 <checkpoint dir> [<dir> ...]
 *
 * Output: {"adapter": "...", "results": {"<dir>": {"logits": [[vocab] per position, window-major],
 * "routing": [{"layer", "experts": [[k ids] per position]}], "nll": [...], "perplexity": y,
 * "input_norms": {"<weight name>": {"rows": n, "sum_sq": [...]}}, "layers": [{layer, weightBytes, poolPeakBytes, ms}],
 * "seconds": s}}} or {"<dir>": {"error": "..."}} for a checkpoint that fails.
 */
import { register } from 'node:module';

// The kernels import WGSL with Vite's `?raw`; teach Node that before loading them.
register(new URL('../../src/cli/wgsl-loader.mjs', import.meta.url));
process.env.XDG_RUNTIME_DIR ??= '/tmp';

async function main(): Promise<void> {
  const { openNodeFileSet } = await import('../../src/cli/node-files.ts');
  const { GpuForwardEngine } = await import('../../src/forward/engine.ts');
  const { perplexityFromNll } = await import('../../src/eval/perplexity.ts');
  const { parseForwardArgs } = await import('./args.ts');
  const { windows, dirs } = parseForwardArgs(process.argv.slice(2), 'gpu-forward.ts');
  const { runPerCheckpoint } = await import('./runner.ts');
  await runPerCheckpoint(dirs, async (gpu, dir) => {
    const t0 = performance.now();
    const engine = await GpuForwardEngine.open(gpu, await openNodeFileSet(dir));
    const res = await engine.forward(windows, { output: 'both', routing: true, stats: true });
    const V = engine.arch.vocab;
    const N = res.windows * res.tokens;
    const ppl = perplexityFromNll(res.nll!);
    return {
      logits: Array.from({ length: N }, (_, p) => Array.from(res.logits!.subarray(p * V, p * V + V))),
      routing: res.routing.map((r) => ({
        layer: r.layer,
        experts: Array.from({ length: N }, (_, t) => Array.from(r.experts.subarray(t * r.topK, t * r.topK + r.topK))),
      })),
      nll: Array.from(res.nll!),
      perplexity: ppl.perplexity,
      input_norms: Object.fromEntries(Object.entries(res.stats!.inputNorms).map(([k, v]) => [k, { rows: v.rows, sum_sq: Array.from(v.sumSq) }])),
      unrouted: res.stats!.moeLayers.flatMap((l) => l.unrouted),
      layers: res.layers,
      peak_pool_bytes: res.peakPoolBytes,
      seconds: (performance.now() - t0) / 1000,
    };
  });
}

await main();
