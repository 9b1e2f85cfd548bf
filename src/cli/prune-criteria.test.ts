import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import type { PruneReport } from '../export/report.ts';
import { main } from './main.ts';
import { collectIo, expectRefused } from '../../tests/cli-io.ts';

const MODELS = fileURLToPath(new URL('../../fixtures/models', import.meta.url));
const MIXTRAL = join(MODELS, 'mixtral');
const QWEN3 = join(MODELS, 'qwen3_moe');
const QWEN2 = join(MODELS, 'qwen2_moe');
const TMP = mkdtempSync(join(tmpdir(), 'moe-prune-criteria-'));
afterAll(() => rmSync(TMP, { recursive: true, force: true }));
const CALIB = join(TMP, 'calib.txt');
writeFileSync(CALIB, 'It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife. '.repeat(6));

async function prune(args: string[]): Promise<PruneReport> {
  const io = collectIo();
  const code = await main(['prune', ...args, '--json'], io);
  expect(code, io.err()).toBe(0);
  return (JSON.parse(io.out()) as { report: PruneReport }).report;
}

/** The same safetensors bytes in two export folders. */
function sameShards(a: string, b: string): void {
  const shards = readdirSync(a).filter((f) => f.endsWith('.safetensors'));
  expect(shards.length).toBeGreaterThan(0);
  for (const f of shards) expect(readFileSync(join(b, f)).equals(readFileSync(join(a, f))), f).toBe(true);
}

describe('moe-prune prune --expert-score / --similarity output: refusals', () => {
  const out = join(TMP, 'refused');
  it('contradicting or incomplete flags, one line each', async () => {
    await expectRefused('prune', [MIXTRAL, '--out', out, '--experts-per-layer', '3', '--expert-score', 'reap', '--similarity', 'router', '--calib-text', CALIB], /--expert-score keeps the K best experts instead of clustering; drop --similarity/);
    await expectRefused('prune', [MIXTRAL, '--out', out, '--expert-sparsity', '0.25', '--mode', 'global', '--expert-score', 'ean', '--calib-text', CALIB], /not --mode global/);
    await expectRefused('prune', [MIXTRAL, '--out', out, '--experts-per-layer', '3', '--expert-score', 'reap'], /^--expert-score reap needs --calib-text <file>/);
    await expectRefused('prune', [MIXTRAL, '--out', out, '--experts-per-layer', '3', '--expert-score', 'best', '--calib-text', CALIB], /--expert-score must be one of reap, ean, frequency, exhaustive, random/);
    await expectRefused('prune', [MIXTRAL, '--out', out, '--experts-per-layer', '3', '--similarity', 'output'], /^--similarity output needs --calib-text <file>/);
    await expectRefused('prune', [MIXTRAL, '--out', out, '--experts-per-layer', '3', '--output-tokens', 'routed'], /--output-tokens only applies to --similarity output/);
    await expectRefused('prune', [MIXTRAL, '--out', out, '--experts-per-layer', '3', '--similarity', 'output', '--output-distance', 'manhattan', '--calib-text', CALIB], /--output-distance must be one of cosine, l2/);
    await expectRefused('prune', [MIXTRAL, '--out', out, '--experts-per-layer', '3', '--expert-score', 'reap', '--seed', '3', '--calib-text', CALIB], /--seed only applies to --expert-score random/);
    await expectRefused('prune', [MIXTRAL, '--out', out, '--experts-per-layer', '3', '--expert-score', 'random', '--calib-text', CALIB], /--calib-text is only used by/);
    expect(existsSync(out)).toBe(false);
  });
});

describe('moe-prune prune: the criterion is named in the report, with its scores and reconstruction errors, and --from-report repeats it', () => {
  it('REAP (K = 3): top-3 by the reported REAP scores per layer; per-layer errors; repeated byte for byte', async () => {
    const first = join(TMP, 'reap-a');
    const r = await prune([MIXTRAL, '--out', first, '--experts-per-layer', '3', '--expert-score', 'reap', '--calib-text', CALIB, '--calib-samples', '4', '--calib-seq-len', '12']);
    expect(r.criterion).toBe('reap');
    expect(r.method).toMatch(/REAP/);
    expect(r.method).not.toMatch(/clustering|router rows/);
    expect(r.settings).toMatchObject({ expertScore: 'reap', keepPerLayer: 3, similarity: 'router', calibration: { samples: 4, seq_len: 12 } });
    const layers = Object.keys(r.keptExperts);
    expect(Object.keys(r.expertScores!)).toEqual(layers);
    for (const l of layers) {
      const s = r.expertScores![l]!;
      expect(s.reap).toHaveLength(4);
      expect(s.tokens!.reduce((a, b) => a + b, 0)).toBe(4 * 12 * 2); // every token routed to top-2
      const order = [0, 1, 2, 3].sort((a, b) => s.reap![b]! - s.reap![a]! || a - b);
      expect(r.keptExperts[l]).toEqual(order.slice(0, 3).sort((a, b) => a - b));
    }
    const rec = r.reconstruction!;
    expect(Object.keys(rec.byLayer)).toEqual(layers);
    for (const e of Object.values(rec.byLayer)) expect(e).toBeGreaterThan(0);
    expect(rec.mean).toBeCloseTo(Object.values(rec.byLayer).reduce((a, b) => a + b, 0) / layers.length, 12);
    const card = readFileSync(join(first, 'README.md'), 'utf8');
    expect(card).toMatch(/REAP/);
    copyFileSync(CALIB, join(first, 'calib.txt'));
    const second = join(TMP, 'reap-b');
    const r2 = await prune([MIXTRAL, '--out', second, '--from-report', join(first, 'prune-report.json')]);
    expect(r2.criterion).toBe('reap');
    expect(r2.keptExperts).toEqual(r.keptExperts);
    sameShards(first, second);
    await expectRefused('prune', [MIXTRAL, '--out', join(TMP, 'reap-c'), '--from-report', join(first, 'prune-report.json'), '--expert-score', 'ean'], /drop --expert-score/);
  });

  it('output similarity over routed tokens with L2 (K = 4 of 8): settings, method and the round trip', async () => {
    const first = join(TMP, 'output-a');
    const r = await prune([QWEN3, '--out', first, '--experts-per-layer', '4', '--similarity', 'output', '--output-tokens', 'routed', '--output-distance', 'l2', '--calib-text', CALIB, '--calib-samples', '4', '--calib-seq-len', '12']);
    expect(r.criterion).toBe('output');
    expect(r.method).toMatch(/L2 distance of the experts' mean outputs over their routed calibration tokens/);
    expect(r.settings).toMatchObject({ similarity: 'output', outputTokens: 'routed', outputDistance: 'l2', expertScore: null });
    expect(r.expertScores).toBeUndefined();
    for (const kept of Object.values(r.keptExperts)) expect(kept).toHaveLength(4);
    expect(Object.keys(r.reconstruction!.byLayer)).toEqual(Object.keys(r.keptExperts));
    // Cosine over all tokens is a different measurement (its own settings in the report).
    const cos = await prune([QWEN3, '--out', join(TMP, 'output-cos'), '--experts-per-layer', '4', '--similarity', 'output', '--calib-text', CALIB, '--calib-samples', '4', '--calib-seq-len', '12']);
    expect(cos.settings).toMatchObject({ similarity: 'output', outputTokens: 'all', outputDistance: 'cosine' });
    expect(cos.method).toMatch(/cosine distance of the experts' mean outputs over all calibration tokens/);
    copyFileSync(CALIB, join(first, 'calib.txt'));
    const second = join(TMP, 'output-b');
    const r2 = await prune([QWEN3, '--out', second, '--from-report', join(first, 'prune-report.json')]);
    expect(r2.settings).toMatchObject({ similarity: 'output', outputTokens: 'routed', outputDistance: 'l2' });
    sameShards(first, second);
  });

  it('exhaustive (K = 3 of 6) reports C(6, 3) = 20 subsets and its best error per layer; random needs no calibration and repeats by its seed', async () => {
    const r = await prune([QWEN2, '--out', join(TMP, 'exhaustive'), '--experts-per-layer', '3', '--expert-score', 'exhaustive', '--calib-text', CALIB, '--calib-samples', '4', '--calib-seq-len', '12']);
    expect(r.criterion).toBe('exhaustive');
    expect(r.method).toMatch(/exhaustive search/);
    for (const [l, s] of Object.entries(r.expertScores!)) {
      expect(s.subsets).toBe(20);
      // The best subset's error from the search is the error measured with the plan applied.
      expect(Math.abs(s.error! - r.reconstruction!.byLayer[l]!)).toBeLessThanOrEqual(1e-3 * s.error! + 1e-6);
    }
    const first = join(TMP, 'random-a');
    const a = await prune([QWEN2, '--out', first, '--experts-per-layer', '3', '--expert-score', 'random', '--seed', '5']);
    expect(a.criterion).toBe('random');
    expect(a.settings).toMatchObject({ expertScore: 'random', seed: 5, calibration: null });
    expect(a.reconstruction).toBeUndefined();
    const b = await prune([QWEN2, '--out', join(TMP, 'random-b'), '--from-report', join(first, 'prune-report.json')]);
    expect(b.keptExperts).toEqual(a.keptExperts);
    const c = await prune([QWEN2, '--out', join(TMP, 'random-c'), '--experts-per-layer', '3', '--expert-score', 'random', '--seed', '6']);
    expect(c.settings).toMatchObject({ seed: 6 });
  });
});
