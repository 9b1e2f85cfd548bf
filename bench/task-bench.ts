/**
 * Task accuracy on the demo model as a user runs it: the first 12 items of the demo task (4 choices each, all in one
 * padded pass) against the calibration forward pass over 32 × 128 tokens. Items per second, and the task's tokens per
 * second (padding excluded) relative to the calibration pass's: below 1 by the padding and the lm_head it adds.
 */
import type { GpuContext } from '../src/gpu/device.ts';
import { readTask, resolveJobSettings } from '../src/pipeline/job.ts';
import { demoFile, demoJobAndBaseline } from './demo-job.ts';
import type { BenchRow } from './run.ts';

const ITEMS = 12;

export async function benchTask(gpu: GpuContext): Promise<BenchRow[]> {
  const spec = resolveJobSettings({ calibration: { samples: 32, seqLen: 128 } }).calibration;
  const { job, calib, calibrationPass } = await demoJobAndBaseline(gpu, spec, 'nll');
  const task = readTask(await demoFile('task.jsonl'), 'jsonl');
  const before = await calibrationPass();
  const t0 = performance.now();
  const r = await job.taskAccuracy(task, undefined, { limit: ITEMS });
  const taskMs = performance.now() - t0;
  const calibMs = (before + (await calibrationPass())) / 2;
  const calibTokens = calib.windows.windows.length * spec.seqLen;
  const itemsPerS = r.n / (taskMs / 1000);
  const taskTokS = r.tokens / (taskMs / 1000);
  const calibTokS = calibTokens / (calibMs / 1000);
  return [
    {
      name: 'task accuracy: items per second (demo model, demo task)', value: itemsPerS, unit: 'items/s', ratio: taskTokS / calibTokS,
      ratioOf: `the task's tokens/s (${Math.round(taskTokS)}, padding excluded) over the calibration pass's (${Math.round(calibTokS)} tokens/s, ${calibTokens} tokens)`,
      note: `${r.n} items × 4 choices = ${r.sequences} sequences, ${r.tokens} tokens, one padded pass; ${(taskMs / 1000).toFixed(2)} s`,
    },
  ];
}
