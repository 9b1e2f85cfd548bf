import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from './main.ts';
import { collectIo } from '../../tests/cli-io.ts';

const MODELS = fileURLToPath(new URL('../../fixtures/models', import.meta.url));
const TEXT = fileURLToPath(new URL('../../fixtures/austen/emma.txt', import.meta.url));
const TMP = mkdtempSync(join(tmpdir(), 'moe-prune-eval-'));
afterAll(() => rmSync(TMP, { recursive: true, force: true }));

async function evalJson(dir: string, ...extra: string[]): Promise<{ perplexity: number; tokens: number; windows: number; device: string }> {
  const io = collectIo();
  expect(await main(['eval', dir, '--text', TEXT, '--seq-len', '24', '--max-windows', '3', '--json', ...extra], io), io.err()).toBe(0);
  return JSON.parse(io.out());
}

describe('moe-prune eval', () => {
  it('GPU and --cpu give the same perplexity; the adapter is named on stderr', async () => {
    const io = collectIo();
    expect(await main(['eval', join(MODELS, 'phimoe-bf16'), '--text', TEXT, '--seq-len', '24', '--max-windows', '3'], io)).toBe(0);
    expect(io.err()).toMatch(/using WebGPU adapter/);
    expect(io.out()).toMatch(/^perplexity \d+\.\d{4} over 69 predicted tokens \(3 windows of 24\)\n$/);
    const gpu = await evalJson(join(MODELS, 'phimoe-bf16'));
    const cpu = await evalJson(join(MODELS, 'phimoe-bf16'), '--cpu');
    expect(gpu.tokens).toBe(69);
    expect(cpu.device).toBe('cpu');
    expect(Math.abs(gpu.perplexity - cpu.perplexity) / cpu.perplexity).toBeLessThan(1e-4);
  });

  it('prune --eval-text: "after" equals the perplexity of the written checkpoint (merged experts included)', async () => {
    const out = join(TMP, 'pruned');
    const io = collectIo();
    const code = await main(
      ['prune', join(MODELS, 'qwen3_moe-bf16'), '--out', out, '--experts-per-layer', '3', '--reconstruct', 'per-layer', '--kappa', '8',
        '--eval-text', TEXT, '--seq-len', '24', '--max-windows', '3', '--quiet'],
      io,
    );
    expect(code, io.err()).toBe(0);
    const report = JSON.parse(readFileSync(join(out, 'prune-report.json'), 'utf8'));
    expect(Object.values(report.mergedExperts as Record<string, unknown[]>).some((m) => m.length > 0)).toBe(true);
    const before = await evalJson(join(MODELS, 'qwen3_moe-bf16'));
    const after = await evalJson(out);
    expect(report.perplexity).toEqual({ before: before.perplexity, after: after.perplexity, tokens: 69, seqLen: 24, windows: 3 });
    expect(report.perplexity.after).not.toBe(report.perplexity.before);
  });

  it('refuses bad arguments with one line and exit 2', async () => {
    for (const args of [['eval'], ['eval', MODELS, '--text', join(TMP, 'missing.txt')], ['eval', join(MODELS, 'mixtral'), '--text', TEXT, '--seq-len', '1']]) {
      const io = collectIo();
      expect(await main(args, io)).toBe(2);
      expect(io.err().trim().split('\n')).toHaveLength(1);
    }
    const empty = join(TMP, 'empty.txt');
    writeFileSync(empty, '');
    const io = collectIo();
    expect(await main(['eval', join(MODELS, 'mixtral'), '--text', empty, '--cpu'], io)).toBe(2);
  });
});
