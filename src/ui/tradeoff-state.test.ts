import { describe, expect, it } from 'vitest';
import type { TradeoffPoint } from '../pipeline/job.ts';
import { accuracyPoints, accuracyTaskName, DEFAULT_TRADEOFF, gridOf, parsePercents, secondsLeft, setYAxis, useTradeoff, type StoredPoint, type TradeoffRun } from './tradeoff-state.ts';

const run = (p: Partial<TradeoffRun>): TradeoffRun => ({
  kind: 'sweep', controller: new AbortController(), startedAt: 0, pointsStartedAt: null, now: 0, done: 0, total: 0, detail: '', step: null, ...p,
});

describe('trade-off controls → the job’s sweep grid', () => {
  it('the defaults are the job’s grid: S 25 … 75 % × expert shares 0, ¼, ½, ¾, with expert-only points and the original model', () => {
    expect(gridOf(DEFAULT_TRADEOFF)).toEqual({ totals: [0.25, 0.375, 0.5, 0.625, 0.75], expertShares: [0, 0.25, 0.5, 0.75], expertOnly: true, baseline: true });
  });

  it('percent lists: sorted, distinct, within range; anything else is refused', () => {
    expect(parsePercents('75, 25; 50 25', 1, 99)).toEqual([25, 50, 75]);
    expect(parsePercents('37.5', 1, 99)).toEqual([37.5]);
    expect(parsePercents('', 1, 99)).toBeNull();
    expect(parsePercents('0, 50', 1, 99)).toBeNull();
    expect(parsePercents('50, abc', 1, 99)).toBeNull();
    expect(parsePercents('100', 0, 99)).toBeNull();
  });
});

describe('sweep time left', () => {
  it('is unknown until the first setting is measured, then the mean time per setting times those left', () => {
    expect(secondsLeft(run({ total: 8 }))).toBeNull();
    expect(secondsLeft(run({ total: 8, pointsStartedAt: 1000, now: 5000 }))).toBeNull();
    expect(secondsLeft(run({ total: 8, done: 2, pointsStartedAt: 1000, now: 7000 }))).toBeCloseTo(18, 9);
  });
});

describe('accuracy on the y axis', () => {
  const point = (p: Partial<TradeoffPoint>): TradeoffPoint => ({
    expertsPerLayer: 4, expertSparsity: 0, unstructuredSparsity: 0, totalSparsity: 0, method: 'none', similarity: 'router', params: 100, nonzeroParams: 100,
    perplexity: 10, measured: true, series: 'original', share: null, ...p,
  });
  const stored = (p: Partial<TradeoffPoint>, context: string, task?: string): StoredPoint => ({
    point: point(p), context, setting: `${p.expertsPerLayer ?? 4}|`, at: 0, ...(task ? { task: { key: task, name: `${task}.jsonl, 2 items` } } : {}),
  });

  it('shows the points of the context on screen measured with the task chosen now, and names that task', () => {
    const points = [
      stored({ acc: 0.5, acc_norm: 0.5 }, 'c', 'arc'),
      stored({ expertsPerLayer: 3, acc: 0.25, acc_norm: 0 }, 'c', 'piqa'),
      stored({ expertsPerLayer: 2 }, 'c'),
      stored({ expertsPerLayer: 2, acc: 1, acc_norm: 1 }, 'other', 'arc'),
    ];
    expect(accuracyPoints({ points }, 'c', 'arc').map((p) => p.acc)).toEqual([0.5]);
    expect(accuracyPoints({ points }, 'c', 'piqa').map((p) => p.expertsPerLayer)).toEqual([3]);
    expect(accuracyPoints({ points }, null, 'arc')).toEqual([]);
    expect(accuracyTaskName({ points }, 'c', 'piqa')).toBe('piqa.jsonl, 2 items');
    expect(accuracyTaskName({ points }, 'c', 'mmlu')).toBeNull();
  });

  it('choosing accuracy also measures the task from then on; perplexity leaves that choice alone', () => {
    useTradeoff.setState({ yAxis: 'perplexity', withTask: false });
    setYAxis('accuracy');
    expect(useTradeoff.getState()).toMatchObject({ yAxis: 'accuracy', withTask: true });
    setYAxis('perplexity');
    expect(useTradeoff.getState()).toMatchObject({ yAxis: 'perplexity', withTask: true });
  });
});
