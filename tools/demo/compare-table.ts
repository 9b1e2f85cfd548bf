/**
 * Runs `moe-prune compare`'s job (every expert-choice criterion on one calibration) on the demo model at two K and
 * writes docs/results/demo-compare.json, then the README table between its markers.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openNodeFileSet } from '../../src/cli/node-files.ts';
import { closeNodeGpu, openNodeGpu } from '../../src/cli/node-gpu.ts';
import { compareExpertChoices } from '../../src/pipeline/compare-experts.ts';
import { PruneJob, resolveJobSettings, type TextInput } from '../../src/pipeline/job.ts';
import { COMPARE_END, COMPARE_START, renderCompareTable, type CompareResults } from './compare-results.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DEMO = join(ROOT, 'public/demo');
const KS = [6, 4];

async function text(name: string): Promise<TextInput> {
  return { name, bytes: new Uint8Array(await readFile(join(DEMO, name))) };
}

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
    await writeFile(join(ROOT, 'docs/results/demo-compare.json'), `${JSON.stringify(results, null, 2)}\n`);
    const readme = await readFile(join(ROOT, 'README.md'), 'utf8');
    const a = readme.indexOf(COMPARE_START);
    const b = readme.indexOf(COMPARE_END);
    if (a < 0 || b < a) throw new Error('README.md has no comparison table markers');
    await writeFile(join(ROOT, 'README.md'), readme.slice(0, a) + renderCompareTable(results) + readme.slice(b + COMPARE_END.length));
    return 0;
  } finally {
    closeNodeGpu(gpu);
  }
}
