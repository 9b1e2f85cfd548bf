import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MemoryFolder } from '../../tests/export-helpers.ts';
import { keepTopK } from '../prune/experts/saliency.ts';
import { openNodeFileSet } from './node-files.ts';
import { main } from './main.ts';
import { getTestGpu } from '../../tests/gpu-harness.ts';
import { PruneJob, resolveJobSettings } from '../pipeline/job.ts';
import { keepRuleAt } from '../pipeline/expert-choice.ts';
import { collectIo } from '../../tests/cli-io.ts';

const MODELS = fileURLToPath(new URL('../../fixtures/models', import.meta.url));
const CALIB = fileURLToPath(new URL('../../fixtures/austen/emma.txt', import.meta.url));
const HELD = fileURLToPath(new URL('../../fixtures/austen/prideprejudice.txt', import.meta.url));
const TINY = ['--calib-samples', '3', '--calib-seq-len', '16'];

interface Row {
  criterion: string;
  kept: Record<string, number[]>;
  reconstruction: { mean: number; layers: Array<{ layer: number; error: number; tokens: number }> };
  perplexity: { perplexity: number; tokens: number } | null;
  seconds: { choose: number; reconstruction: number; perplexity: number | null };
  scores?: Array<{ layer: number; reap: number[]; ean: number[]; frequency: number[]; kept: number[] }>;
  exhaustive?: { subsets: number; layers: Array<{ layer: number; kept: number[]; error: number; subsets: number }> };
}

async function compareJson(
  dir: string, ...extra: string[]
): Promise<{ criteria: Row[]; original: { perplexity: { perplexity: number } | null }; calibration: { tokens: number }; keepPerLayer: number; skipped: unknown[] }> {
  const io = collectIo();
  const code = await main(['compare', join(MODELS, dir), '--calib-text', CALIB, ...TINY, '--json', ...extra], io);
  expect(code, io.err()).toBe(0);
  return JSON.parse(io.out());
}

describe('moe-prune compare', () => {
  it('every criterion on one calibration: K kept per layer, reconstruction per MoE layer and its mean, perplexity, times', async () => {
    const r = await compareJson('qwen3_moe', '--experts-per-layer', '4', '--eval-text', HELD, '--seq-len', '16', '--max-windows', '2');
    expect(r.criteria.map((c) => c.criterion)).toEqual(['stun-router', 'stun-coactivation', 'stun-mixed', 'reap', 'ean', 'frequency', 'random', 'exhaustive', 'output']);
    expect(r.skipped).toEqual([]);
    expect(r.calibration.tokens).toBe(48);
    const ppl0 = r.original.perplexity!.perplexity;
    expect(ppl0).toBeGreaterThan(1);
    for (const c of r.criteria) {
      expect(Object.keys(c.kept)).toEqual(['0', '1']);
      for (const k of Object.values(c.kept)) expect(k).toHaveLength(4);
      expect(c.reconstruction.layers.map((l) => l.layer)).toEqual([0, 1]);
      for (const l of c.reconstruction.layers) expect(l.tokens).toBe(48);
      expect(c.reconstruction.mean).toBeCloseTo((c.reconstruction.layers[0]!.error + c.reconstruction.layers[1]!.error) / 2, 12);
      expect(c.reconstruction.mean).toBeGreaterThan(0);
      expect(c.perplexity!.tokens).toBe(30);
      expect(c.perplexity!.perplexity).not.toBe(ppl0);
      expect(c.seconds.choose).toBeGreaterThanOrEqual(0);
    }
    // Saliency runs report their scores; the kept set is the top K of the criterion's own scores (ties: lower index).
    for (const name of ['reap', 'ean', 'frequency'] as const) {
      const c = r.criteria.find((x) => x.criterion === name)!;
      for (const s of c.scores!) {
        expect(c.kept[String(s.layer)]).toEqual(s.kept);
        expect(s.kept).toEqual(keepTopK(s[name], 4, { n: 8, topK: 2 }));
      }
    }
    // Exhaustive: C(8, 4) = 70 subsets per layer; its choice has the least error of all criteria in every layer (up to float noise).
    const ex = r.criteria.find((c) => c.criterion === 'exhaustive')!;
    expect(ex.exhaustive!.subsets).toBe(140);
    ex.exhaustive!.layers.forEach((l, i) => {
      expect(l.kept).toEqual(ex.kept[String(l.layer)]);
      expect(Math.abs(l.error - ex.reconstruction.layers[i]!.error)).toBeLessThanOrEqual(1e-3 * l.error);
    });
    expect(Math.abs(ex.reconstruction.layers[0]!.error - Math.min(...r.criteria.map((c) => c.reconstruction.layers[0]!.error)))).toBeLessThanOrEqual(1e-4);
    // The same seed draws the same random plan; another seed another one.
    const again = await compareJson('qwen3_moe', '--experts-per-layer', '4', '--criteria', 'random,reap');
    expect(again.criteria.map((c) => c.criterion)).toEqual(['random', 'reap']);
    expect(again.criteria[0]!.kept).toEqual(r.criteria.find((c) => c.criterion === 'random')!.kept);
    expect(again.criteria[1]!.kept).toEqual(r.criteria.find((c) => c.criterion === 'reap')!.kept);
    expect(again.original.perplexity).toBeNull();
    const other = await compareJson('qwen3_moe', '--experts-per-layer', '4', '--criteria', 'random', '--seed', '5');
    expect(other.criteria[0]!.kept).not.toEqual(again.criteria[0]!.kept);
  });

  it('prints one table and the kept experts (DeepSeek-V3: grouped routing keeps K / n_group per group)', async () => {
    const io = collectIo();
    const code = await main(['compare', join(MODELS, 'deepseek_v3'), '--experts-per-layer', '4', '--calib-text', CALIB, ...TINY, '--calib-sampling', 'random', '--calib-seed', '2', '--criteria', 'stun-router,ean,random,exhaustive,output'], io);
    expect(code, io.err()).toBe(0);
    const lines = io.out().split('\n');
    expect(lines[0]).toMatch(/^4 experts kept per MoE layer; calibration emma\.txt: 3 × 16 tokens; error = /);
    expect(lines[1]).toMatch(/^criterion\s+mean error\s+error per MoE layer \(1, 2\)\s+seconds \(choose \/ error\)$/);
    expect(lines[2]).toMatch(/^stun-router\s+\d\.\d{4}\s+\d\.\d{4} \d\.\d{4}\s+\d+\.\d\d \/ \d+\.\d\d$/);
    const keptLines = lines.filter((l) => /^(stun-router|ean|random|exhaustive|output)\s+1: \[/.test(l));
    expect(keptLines).toHaveLength(5);
    // C(4, 2)² = 36 subsets per layer (two per routing group).
    expect(io.out()).toMatch(/\nexhaustive: 72 subsets scored \(layer 1: 36, layer 2: 36\)\n$/);
    for (const l of keptLines)
      for (const m of l.matchAll(/\d: \[([\d ]+)\]/g)) {
        const kept = m[1]!.split(' ').map(Number);
        expect([kept.filter((e) => e < 4).length, kept.filter((e) => e >= 4).length]).toEqual([2, 2]);
      }
    expect(io.err()).toMatch(/using WebGPU adapter/);
  });

  it('refusals: one line naming the rule, exit 2', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['compare', join(MODELS, 'mixtral'), '--calib-text', CALIB], /--experts-per-layer K is required/],
      [['compare', join(MODELS, 'mixtral'), '--experts-per-layer', '2'], /--calib-text <file> is required/],
      [['compare', join(MODELS, 'mixtral'), '--experts-per-layer', '2', '--calib-text', CALIB, '--criteria', 'reap,magic'], /unknown criterion "magic"/],
      [['compare', join(MODELS, 'mixtral'), '--experts-per-layer', '2', '--calib-text', CALIB, '--seq-len', '8'], /--seq-len needs --eval-text/],
      [['compare', join(MODELS, 'mixtral'), '--experts-per-layer', '2', '--calib-text', CALIB, '--calib-seed', '3'], /--calib-seed only applies to --calib-sampling random/],
      [['compare', join(MODELS, 'mixtral'), '--experts-per-layer', '1', '--calib-text', CALIB, ...TINY], /layer 0: keeping 1 experts is below the router's top-k floor of 2/],
      [['compare', join(MODELS, 'deepseek_v3'), '--experts-per-layer', '5', '--calib-text', CALIB, ...TINY], /layer 1: keeping 5 experts breaks grouped routing; K must be a multiple of n_group = 2/],
    ];
    for (const [args, want] of cases) {
      const io = collectIo();
      expect(await main(args, io), args.join(' ')).toBe(2);
      expect(io.err()).toMatch(want);
      expect(io.err().trim().split('\n').filter((l) => !/using WebGPU adapter/.test(l))).toHaveLength(1);
    }
  });

  it('a saliency plan exports like any expert plan (kept experts in the report)', async () => {
    const gpu = await getTestGpu();
    const job = await PruneJob.open(await openNodeFileSet(join(MODELS, 'mixtral')), gpu);
    const calib = await job.calibrate({ name: 'emma.txt', bytes: new TextEncoder().encode('Emma Woodhouse, handsome, clever, and rich, with a comfortable home and happy disposition. '.repeat(8)) }, { samples: 2, seqLen: 16, sampling: 'first', seed: 0 });
    const scored = await job.scoreExperts(calib, 'reap', 2);
    for (const s of scored.scores) expect(s.kept).toEqual(keepTopK(s.reap, 2, keepRuleAt((await job.engine()).arch, s.layer)));
    const recon = await job.reconstructionError(calib, scored.plan);
    expect(recon).toHaveLength(2);
    const out = new MemoryFolder();
    const res = await job.export(out, { plan: scored.plan, stage2: null, settings: resolveJobSettings({ experts: { keepPerLayer: 2 } }), calibration: calib, tool: 'test' });
    expect(out.committed).toBe(true);
    expect(res.report.keptExperts).toEqual(Object.fromEntries(scored.plan.layers.map((l) => [String(l.layer), l.kept])));
  });
});
