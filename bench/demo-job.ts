/**
 * What the demo-model benches share: the demo model's job calibrated on the demo text as a user runs it, and a timer
 * of the calibration forward pass over those tokens, the baseline their ratios divide by.
 */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { openNodeFileSet } from '../src/cli/node-files.ts';
import type { GpuContext } from '../src/gpu/device.ts';
import { PruneJob, type Calibration, type CalibrationSpec, type TextInput } from '../src/pipeline/job.ts';

const DEMO = fileURLToPath(new URL('../public/demo/', import.meta.url));

/** A file of public/demo/ as the job reads text. */
export async function demoFile(name: string): Promise<TextInput> {
  return { name, bytes: new Uint8Array(await readFile(`${DEMO}${name}`)) };
}

/**
 * The job and its calibration; `calibrationPass()` times one forward pass over every calibration window with the
 * statistics the pruning gathers. One window runs first with `warm` output, so the pipelines the bench will use are
 * compiled before anything is timed.
 */
export async function demoJobAndBaseline(gpu: GpuContext, spec: CalibrationSpec, warm: 'nll' | 'none'): Promise<{ job: PruneJob; calib: Calibration; calibrationPass: () => Promise<number> }> {
  const job = await PruneJob.open(await openNodeFileSet(`${DEMO}model`), gpu);
  const calib = await job.calibrate(await demoFile('calibration.txt'), spec);
  const engine = await job.engine();
  await engine.forward(calib.windows.windows.slice(0, 1), { output: warm });
  const calibrationPass = async (): Promise<number> => {
    const t = performance.now();
    await engine.forward(calib.windows.windows, { output: 'none', stats: true });
    return performance.now() - t;
  };
  return { job, calib, calibrationPass };
}
