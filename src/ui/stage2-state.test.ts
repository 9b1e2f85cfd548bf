import { describe, expect, it } from 'vitest';
import { resolveJobSettings } from '../pipeline/job.ts';
import { DEFAULT_STAGE2, secondsLeft, unstructuredFrom, type Stage2Run } from './stage2-state.ts';

const run = (p: Partial<Stage2Run>): Stage2Run => ({
  kind: 'prune',
  controller: new AbortController(),
  progress: null,
  startedAt: 0,
  phase: '',
  phaseStartedAt: 0,
  now: 0,
  passes: 1,
  ...p,
});

describe('stage-2 controls → job settings', () => {
  it('the defaults are the job’s, with S = 50 %', () => {
    const u = unstructuredFrom(DEFAULT_STAGE2);
    expect(u).toEqual({ method: 'wanda', sparsity: 0.5, nm: null, owlM: 5, owlLambda: 0.08, scope: 'experts', unrouted: 'all-tokens' });
    // resolveJobSettings accepts them as they are (no default of the page differs from the CLI's).
    expect(resolveJobSettings({ unstructured: u }).unstructured).toEqual(u);
  });

  it('an N:M pattern leaves S out (the pattern fixes the ratio)', () => {
    const u = unstructuredFrom({ ...DEFAULT_STAGE2, nm: '2:4', sparsityPct: 70 });
    expect(u.sparsity).toBeNull();
    expect(u.nm).toEqual({ n: 2, m: 4 });
    expect(() => resolveJobSettings({ unstructured: u })).not.toThrow();
  });

  it('OWL with N:M is refused by the job', () => {
    expect(() => resolveJobSettings({ unstructured: unstructuredFrom({ ...DEFAULT_STAGE2, method: 'owl', nm: '4:8' }) })).toThrow(/OWL/);
  });
});

describe('time left', () => {
  it('is unknown before the first layer of a phase', () => {
    expect(secondsLeft(run({}))).toBeNull();
    expect(secondsLeft(run({ progress: { phase: 'wanda masks', done: 0, total: 4, unit: 'layers' }, now: 1000 }))).toBeNull();
    expect(secondsLeft(run({ progress: { phase: 'export', done: 1, total: 4, unit: 'bytes' }, now: 1000 }))).toBeNull();
  });

  it('extrapolates the phase’s rate over its remaining layers', () => {
    // 2 of 8 layers in 4 s since the phase began: 6 more at 2 s each.
    const r = run({ progress: { phase: 'wanda masks', done: 2, total: 8, unit: 'layers' }, phaseStartedAt: 1000, now: 5000 });
    expect(secondsLeft(r)).toBeCloseTo(12, 9);
  });

  it('adds a pass still to come (OWL scores before its masks)', () => {
    const r = run({ progress: { phase: 'OWL outlier scores', done: 1, total: 4, unit: 'layers' }, phaseStartedAt: 0, now: 1000, passes: 2 });
    expect(secondsLeft(r)).toBeCloseTo(3 + 4, 9);
  });
});
