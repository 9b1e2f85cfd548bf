import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openNodeFileSet } from '../cli/node-files.ts';
import { needsCalibrationText, PruneJob, resolveJobSettings } from '../pipeline/job.ts';
import { expertPlanFromKept, layerPlanFromKept } from '../prune/experts/saliency.ts';
import { adoptComparedPlan, defaultControls, planSettings, setControls, usePlan } from './prune-state.ts';

// "Use as plan" without a browser: the plan panel's store takes a compared plan and its settings; the CPU job drafts
// the clustering plan it falls back to.
describe('a compared plan taken as the plan', () => {
  it('shows its kept experts, carries its criterion into the job settings, and is dropped by the next control change', async () => {
    const files = await openNodeFileSet(join(import.meta.dirname, '..', '..', 'fixtures', 'models', 'qwen3_moe'));
    const job = await PruneJob.open(files, undefined);
    await job.prepareDraft();
    const { cat } = job;
    const controls = defaultControls(cat);
    usePlan.setState({ source: files, model: { fileSet: files, cat, job, device: 'CPU', distancesMs: 0 }, controls, plan: job.draftPlan(resolveJobSettings({ experts: planSettings(controls, cat) }).experts) });
    const kept = [1, 2, 5];
    const layers = cat.summary.moeLayers.map((layer) => layerPlanFromKept({ layer, n: 8, topK: 2 }, kept));
    const compared = expertPlanFromKept(layers, 3, { expertScore: 'reap' });

    adoptComparedPlan(compared);
    const s = usePlan.getState();
    expect(s.planError).toBeNull();
    expect(s.plan).toBe(compared);
    expect(s.controls).toMatchObject({ mode: 'uniform', keep: 3, expertScore: 'reap', adopted: compared });
    expect(s.numbers).toMatchObject({ expertsAfter: 3 * cat.moeLayers.length, uniformK: 3 });
    // Stage 2 and the export re-plan from these settings: the criterion, K, and a calibration text it needs.
    const settings = resolveJobSettings({ experts: planSettings(s.controls!, cat) });
    expect(settings.experts).toMatchObject({ expertScore: 'reap', keepPerLayer: 3, mode: 'uniform', similarity: 'router' });
    expect(needsCalibrationText(settings)).toBe(true);

    // Any control change returns to clustering (the draft plan of the controls).
    setControls({ keep: 4 });
    const t = usePlan.getState();
    expect(t.controls).toMatchObject({ keep: 4, expertScore: null, adopted: null, similarity: 'router' });
    expect(t.plan).not.toBe(compared);
    expect(t.plan!.layers.every((l) => l.kept.length === 4)).toBe(true);
    expect(needsCalibrationText(resolveJobSettings({ experts: planSettings(t.controls!, cat) }))).toBe(false);

    // Output similarity taken as the plan falls back to router similarity the same way.
    adoptComparedPlan({ ...compared, settings: { ...compared.settings, expertScore: null, similarity: 'output', outputTokens: 'routed' } });
    expect(planSettings(usePlan.getState().controls!, cat)).toMatchObject({ similarity: 'output', outputTokens: 'routed', outputDistance: 'cosine' });
    setControls({ normalize: true });
    expect(usePlan.getState().controls).toMatchObject({ similarity: 'router', adopted: null });
  });
});
