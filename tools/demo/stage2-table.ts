/**
 * Measures Wanda-only vs STUN (expert pruning + Wanda) vs magnitude on the demo model at several total sparsities,
 * with the product's own job (the CLI's code path), exports each checkpoint to bench/.work/demo-stage2/, and records
 * what was measured on which files (shard digests) in docs/results/demo-stage2.json plus every run's report; then
 * rewrites the README table between its markers. oracle/tests/test_demo_stage2.py checks the numbers against the files.
 */
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256Hex } from '../../src/core/digest.ts';
import { openNodeFileSet } from '../../src/cli/node-files.ts';
import { closeNodeGpu, openNodeGpu } from '../../src/cli/node-gpu.ts';
import { NodeOutputFolder } from '../../src/cli/node-output.ts';
import { PruneJob, resolveJobSettings } from '../../src/pipeline/job.ts';
import { demoText as text, DEMO, ROOT, writeResultsAndTable } from './readme-table.ts';
import { renderStage2Table, TABLE_END, TABLE_START, type Stage2Results, type Stage2Row } from './stage2-results.ts';

const WORK = join(ROOT, 'bench/.work/demo-stage2');
const RESULTS = join(ROOT, 'docs/results');

export const HELDOUT = { seqLen: 128, windows: 32 };
export const CALIBRATION = { samples: 32, seqLen: 128 };
const TARGETS = [0.5, 0.65, 0.75];
const METHODS: ReadonlyArray<{ label: Stage2Row['label']; k: number; method: 'wanda' | 'magnitude' }> = [
  { label: 'magnitude', k: 8, method: 'magnitude' },
  { label: 'Wanda', k: 8, method: 'wanda' },
  { label: 'STUN', k: 6, method: 'wanda' },
  { label: 'STUN', k: 4, method: 'wanda' },
];

export async function main(args: string[]): Promise<number> {
  const only = args.includes('--quick') ? 1 : TARGETS.length;
  const gpu = await openNodeGpu({ log: (m) => console.error(m) });
  try {
    const files = await openNodeFileSet(join(DEMO, 'model'));
    const job = await PruneJob.open(files, gpu);
    const calibSpec = { ...resolveJobSettings({}).calibration, ...CALIBRATION };
    const calib = await job.calibrate(await text('calibration.txt'), calibSpec);
    const windows = await job.heldoutWindows(await text('heldout.txt'), HELDOUT.seqLen, HELDOUT.windows);
    const original = await job.perplexity(windows);
    console.error(`original: ${original.perplexity.toFixed(3)}`);
    await rm(WORK, { recursive: true, force: true });
    await mkdir(join(RESULTS, 'demo-stage2'), { recursive: true });
    const rows: Stage2Row[] = [];
    for (const target of TARGETS.slice(0, only))
      for (const m of METHODS) {
        const settings = resolveJobSettings({
          experts: { keepPerLayer: m.k },
          unstructured: { method: m.method, sparsity: target },
          calibration: calibSpec,
        });
        const t0 = performance.now();
        const plan = await job.planExperts(settings.experts, calib);
        const stage2 = await job.unstructured(plan, settings.unstructured!, m.method === 'magnitude' ? null : calib);
        const after = await job.perplexity(windows, PruneJob.weightPlan(plan, stage2));
        const id = `${m.label.toLowerCase()}-k${m.k}-s${Math.round(target * 100)}`;
        const out = join(WORK, id);
        const res = await job.export(new NodeOutputFolder(out, true), {
          plan, stage2, settings, calibration: m.method === 'magnitude' ? null : calib, tool: 'tools/demo/stage2-table.mjs',
          evaluation: { windows, before: original, after },
        });
        const shards: Record<string, string> = {};
        for (const f of (await readdir(out)).filter((f) => f.endsWith('.safetensors')).sort()) shards[f] = await sha256Hex(new Uint8Array(await readFile(join(out, f))));
        await writeFile(join(RESULTS, 'demo-stage2', `${id}.json`), `${JSON.stringify(res.report, null, 2)}\n`);
        rows.push({ report: `${id}.json`, label: m.label, expertsPerLayer: m.k, target, achieved: stage2.sparsity.achieved, perplexity: after.perplexity, shards });
        console.error(`${id}: achieved ${(100 * stage2.sparsity.achieved).toFixed(2)} %, perplexity ${after.perplexity.toFixed(3)} (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
      }
    const results: Stage2Results = {
      format: 'moe-prune-demo-stage2',
      heldout: { text: 'public/demo/heldout.txt', seqLen: HELDOUT.seqLen, windows: windows.windows.length, tokens: original.tokens },
      calibration: { text: 'public/demo/calibration.txt', samples: calib.windows.windows.length, seqLen: calibSpec.seqLen },
      original: original.perplexity,
      rows,
    };
    await writeResultsAndTable('demo-stage2.json', results, TABLE_START, TABLE_END, renderStage2Table(results));
    return 0;
  } finally {
    closeNodeGpu(gpu);
  }
}
