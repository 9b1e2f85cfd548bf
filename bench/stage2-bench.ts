/**
 * Stage 2 on the demo model as a user runs it: the whole job (stage 1: keep 6 of 8 experts; then Wanda to a total
 * of 0.5, 32 × 128 calibration tokens) against the calibration forward pass alone over the same tokens, and the
 * stage-2 time per decoder layer (dense statistics pass + masks + output pass).
 */
import type { GpuContext } from '../src/gpu/device.ts';
import { resolveJobSettings } from '../src/pipeline/job.ts';
import { demoJobAndBaseline } from './demo-job.ts';
import type { BenchRow } from './run.ts';


export async function benchStageTwo(gpu: GpuContext): Promise<BenchRow[]> {
  const settings = resolveJobSettings({ experts: { keepPerLayer: 6 }, unstructured: { sparsity: 0.5 }, calibration: { samples: 32, seqLen: 128 } });
  const { job, calib, calibrationPass } = await demoJobAndBaseline(gpu, settings.calibration, 'none');
  // The baseline is timed before and after the job and averaged, so a shared machine's drift hits both sides alike.
  const before = await calibrationPass();
  const t1 = performance.now();
  const plan = await job.planExperts(settings.experts, calib);
  const stage2 = await job.unstructured(plan, settings.unstructured!, calib);
  const jobMs = performance.now() - t1;
  const calibMs = (before + (await calibrationPass())) / 2;
  const perLayer = Object.values(stage2.layerMs);
  const layerMs = perLayer.reduce((a, b) => a + b, 0) / Math.max(1, perLayer.length);
  const tokens = calib.windows.windows.length * calib.spec.seqLen;
  return [
    {
      name: 'stage 2: whole job on the demo model (stage 1 + Wanda)', value: jobMs / 1000, unit: 's', ratio: jobMs / calibMs,
      ratioOf: `time of the calibration forward pass alone over the same ${tokens} tokens (${(calibMs / 1000).toFixed(2)} s); ≈ 2 expected: each layer runs dense, then masked`,
      note: `keep 6 of 8 experts, total sparsity 0.5 (achieved ${(100 * stage2.sparsity.achieved).toFixed(1)} %), 32 × 128 tokens`,
    },
    {
      name: 'stage 2: masks per decoder layer (demo model)', value: layerMs, unit: 'ms', ratio: null, ratioOf: '',
      note: `mean of ${perLayer.length} layers: scores + selection + mask read-back of ${6 * 3} expert matrices per layer`,
    },
  ];
}
