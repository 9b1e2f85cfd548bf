import { describe, expect, it } from 'vitest';
import type { TradeoffPoint } from '../pipeline/job.ts';
import { accuracyPoints, accuracyTaskName, DEFAULT_TRADEOFF, gridOf, ownTextNames, parsePercents, secondsLeft, setYAxis, textDigest, textIdentity, textsKey, useTradeoff, type StoredPoint, type TradeoffRun } from './tradeoff-state.ts';

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

describe('the texts of measured points survive a reload', () => {
  const file = (id: number, name: string, content: string) => ({ source: 'file' as const, file: { id, name, content, bytes: new TextEncoder().encode(content) } });
  const calib = { count: 8, length: 96, sampling: 'first' as const, seed: 0 };
  const heldout = { length: 128, maxWindows: 16 };

  it('a point’s context names a user’s text by name and size, not by its id in the page: the same file picked again after a reload matches', () => {
    const before = textsKey({ calibText: file(1, 'c.txt', 'calibrate'), calib, heldoutText: file(2, 'h.txt', 'held out'), heldout });
    const after = textsKey({ calibText: file(41, 'c.txt', 'calibrate'), calib, heldoutText: file(42, 'h.txt', 'held out'), heldout });
    expect(after).toEqual(before);
    expect(before.heldout).toBe('file:h.txt:8|128|16');
    expect(textsKey({ calibText: file(1, 'c.txt', 'calibrate'), calib, heldoutText: file(2, 'h.txt', 'other text'), heldout }).heldout).not.toBe(before.heldout);
    // The built-in samples keep the key sessions saved before this change used.
    const sample = { source: 'sample' as const, file: null };
    expect(textsKey({ calibText: sample, calib, heldoutText: sample, heldout })).toEqual({ calibration: 'sample|{"samples":8,"seqLen":96,"sampling":"first","seed":0}', heldout: 'sample|128|16' });
    expect(textIdentity({ source: 'sample', file: file(3, 'x.txt', 'x').file })).toBe('sample');
  });

  it('records each text by name and SHA-256, and lists the user’s own texts once', async () => {
    const d = await textDigest({ name: 'abc.txt', bytes: new TextEncoder().encode('abc') }, true);
    expect(d).toEqual({ name: 'abc.txt', sha256: 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad', own: true });
    const sample = await textDigest({ name: 'heldout.txt', bytes: new Uint8Array(0) }, false);
    expect(ownTextNames([{ texts: { calibration: d, heldout: sample } }, { texts: { calibration: null, heldout: { ...d, name: 'h.txt' } } }, {}, { texts: { calibration: d, heldout: sample } }]))
      .toEqual(['calibration: abc.txt', 'held-out: h.txt']);
    expect(ownTextNames([{ texts: { calibration: null, heldout: sample } }])).toEqual([]);
  });
});
