/**
 * Oracle helper: expert-choice signals of the WebGPU engine on fixture checkpoints, in ONE process, as JSON for
 * oracle/tests/test_expert_signals.py (which recomputes them with torch).
 *
 *   npx tsx oracle/js/expert-signals.ts --ids 1,17,42 --ids 1,5,9 <checkpoint dir> [<dir> ...]
 *
 * Per checkpoint, K = the smallest count ≥ n/2 the routing floors allow, and per saliency criterion (reap, ean,
 * frequency) one sequential run: every MoE layer's token counts, Σ g·‖f‖, Σ ‖f‖, scores and kept experts, then the
 * reconstruction sums of that run's plan per MoE layer; the exhaustive (NAEE) run: kept experts, best error and subsets
 * per layer; HC-SMoE's output-similarity distances of the original model per MoE layer (diagonal null): cosine over all
 * tokens ("output") and L2 between the means over each expert's routed tokens ("outputRoutedL2").
 * Output: {"adapter", "results": {"<dir>": {"K", "runs": {"reap": {"scores": [...], "kept": {"<layer>": [...]},
 * "reconstruction": [...]}, ...}, "exhaustive": {"kept", "layers", "subsets"}, "output": {"<layer>": [[...]]},
 * "seconds"}}} or {"<dir>": {"error": "..."}}.
 */
import { register } from 'node:module';

// The kernels import WGSL with Vite's `?raw`; teach Node that before loading them.
register(new URL('../../src/cli/wgsl-loader.mjs', import.meta.url));
process.env.XDG_RUNTIME_DIR ??= '/tmp';

async function main(): Promise<void> {
  const { openNodeFileSet } = await import('../../src/cli/node-files.ts');
  const { GpuForwardEngine } = await import('../../src/forward/engine.ts');
  const { expertPlanEdits } = await import('../../src/forward/plan.ts');
  const { exhaustiveSequential, keepRuleAt, moeLayersOf, outputSimilarityDistances, reconstructionErrors, scoreExpertsSequential } = await import('../../src/pipeline/expert-choice.ts');
  const { keptPerGroup, SALIENCY_CRITERIA } = await import('../../src/prune/experts/saliency.ts');
  const { parseForwardArgs } = await import('./args.ts');
  const { windows, dirs } = parseForwardArgs(process.argv.slice(2), 'expert-signals.ts');
  const { runPerCheckpoint } = await import('./runner.ts');
  await runPerCheckpoint(dirs, async (gpu, dir) => {
    const t0 = performance.now();
    const engine = await GpuForwardEngine.open(gpu, await openNodeFileSet(dir));
    const rules = moeLayersOf(engine.arch).map((l) => keepRuleAt(engine.arch, l));
    const n = rules[0]!.n;
    let K = Math.ceil(n / 2);
    const valid = (k: number): boolean => rules.every((r) => {
      try {
        keptPerGroup(k, r);
        return true;
      } catch {
        return false;
      }
    });
    while (K < n && !valid(K)) K++;
    const runs: Record<string, unknown> = {};
    for (const criterion of SALIENCY_CRITERIA) {
      const r = await scoreExpertsSequential(engine, windows, criterion, K);
      runs[criterion] = {
        scores: r.scores,
        kept: Object.fromEntries(r.plan.layers.map((l) => [String(l.layer), l.kept])),
        reconstruction: await reconstructionErrors(engine, windows, expertPlanEdits(r.plan.layers)),
      };
    }
    const ex = await exhaustiveSequential(engine, windows, K);
    const exhaustive = { kept: Object.fromEntries(ex.plan.layers.map((l) => [String(l.layer), l.kept])), layers: ex.layers, subsets: ex.subsets };
    const matrices = (D: Map<number, Float64Array>) =>
      Object.fromEntries([...D].map(([l, d]) => [String(l), Array.from({ length: n }, (_, i) => Array.from(d.subarray(i * n, (i + 1) * n)))]));
    const output = matrices(await outputSimilarityDistances(engine, windows));
    const outputRoutedL2 = matrices(await outputSimilarityDistances(engine, windows, { tokens: 'routed', distance: 'l2' }));
    return { K, runs, exhaustive, output, outputRoutedL2, seconds: (performance.now() - t0) / 1000 };
  });
}

await main();
