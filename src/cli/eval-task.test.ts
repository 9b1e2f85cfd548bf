import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from './main.ts';
import { collectIo } from '../../tests/cli-io.ts';

const MODELS = fileURLToPath(new URL('../../fixtures/models', import.meta.url));
const TASKS = fileURLToPath(new URL('../../fixtures/tasks', import.meta.url));
const TEXT = fileURLToPath(new URL('../../fixtures/austen/emma.txt', import.meta.url));
const TMP = mkdtempSync(join(tmpdir(), 'moe-prune-eval-task-'));
afterAll(() => rmSync(TMP, { recursive: true, force: true }));

interface TaskJson {
  task: string; n: number; acc: number; acc_norm: number; acc_stderr: number | null; acc_norm_stderr: number | null; format: string; window: number; truncated: number;
  items?: Array<{ line: number; answer: number; logliks: number[]; tokens: number[] }>; perplexity?: number;
}

async function taskJson(dir: string, ...extra: string[]): Promise<TaskJson> {
  const io = collectIo();
  expect(await main(['eval', dir, '--json', ...extra], io), io.err()).toBe(0);
  return JSON.parse(io.out());
}

describe('moe-prune eval --task', () => {
  it('prints task, n, acc, acc_norm and their stderr; GPU and --cpu give the same per-item log-likelihoods', async () => {
    const args = ['--task', join(TASKS, 'arc.jsonl'), '--per-item'];
    const gpu = await taskJson(join(MODELS, 'qwen2_moe'), ...args);
    const cpu = await taskJson(join(MODELS, 'qwen2_moe'), ...args, '--cpu');
    expect(Object.keys(gpu).slice(0, 6)).toEqual(['task', 'n', 'acc', 'acc_norm', 'acc_stderr', 'acc_norm_stderr']);
    expect(gpu).toMatchObject({ task: 'arc.jsonl', n: 2, format: 'arc', window: 128, truncated: 0 });
    expect(gpu.items!.map((i) => i.logliks.length)).toEqual([4, 3]);
    for (const [i, item] of gpu.items!.entries())
      item.logliks.forEach((v, c) => expect(Math.abs(v - cpu.items![i]!.logliks[c]!) / Math.abs(cpu.items![i]!.logliks[c]!)).toBeLessThan(1e-4));
    expect([gpu.acc, gpu.acc_norm]).toEqual([cpu.acc, cpu.acc_norm]);
    const p = gpu.acc;
    expect(gpu.acc_stderr).toBeCloseTo(Math.sqrt(p * (1 - p)), 12);
  });

  it('--text and --task together; --limit; --seq-len is the window (long items cut); text output', async () => {
    const both = await taskJson(join(MODELS, 'mixtral'), '--text', TEXT, '--seq-len', '24', '--max-windows', '2', '--task', join(TASKS, 'mmlu.jsonl'), '--limit', '1', '--cpu');
    expect(both.perplexity).toBeGreaterThan(1);
    expect(both).toMatchObject({ n: 1, window: 24, truncated: 1, format: 'mmlu' });
    const io = collectIo();
    expect(await main(['eval', join(MODELS, 'mixtral'), '--task', join(TASKS, 'piqa.jsonl'), '--cpu'], io), io.err()).toBe(0);
    expect(io.out()).toMatch(/^piqa\.jsonl: acc \d+\.\d\d% ± \d+\.\d\d, acc_norm \d+\.\d\d% ± \d+\.\d\d over 2 items \(piqa\)\n$/);
  });

  it('refuses a bad task line (file and line named), an unknown --format and --limit without --task, with exit 2', async () => {
    const bad = join(TMP, 'bad.jsonl');
    writeFileSync(bad, '{"context": "a", "choices": ["b", "c"], "answer": 0}\n{"context": "a", "choices": ["b", "c"], "answer": 5}\n');
    for (const [args, re] of [
      [['--task', bad], /bad\.jsonl: line 2: "answer" must be an integer from 0 to 1/],
      [['--task', join(TASKS, 'arc.jsonl'), '--format', 'squad'], /--format must be one of auto, jsonl, arc, hellaswag, piqa, mmlu/],
      [['--task', join(TASKS, 'arc.jsonl'), '--format', 'piqa'], /arc\.jsonl: line 1: "goal" must be a string \(format piqa\)/],
      [['--text', TEXT, '--limit', '3'], /--limit belongs to --task/],
      [['--task', join(TMP, 'missing.jsonl')], /missing\.jsonl: cannot read the task file/],
    ] as const) {
      const io = collectIo();
      expect(await main(['eval', join(MODELS, 'mixtral'), ...args, '--cpu'], io)).toBe(2);
      expect(io.err()).toMatch(re);
    }
  });

  it('prune --eval-task-format reads the task in the format named (arc as piqa fails on its first line); without --eval-task it is refused', async () => {
    for (const [args, re] of [
      [['--eval-task', join(TASKS, 'arc.jsonl'), '--eval-task-format', 'piqa'], /arc\.jsonl: line 1: "goal" must be a string \(format piqa\)/],
      [['--eval-task', join(TASKS, 'arc.jsonl'), '--eval-task-format', 'squad'], /--eval-task-format must be one of auto, jsonl, arc, hellaswag, piqa, mmlu/],
      [['--eval-task-format', 'arc'], /--eval-task-format belongs to --eval-task/],
    ] as const) {
      const io = collectIo();
      expect(await main(['prune', join(MODELS, 'mixtral'), '--out', join(TMP, 'fmt-refused'), '--experts-per-layer', '3', '--cpu', '--quiet', ...args], io)).toBe(2);
      expect(io.err()).toMatch(re);
    }
    const out = join(TMP, 'fmt');
    const io = collectIo();
    const code = await main(['prune', join(MODELS, 'mixtral'), '--out', out, '--experts-per-layer', '3', '--cpu', '--quiet', '--eval-task', join(TASKS, 'openbookqa.jsonl'), '--eval-task-format', 'arc'], io);
    expect(code, io.err()).toBe(0);
    const report = JSON.parse(readFileSync(join(out, 'prune-report.json'), 'utf8'));
    expect(report.accuracy).toMatchObject({ task: 'openbookqa.jsonl', format: 'arc' });
    expect(report.accuracy.n).toBeGreaterThan(0);
  });

  it('prune --eval-task: before = the original, after = the written checkpoint, in prune-report.json and the model card', async () => {
    const out = join(TMP, 'pruned');
    const task = join(TASKS, 'hellaswag.jsonl');
    const io = collectIo();
    const code = await main(['prune', join(MODELS, 'qwen3_moe-bf16'), '--out', out, '--experts-per-layer', '3', '--eval-task', task, '--quiet'], io);
    expect(code, io.err()).toBe(0);
    const report = JSON.parse(readFileSync(join(out, 'prune-report.json'), 'utf8'));
    const before = await taskJson(join(MODELS, 'qwen3_moe-bf16'), '--task', task, '--per-item');
    const after = await taskJson(out, '--task', task, '--per-item');
    const scores = (r: TaskJson) => ({ acc: r.acc, acc_norm: r.acc_norm, acc_stderr: r.acc_stderr, acc_norm_stderr: r.acc_norm_stderr });
    expect(report.accuracy).toEqual({ task: 'hellaswag.jsonl', format: 'hellaswag', n: 2, window: 128, before: scores(before), after: scores(after) });
    // The pruned model really is another model: its log-likelihoods moved.
    expect(after.items![0]!.logliks).not.toEqual(before.items![0]!.logliks);
    const card = readFileSync(join(out, 'README.md'), 'utf8');
    expect(card).toContain('## Measured task accuracy');
    expect(card).toContain('Zero-shot multiple choice on 2 items of `hellaswag.jsonl` (hellaswag)');
  });
});
