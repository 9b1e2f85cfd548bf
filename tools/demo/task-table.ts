/**
 * Measures the demo task's accuracy with the product's own job (the code path of `moe-prune eval --task` and
 * `prune --eval-task`): the original demo model, expert pruning to 6 and 4 of 8 experts, and STUN (6 of 8 experts,
 * then Wanda) at two total sparsities. Writes docs/results/demo-task.json and rewrites the README table between its
 * markers (tests/demo-task.test.ts checks the README against the JSON).
 */
import { join } from 'node:path';
import { openNodeFileSet } from '../../src/cli/node-files.ts';
import { closeNodeGpu, openNodeGpu } from '../../src/cli/node-gpu.ts';
import { PruneJob, readTask, resolveJobSettings, type TaskResult } from '../../src/pipeline/job.ts';
import { demoText as text, DEMO, writeResultsAndTable } from './readme-table.ts';
import { renderTaskTable, TASK_TABLE_END, TASK_TABLE_START, type TaskResults, type TaskRow } from './task-results.ts';

export const CALIBRATION = { samples: 32, seqLen: 128 };
const RUNS: ReadonlyArray<{ label: string; k: number; target: number | null }> = [
  { label: 'original', k: 8, target: null },
  { label: 'expert pruning', k: 6, target: null },
  { label: 'expert pruning', k: 4, target: null },
  { label: 'STUN (experts + Wanda)', k: 6, target: 0.5 },
  { label: 'STUN (experts + Wanda)', k: 6, target: 0.65 },
];

export async function main(): Promise<number> {
  const gpu = await openNodeGpu({ log: (m) => console.error(m) });
  try {
    const job = await PruneJob.open(await openNodeFileSet(join(DEMO, 'model')), gpu);
    const task = readTask(await text('task.jsonl'), 'jsonl');
    const calibSpec = { ...resolveJobSettings({}).calibration, ...CALIBRATION };
    const calib = await job.calibrate(await text('calibration.txt'), calibSpec);
    const rows: TaskRow[] = [];
    let window = 0;
    for (const run of RUNS) {
      const settings = resolveJobSettings({ experts: { keepPerLayer: run.k }, ...(run.target !== null ? { unstructured: { method: 'wanda', sparsity: run.target } } : {}), calibration: calibSpec });
      const plan = run.k < 8 || run.target !== null ? await job.planExperts(settings.experts, calib) : null;
      const stage2 = plan && settings.unstructured ? await job.unstructured(plan, settings.unstructured, calib) : null;
      const t0 = performance.now();
      const r: TaskResult = await job.taskAccuracy(task, plan ? PruneJob.weightPlan(plan, stage2) : undefined);
      const seconds = (performance.now() - t0) / 1000;
      window = r.window;
      rows.push({
        label: run.label, expertsPerLayer: run.k, target: run.target, achieved: stage2 ? stage2.sparsity.achieved : null,
        acc: r.acc, acc_norm: r.acc_norm, acc_stderr: r.acc_stderr, acc_norm_stderr: r.acc_norm_stderr, seconds,
      });
      console.error(`${run.label} k=${run.k} s=${run.target}: acc ${r.acc.toFixed(4)} acc_norm ${r.acc_norm.toFixed(4)} (${seconds.toFixed(1)} s)`);
    }
    const results: TaskResults = {
      format: 'moe-prune-demo-task',
      task: { file: 'public/demo/task.jsonl', items: task.items.length, choices: 4, window },
      calibration: { text: 'public/demo/calibration.txt', samples: calib.windows.windows.length, seqLen: calibSpec.seqLen },
      device: gpu.adapter.label,
      rows,
    };
    await writeResultsAndTable('demo-task.json', results, TASK_TABLE_START, TASK_TABLE_END, renderTaskTable(results));
    return 0;
  } finally {
    closeNodeGpu(gpu);
  }
}
