/**
 * Runs `moe-prune compare`'s job (every expert-choice criterion on one calibration) on the demo model at two K and
 * writes docs/results/demo-compare.json, then the README table between its markers.
 */
import { join } from 'node:path';
import { openNodeFileSet } from '../../src/cli/node-files.ts';
import { closeNodeGpu, openNodeGpu } from '../../src/cli/node-gpu.ts';
import { compareExpertChoices } from '../../src/pipeline/compare-experts.ts';
import { PruneJob, resolveJobSettings } from '../../src/pipeline/job.ts';
import { COMPARE_END, COMPARE_START, renderCompareTable, type CompareResults } from './compare-results.ts';
import { demoText as text, DEMO, writeResultsAndTable } from './readme-table.ts';

const KS = [6, 4];

export async function main(): Promise<number> {
  const gpu = await openNodeGpu({ log: (m) => console.error(m) });
  try {
    const job = await PruneJob.open(await openNodeFileSet(join(DEMO, 'model')), gpu);
    const calib = await job.calibrate(await text('calibration.txt'), { ...resolveJobSettings({}).calibration, samples: 16, seqLen: 128 });
    const windows = await job.heldoutWindows(await text('heldout.txt'), 128, 32);
    let original = 0;
    const byK: Array<CompareResults['byK'][number]> = [];
    for (const k of KS) {
      const c = await compareExpertChoices(job, calib, k, { evaluation: windows });
      original = c.original.perplexity!.perplexity;
      byK.push({
        keepPerLayer: k,
        rows: c.results.map((x) => ({
          criterion: x.criterion, meanError: x.meanError, perplexity: x.perplexity!.perplexity,
          seconds: x.seconds.choose + x.seconds.reconstruction, subsets: x.exhaustive?.subsets ?? null,
        })),
      });
      console.error(`K = ${k}: ${byK.at(-1)!.rows.map((r) => `${r.criterion} ${r.perplexity.toFixed(3)}`).join(', ')}`);
    }
    const results: CompareResults = {
      format: 'moe-prune-demo-compare',
      heldout: { text: 'public/demo/heldout.txt', seqLen: 128, windows: windows.windows.length },
      calibration: { text: 'public/demo/calibration.txt', samples: calib.windows.windows.length, seqLen: 128 },
      original,
      byK,
    };
    await writeResultsAndTable('demo-compare.json', results, COMPARE_START, COMPARE_END, renderCompareTable(results));
    return 0;
  } finally {
    closeNodeGpu(gpu);
  }
}
