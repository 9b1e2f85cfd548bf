/**
 * On a checkpoint whose experts are noisy copies of a few parents (fixtures/mixtral-parents, made by
 * oracle/make_parent_fixture.py: 8 experts = 4 parents × 2 children, children's router rows near their parent's so
 * they are chosen together), clustering into K = 4 must put each parent's children together — by expert-output
 * similarity (all tokens or routed only, cosine or L2) and by co-activation.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { describeGpu } from '../../tests/gpu-harness.ts';
import { openNodeFileSet } from '../cli/node-files.ts';
import { resolveExpertPlanSettings, type ExpertPlanSettings } from '../prune/experts/plan.ts';
import { CALIBRATION_DEFAULTS, PruneJob } from './job.ts';

const FIXTURE = join(import.meta.dirname, '..', '..', 'fixtures', 'mixtral-parents');
const PARENT_OF: number[] = (JSON.parse(readFileSync(join(FIXTURE, 'parents.json'), 'utf8')) as { parent_of_expert: number[] }).parent_of_expert;
const PARENTS = new Set(PARENT_OF).size;
const TEXT = { name: 'emma.txt', bytes: new Uint8Array(readFileSync(join(import.meta.dirname, '..', '..', 'fixtures', 'austen', 'emma.txt'))).subarray(0, 20000) };

/** The children of each parent, as clusters of expert indices. */
const families = (): string[] =>
  Array.from({ length: PARENTS }, (_, p) => PARENT_OF.flatMap((q, e) => (q === p ? [e] : [])).join(',')).sort();

describeGpu('noisy copies of parents: output similarity and co-activation recover the parents', (gpu) => {
  const cases: Array<[string, Partial<ExpertPlanSettings>]> = [
    ['output, cosine over all tokens', { similarity: 'output' }],
    ['output, L2 over routed tokens', { similarity: 'output', outputTokens: 'routed', outputDistance: 'l2' }],
    ['co-activation', { similarity: 'coactivation' }],
  ];
  it.each(cases)('%s: K = 4 clusters, each one parent\'s children', async (_, s) => {
    const job = await PruneJob.open(await openNodeFileSet(FIXTURE), gpu());
    const calib = await job.calibrate(TEXT, { ...CALIBRATION_DEFAULTS, samples: 8, seqLen: 32 });
    const plan = await job.planExperts(resolveExpertPlanSettings({ mode: 'uniform', keepPerLayer: PARENTS, ...s }), calib);
    expect(plan.layers.length).toBe(2);
    for (const l of plan.layers) expect(l.clusters.map((c) => c.members.join(',')).sort(), `layer ${l.layer}`).toEqual(families());
  });

  it('the routing spreads tokens over every expert, and children of one parent are chosen together', async () => {
    const job = await PruneJob.open(await openNodeFileSet(FIXTURE), gpu());
    const calib = await job.calibrate(TEXT, { ...CALIBRATION_DEFAULTS, samples: 8, seqLen: 32 });
    const co = await job.measureCoactivation(calib);
    const E = PARENT_OF.length;
    for (const [layer, a] of co.byLayer) {
      let within = 0;
      let across = 0;
      for (let i = 0; i < E; i++) for (let j = i + 1; j < E; j++) (PARENT_OF[i] === PARENT_OF[j] ? (within += a[i * E + j]!) : (across += a[i * E + j]!));
      expect(within, `layer ${layer}`).toBeGreaterThan(4 * across);
      // Every parent's pair is chosen together on some tokens (no parent is starved).
      for (let e = 0; e < E; e += 2) expect(a[e * E + e + 1]!, `layer ${layer} pair ${e}`).toBeGreaterThan(0);
    }
  });
});
