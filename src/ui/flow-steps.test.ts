import { describe, expect, it } from 'vitest';
import { formatBytes } from '../core/format.ts';
import { flowSteps, stepState, type FlowFacts, type StepFacts, type StepId } from './flow-steps.ts';

const GPU = formatBytes(5e8);
const idle: StepFacts = { running: false, done: false };
const facts = (steps: Partial<Record<StepId, StepFacts>>, over: Partial<FlowFacts> = {}): FlowFacts => ({
  steps: { load: idle, calibrate: idle, plan: idle, unstructured: idle, evaluate: idle, export: idle, ...steps },
  layers: 24,
  largestLayerBytes: 5e8,
  secondsPerLayer: null,
  exportBytes: null,
  ...over,
});

describe('flow steps', () => {
  it('state: running beats done; done with other settings is stale; else not started', () => {
    expect(stepState(idle)).toBe('not-started');
    expect(stepState({ running: true, done: true })).toBe('running');
    expect(stepState({ running: false, done: true })).toBe('done');
    expect(stepState({ running: false, done: true, stale: true })).toBe('stale');
    expect(stepState({ running: false, done: false, stale: true })).toBe('not-started');
  });

  it('transitions of one step: not started (cost) → running (progress, time left) → done → stale (cost again)', () => {
    const before = flowSteps(facts({}, { secondsPerLayer: 0.5 })).find((s) => s.id === 'calibrate')!;
    expect(before).toEqual({ id: 'calibrate', label: 'Calibrate', state: 'not-started', detail: `GPU ≈ ${GPU} · ≈ 12 s` });
    const running = flowSteps(facts({ calibrate: { running: true, done: false, progress: { done: 3, total: 26 }, secondsLeft: 11.6 } })).find((s) => s.id === 'calibrate')!;
    expect(running.state).toBe('running');
    expect(running.detail).toBe('3 / 26 · about 12 s left');
    const done = flowSteps(facts({ calibrate: { running: false, done: true } })).find((s) => s.id === 'calibrate')!;
    expect(done).toMatchObject({ state: 'done', detail: null });
    const stale = flowSteps(facts({ calibrate: { running: false, done: true, stale: true } }, { secondsPerLayer: 5 })).find((s) => s.id === 'calibrate')!;
    expect(stale).toMatchObject({ state: 'stale', detail: `a setting changed · GPU ≈ ${GPU} · ≈ 2 min` });
  });

  it('costs: time unknown until a layer was measured; evaluate is two passes; export names the disk it needs', () => {
    const v = flowSteps(facts({}, { secondsPerLayer: null, exportBytes: 3e9 }));
    expect(v.map((s) => s.id)).toEqual(['load', 'calibrate', 'plan', 'unstructured', 'evaluate', 'export']);
    expect(v.find((s) => s.id === 'calibrate')!.detail).toBe(`GPU ≈ ${GPU} · time: after the first layers`);
    expect(v.find((s) => s.id === 'export')!.detail).toBe(`disk ${formatBytes(3e9)}`);
    expect(v.find((s) => s.id === 'plan')!.detail).toBeNull();
    const timed = flowSteps(facts({}, { secondsPerLayer: 1 }));
    expect(timed.find((s) => s.id === 'evaluate')!.detail).toBe(`GPU ≈ ${GPU} · ≈ 48 s`);
    expect(flowSteps(facts({ load: { running: true, done: false, progress: null } }))[0]).toMatchObject({ state: 'running', detail: 'starting…' });
  });
});
