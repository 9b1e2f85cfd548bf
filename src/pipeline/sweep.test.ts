import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../cli/main.ts';
import { openNodeFileSet } from '../cli/node-files.ts';
import { closeNodeGpu, openNodeGpu, type NodeGpuContext } from '../cli/node-gpu.ts';
import { NodeOutputFolder } from '../cli/node-output.ts';
import { CALIBRATION_DEFAULTS, DEFAULT_EXPERT_PLAN_SETTINGS, PruneJob, UNSTRUCTURED_DEFAULTS } from './job.ts';
import type { PruneReport } from '../export/report.ts';
import { parseTaskFile } from '../eval/tasks/items.ts';
import {
  accuracyCsv, CSV_HEADER, estimatePerplexity, measureSetting, pointsCsv, runSweep, settingsOf, sweepSecondsLeft, sweepSettings, type SweepBase, type SweepGrid, type SweepSetting, type TradeoffPoint,
} from './sweep.ts';
import { collectIo } from '../../tests/cli-io.ts';

const MIXTRAL = fileURLToPath(new URL('../../fixtures/models/mixtral', import.meta.url));
const HELDOUT = fileURLToPath(new URL('../../fixtures/austen/emma.txt', import.meta.url));
const TMP = mkdtempSync(join(tmpdir(), 'moe-prune-sweep-'));
const CALIB = join(TMP, 'calib.txt');
writeFileSync(CALIB, 'the quick brown fox jumps over the lazy dog and then some more words follow here '.repeat(30));

const base: SweepBase = {
  experts: DEFAULT_EXPERT_PLAN_SETTINGS,
  unstructured: { method: 'wanda', owlM: UNSTRUCTURED_DEFAULTS.owlM, owlLambda: UNSTRUCTURED_DEFAULTS.owlLambda, scope: 'experts', unrouted: 'all-tokens' },
  calibration: { ...CALIBRATION_DEFAULTS, samples: 3, seqLen: 12 },
};

function point(p: Partial<TradeoffPoint>): TradeoffPoint {
  return {
    expertsPerLayer: 4, expertSparsity: 0, unstructuredSparsity: 0, totalSparsity: 0, method: 'none', similarity: 'router', params: 100, nonzeroParams: 100,
    perplexity: 10, measured: true, series: 'original', share: null, ...p,
  };
}

describe('sweep grid', () => {
  // Eight experts, top-2: each removed expert takes 1/8 of the expert scope.
  const counts = [8, 7, 6, 5, 4, 3, 2].map((k) => ({ keep: k, share: (8 - k) / 8 }));

  it('picks per S the expert count closest to share·S (never past S), unstructured-only at share 0, expert-only nearest S', () => {
    const grid: SweepGrid = { totals: [0.5, 0.25], expertShares: [0, 0.5], expertOnly: true, baseline: true };
    expect(sweepSettings(grid, counts)).toEqual([
      { series: 'original', share: null, keep: 8, total: null },
      { series: 'unstructured', share: null, keep: 8, total: 0.25 },
      { series: 'stun', share: 0.5, keep: 7, total: 0.25 },
      { series: 'experts', share: 1, keep: 6, total: null },
      { series: 'unstructured', share: null, keep: 8, total: 0.5 },
      { series: 'stun', share: 0.5, keep: 6, total: 0.5 },
      { series: 'experts', share: 1, keep: 4, total: null },
    ]);
  });

  it('measures coinciding settings once and refuses totals outside (0, 1)', () => {
    // Share ¼ of S = 0.25 asks for 1/16 of the scope: no expert count is closer than keeping all 8, so it is the unstructured point.
    expect(sweepSettings({ totals: [0.25], expertShares: [0, 0.25], expertOnly: false, baseline: false }, counts)).toEqual([{ series: 'unstructured', share: null, keep: 8, total: 0.25 }]);
    expect(() => sweepSettings({ totals: [1], expertShares: [0], expertOnly: false, baseline: false }, counts)).toThrow(/\(0, 1\)/);
    expect(() => sweepSettings({ totals: [0.5], expertShares: [1], expertOnly: false, baseline: false }, counts)).toThrow(/\[0, 1\)/);
  });

  it('time left is the mean time per setting times those still to come', () => {
    expect(sweepSecondsLeft(0, 0, 8)).toBeNull();
    expect(sweepSecondsLeft(6, 2, 8)).toBeCloseTo(18, 9);
  });

  it('estimates interpolate log-perplexity within a series, from the original model at S = 0', () => {
    const pts = [point({ perplexity: 10 }), point({ series: 'unstructured', totalSparsity: 0.5, perplexity: 40, method: 'wanda' })];
    expect(estimatePerplexity(pts, 'unstructured', null, 0.25)).toBeCloseTo(20, 9);
    expect(estimatePerplexity(pts, 'unstructured', null, 0.75)).toBeNull();
    expect(estimatePerplexity(pts, 'stun', 0.5, 0.25)).toBeNull();
  });
});

describe('CSV', () => {
  it('has exactly the documented header and one row per point', () => {
    const csv = pointsCsv([
      point({}),
      point({ series: 'stun', share: 0.5, expertsPerLayer: 3, expertSparsity: 0.25, unstructuredSparsity: 1 / 3, totalSparsity: 0.5, method: 'wanda', nonzeroParams: 60, perplexity: 12.5 }),
      point({ measured: false, perplexity: null }),
    ]);
    const lines = csv.trimEnd().split('\n');
    expect(lines[0]).toBe('expertsPerLayer,expertSparsity,unstructuredSparsity,totalSparsity,method,similarity,params,nonzeroParams,perplexity,measured');
    expect(CSV_HEADER).toBe(lines[0]);
    expect(lines.slice(1)).toEqual(['4,0,0,0,none,router,100,100,10,true', '3,0.25,0.3333333333,0.5,wanda,router,100,60,12.5,true', '4,0,0,0,none,router,100,100,,false']);
    // Accuracy never enters this CSV, even when the points carry it.
    expect(pointsCsv([point({ acc: 0.5, acc_norm: 0.25 })])).toBe(`${CSV_HEADER}\n4,0,0,0,none,router,100,100,10,true\n`);
  });

  it('accuracy goes to a CSV of its own: the points measured with a task, the task named (quoted when it holds a comma)', () => {
    const csv = accuracyCsv([point({ acc: 0.5, acc_norm: 0.25 }), point({ perplexity: 11 }), point({ expertsPerLayer: 3, totalSparsity: 0.25, acc: 1 / 3, acc_norm: 2 / 3 })], 'my,task.jsonl');
    expect(csv.trimEnd().split('\n')).toEqual([
      'expertsPerLayer,expertSparsity,unstructuredSparsity,totalSparsity,method,similarity,params,nonzeroParams,task,acc,acc_norm',
      '4,0,0,0,none,router,100,100,"my,task.jsonl",0.5,0.25',
      `3,0,0,0.25,none,router,100,100,"my,task.jsonl",${1 / 3},${2 / 3}`,
    ]);
  });
});

describe('sweep on the GPU (mixtral fixture: 4 experts, top-2)', () => {
  let gpu: NodeGpuContext;
  let job: PruneJob;
  beforeAll(async () => {
    gpu = await openNodeGpu();
    job = await PruneJob.open(await openNodeFileSet(MIXTRAL), gpu);
  });
  afterAll(() => {
    if (gpu) closeNodeGpu(gpu);
    rmSync(TMP, { recursive: true, force: true });
  });

  const textOf = (path: string) => ({ name: 'calib.txt', bytes: new Uint8Array(readFileSync(path)) });

  it('calibrates by itself, measures every setting, and a measured point equals `moe-prune eval` of the checkpoint `moe-prune prune` writes with its settings', async () => {
    const heldout = await job.heldoutWindows({ name: 'emma.txt', bytes: new Uint8Array(readFileSync(HELDOUT)) }, 24, 3);
    const progress: string[] = [];
    const streamed: TradeoffPoint[] = [];
    const grid: SweepGrid = { totals: [0.5], expertShares: [0, 0.5], expertOnly: true, baseline: true };
    const points = await runSweep(job, grid, { base, calibrationText: textOf(CALIB), heldout }, {
      onProgress: (p) => progress.push(`${p.phase}:${p.done}/${p.total}`),
      onPoint: (p) => streamed.push(p),
    });
    expect(streamed).toEqual(points);
    expect(points.map((p) => [p.series, p.expertsPerLayer, p.method])).toEqual([
      ['original', 4, 'none'], ['unstructured', 4, 'wanda'], ['stun', 3, 'wanda'], ['experts', 2, 'none'],
    ]);
    expect(progress).toContain('sweep:0/4');
    expect(progress.at(-1)).toBe('sweep:4/4');
    for (const p of points) {
      expect(p.measured).toBe(true);
      expect(Number.isFinite(p.perplexity)).toBe(true);
    }
    const [orig, unst, stun, experts] = points as [TradeoffPoint, TradeoffPoint, TradeoffPoint, TradeoffPoint];
    expect(orig.perplexity).toBe((await job.perplexity(heldout)).perplexity);
    expect(unst.expertSparsity).toBe(0);
    expect(stun.expertSparsity).toBe(0.25);
    expect(experts.expertSparsity).toBe(0.5);
    expect(experts.totalSparsity).toBe(0.5);
    // Each row drops ⌊in · s_u⌋ of its inputs, so the achieved total is at most S and close to it.
    expect(unst.totalSparsity).toBeLessThanOrEqual(0.5);
    expect(unst.totalSparsity).toBeGreaterThan(0.45);
    expect(unst.nonzeroParams).toBeLessThan(unst.params);
    expect(experts.params).toBeLessThan(orig.params);
    expect(experts.nonzeroParams).toBe(experts.params);
    expect(new Set(points.map((p) => p.perplexity)).size).toBe(4);

    // The same settings through the CLI: prune, then eval the written checkpoint on the same held-out windows.
    const out = join(TMP, 'stun');
    const io = collectIo();
    const args = ['prune', MIXTRAL, '--out', out, '--experts-per-layer', '3', '--sparsity', '0.5', '--calib-text', CALIB, '--calib-samples', '3', '--calib-seq-len', '12', '--quiet'];
    expect(await main(args, io), io.err()).toBe(0);
    const ev = collectIo();
    expect(await main(['eval', out, '--text', HELDOUT, '--seq-len', '24', '--max-windows', '3', '--json'], ev), ev.err()).toBe(0);
    const evaluated = JSON.parse(ev.out()) as { perplexity: number };
    const row = pointsCsv([stun]).trimEnd().split('\n')[1]!.split(',');
    expect(Number(row[8])).toBe(evaluated.perplexity);
    const report = JSON.parse(readFileSync(join(out, 'prune-report.json'), 'utf8')) as { params: { after: number; nonzeroAfter: number } };
    expect([stun.params, stun.nonzeroParams]).toEqual([report.params.after, report.params.nonzeroAfter]);

    // The export's report and model card carry the points and the exported setting among them.
    const settings = settingsOf(base, { series: 'stun', share: 0.5, keep: 3, total: 0.5 });
    const calibration = await job.calibrate(textOf(CALIB), settings.calibration);
    const m = await measureSetting(job, settings, calibration, heldout, { series: 'stun', share: 0.5 });
    expect(m.perplexity).toBe(stun.perplexity);
    const rows = points.map(({ series: _s, share: _h, ...row }) => row);
    const { series: _s, share: _h, plan: _p, stage2: _t, ...exported } = m;
    const dir = join(TMP, 'with-points');
    const res = await job.export(new NodeOutputFolder(dir, false), {
      plan: m.plan, stage2: m.stage2, settings, calibration, tool: 'MoE Prune Studio (page)', tradeoff: { heldout: 'emma.txt, 3 windows of 24 tokens', points: rows, exported },
    });
    const written = JSON.parse(readFileSync(join(dir, 'prune-report.json'), 'utf8')) as PruneReport;
    expect(written.tradeoff).toEqual({ heldout: 'emma.txt, 3 windows of 24 tokens', points: rows, exported });
    expect(res.report.tradeoff?.exported.perplexity).toBe(stun.perplexity);
    const card = readFileSync(join(dir, 'README.md'), 'utf8');
    expect(card).toContain('Made with MoE Prune Studio (page) by');
    expect(card).not.toContain('MoE Prune Studio (MoE Prune Studio');
    expect(card).toContain('## Size against quality');
    expect(card).toContain(`| 3 | 48.4 % | 33.3 % | wanda | ${(21024).toLocaleString('en-US')}`);
    expect(card.match(/\*\*this checkpoint\*\*/g)).toHaveLength(2);
  });

  it('with a task, every point carries acc / acc_norm equal to PruneJob.taskAccuracy of the same plan and masks; the model card shows them', async () => {
    const heldout = await job.heldoutWindows({ name: 'emma.txt', bytes: new Uint8Array(readFileSync(HELDOUT)) }, 24, 2);
    const file = parseTaskFile(readFileSync(fileURLToPath(new URL('../../fixtures/tasks/ours.jsonl', import.meta.url)), 'utf8'), 'ours.jsonl');
    const task = { file, options: { window: 32 } };
    const grid: SweepGrid = { totals: [0.5], expertShares: [0.5], expertOnly: true, baseline: true };
    const points = await runSweep(job, grid, { base, calibrationText: textOf(CALIB), heldout, task }, {});
    expect(points.map((p) => p.series)).toEqual(['original', 'stun', 'experts']);
    const [orig, stun, experts] = points as [TradeoffPoint, TradeoffPoint, TradeoffPoint];
    expect(orig.acc).toBe((await job.taskAccuracy(file, undefined, { window: 32 })).acc);
    const calibration = await job.calibrate(textOf(CALIB), base.calibration);
    const cases: Array<[TradeoffPoint, SweepSetting]> = [[stun, { series: 'stun', share: 0.5, keep: 3, total: 0.5 }], [experts, { series: 'experts', share: 1, keep: 2, total: null }]];
    for (const [p, s] of cases) {
      const m = await measureSetting(job, settingsOf(base, s), calibration, heldout, s);
      expect(m.acc).toBeUndefined();
      const r = await job.taskAccuracy(file, PruneJob.weightPlan(m.plan, m.stage2), { window: 32 });
      expect([p.acc, p.acc_norm]).toEqual([r.acc, r.acc_norm]);
      expect(p.perplexity).toBe(m.perplexity);
    }
    // The same setting measured alone with the task gives the sweep's numbers.
    const alone = await measureSetting(job, settingsOf(base, { series: 'stun', share: 0.5, keep: 3, total: 0.5 }), calibration, heldout, { series: 'stun', share: 0.5 }, {}, task);
    expect([alone.acc, alone.acc_norm, alone.perplexity]).toEqual([stun.acc, stun.acc_norm, stun.perplexity]);
    const rows = points.map(({ series: _s, share: _h, ...row }) => row);
    const { series: _s, share: _h, plan: _p, stage2: _t, ...exported } = alone;
    const dir = join(TMP, 'with-accuracy');
    const settings = settingsOf(base, { series: 'stun', share: 0.5, keep: 3, total: 0.5 });
    await job.export(new NodeOutputFolder(dir, false), {
      plan: alone.plan, stage2: alone.stage2, settings, calibration, tool: 'MoE Prune Studio (page)', tradeoff: { heldout: 'emma.txt', task: 'ours.jsonl (3 items)', points: rows, exported },
    });
    const written = JSON.parse(readFileSync(join(dir, 'prune-report.json'), 'utf8')) as PruneReport;
    expect(written.tradeoff?.points.map((r) => r.acc)).toEqual(points.map((p) => p.acc));
    expect(written.tradeoff?.exported.acc_norm).toBe(stun.acc_norm);
    const card = readFileSync(join(dir, 'README.md'), 'utf8');
    expect(card).toContain('and zero-shot accuracy (acc / acc_norm) on ours.jsonl (3 items)');
    expect(card).toContain(`| ${(100 * stun.acc!).toFixed(1)} % / ${(100 * stun.acc_norm!).toFixed(1)} % | **this checkpoint** |`);
  });

  it('cancel stops the sweep after the point in progress; the points measured before it were handed on', async () => {
    const heldout = await job.heldoutWindows({ name: 'emma.txt', bytes: new Uint8Array(readFileSync(HELDOUT)) }, 24, 2);
    const ac = new AbortController();
    const streamed: TradeoffPoint[] = [];
    const run = runSweep(job, { totals: [0.25, 0.5], expertShares: [0, 0.5], expertOnly: false, baseline: true }, { base, calibrationText: textOf(CALIB), heldout }, {
      signal: ac.signal,
      onPoint: (p) => {
        streamed.push(p);
        ac.abort();
      },
    });
    await expect(run).rejects.toMatchObject({ code: 'Cancelled' });
    expect(streamed.map((p) => p.series)).toEqual(['original']);
  });
});
