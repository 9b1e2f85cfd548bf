import { describe, expect, it } from 'vitest';
import { DEFAULT_TRADEOFF, gridOf, parsePercents, secondsLeft, type TradeoffRun } from './tradeoff-state.ts';

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
