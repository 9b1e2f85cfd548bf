import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createTokenizer } from '../tokenizer.ts';
import type { NllForward } from '../perplexity.ts';
import { parseTaskFile, type TaskItem } from './items.ts';
import { requestLogliks, runTask } from './run.ts';
import { argmax, encodePair, sampleStderr, taskMetrics, taskRequests } from './score.ts';

const REPO = join(import.meta.dirname, '..', '..', '..');
const readJson = (p: string): unknown => JSON.parse(readFileSync(join(REPO, p), 'utf8'));
// The fixtures' tokenizer: BPE with Metaspace (prepend "▁") and a "<s>" template, so BOS = 1 starts every encoding.
const tok = createTokenizer(readJson('fixtures/models/mixtral/tokenizer.json'), readJson('fixtures/models/mixtral/tokenizer_config.json'));
const item = (context: string, choices: string[], answer = 0, line = 1): TaskItem => ({ context, choices, answer, line });

describe('lm-eval request rules', () => {
  it('trailing spaces of the context move to the front of the choice; choice tokens = whole[len(ctx):]', () => {
    const a = encodePair(tok, 'the cat sat on the ', 'mat');
    const b = encodePair(tok, 'the cat sat on the', ' mat');
    expect(a).toEqual(b);
    expect(a.ctx).toEqual(tok.encode('the cat sat on the'));
    expect(a.ctx[0]).toBe(1);
    const whole = tok.encode('the cat sat on the mat');
    expect(a.cont).toEqual(whole.slice(a.ctx.length));
    expect(a.cont.length).toBeGreaterThan(0);
    // Without the move, "the " would end the context with a lone "▁" token of its own.
    expect(tok.encode('the cat sat on the ')).not.toEqual(a.ctx);
  });

  it('an empty context is lm-eval\'s prefix token (BOS, else EOS) and the choice encoded alone without special tokens', () => {
    const e = encodePair(tok, '', 'the mat');
    expect(e.ctx).toEqual([1]);
    expect(e.cont).toEqual(tok.encode('the mat', { addSpecialTokens: false }));
    expect(e.cont[0]).not.toBe(1);
    const [q] = taskRequests(tok, [item('', ['the mat', 'a dog'])], 64);
    expect(Array.from(q!.tokens)).toEqual([1, ...e.cont]);
    expect(q!.scored).toBe(e.cont.length);
    // Without a BOS the EOS stands for the context; naming neither leaves nothing to predict from.
    const cfg = readJson('fixtures/models/mixtral/tokenizer_config.json') as Record<string, unknown>;
    const noBos = createTokenizer(readJson('fixtures/models/mixtral/tokenizer.json'), { ...cfg, bos_token: null });
    expect(encodePair(noBos, '', 'the mat').ctx).toEqual([2]);
    const neither = createTokenizer(readJson('fixtures/models/mixtral/tokenizer.json'), { ...cfg, bos_token: null, eos_token: null });
    expect(() => taskRequests(neither, [item('', ['x', 'y'], 0, 7)], 64, 't.jsonl')).toThrow(/line 7: the context encodes to no tokens and the tokenizer names no bos_token or eos_token/);
  });

  it('too-long inputs keep their last W + 1 tokens (the model reads W); a choice longer than W is refused', () => {
    const long = 'and the '.repeat(20);
    const [full] = taskRequests(tok, [item(long, ['end', 'stop'])], 1000);
    const [cut] = taskRequests(tok, [item(long, ['end', 'stop'])], 9);
    expect(full!.truncated).toBe(false);
    expect(cut!.truncated).toBe(true);
    expect(cut!.tokens.length).toBe(10);
    expect(Array.from(cut!.tokens)).toEqual(Array.from(full!.tokens.slice(-10)));
    expect(cut!.scored).toBe(full!.scored);
    expect(() => taskRequests(tok, [item('a', ['the cat and the dog and the'], 0, 4)], 3, 't.jsonl')).toThrow(/^t\.jsonl: line 4: choice 0 is \d+ tokens, longer than the window of 3/);
  });

  it('acc / acc_norm: argmax with ties to the lower index; acc_norm divides by characters; stderr sqrt(p(1-p)/(n-1))', () => {
    expect(argmax([1, 3, 3])).toBe(1);
    const items = [item('x', ['a', 'bbbb'], 1), item('x', ['a', 'b', 'a'], 2), item('x', ['aa', 'b'], 0)];
    // item 0: raw best 0 (−1 > −2), per char best 1 (−0.5 > −1); item 1: tie 0/2 → 0 ≠ 2; item 2: raw 0, norm: −1/2 vs −1 → 0.
    const m = taskMetrics(items, [[-1, -2], [-1, -3, -1], [-2, -1.5]]);
    expect(m.n).toBe(3);
    expect(m.acc).toBe(0);
    expect(m.acc_norm).toBeCloseTo(2 / 3, 12);
    expect(m.acc_norm_stderr).toBeCloseTo(Math.sqrt((2 / 3) * (1 / 3) / 2), 12);
    expect(m.acc_stderr).toBe(0);
    expect(sampleStderr(1, 1)).toBeNull();
  });
});

describe('scoring through an NLL forward pass', () => {
  // A fake model whose NLL at position t depends only on tokens 0..t+1 of its own window (as a causal model's does).
  const fake: NllForward = async (windows) => {
    const L = windows[0]!.length;
    const out = new Float64Array(windows.length * (L - 1));
    windows.forEach((w, i) => {
      let h = 0;
      for (let t = 0; t + 1 < L; t++) {
        h = (h * 31 + w[t]! * 7 + 3) % 1009;
        out[i * (L - 1) + t] = ((h + w[t + 1]!) % 97) / 10;
      }
    });
    return out;
  };

  it('padding and batching do not change any log-likelihood; the sum runs over the choice tokens only', async () => {
    const items = parseTaskFile(readFileSync(join(REPO, 'fixtures/tasks/hellaswag.jsonl'), 'utf8'), 'hellaswag.jsonl').items;
    const reqs = taskRequests(tok, items, 64);
    const together = await requestLogliks(reqs, fake);
    const alone = await requestLogliks(reqs, fake, { batchSize: 1 });
    const pairs = await requestLogliks(reqs, fake, { batchSize: 3 });
    expect(Array.from(together)).toEqual(Array.from(alone));
    expect(Array.from(pairs)).toEqual(Array.from(alone));
    // By hand for one request: −Σ NLL of its last `scored` targets.
    const q = reqs[5]!;
    const nll = await fake([q.tokens], {});
    let s = 0;
    for (let t = q.tokens.length - q.scored; t < q.tokens.length; t++) s -= nll[t - 1]!;
    expect(alone[5]).toBe(s);
    expect(q.scored).toBeGreaterThan(1);
  });

  it('runTask: per-item log-likelihoods in file order, --limit, the window and the sequence count', async () => {
    const task = parseTaskFile(readFileSync(join(REPO, 'fixtures/tasks/mmlu.jsonl'), 'utf8'), 'mmlu.jsonl');
    const progress: string[] = [];
    const r = await runTask(tok, task, fake, { window: 80, onProgress: (p) => progress.push(`${p.phase}:${p.done}/${p.total}`) });
    expect(r.n).toBe(2);
    expect(r.sequences).toBe(8);
    expect(r.logliks.map((l) => l.length)).toEqual([4, 4]);
    expect(r.choiceTokens).toEqual(task.items.map((it) => it.choices.map((c) => encodePair(tok, it.context, c).cont.length)));
    // The first item's context (subject line + options) is longer than 80 tokens, the second's is not.
    expect(task.items.map((it) => tok.encode(it.context).length > 80)).toEqual([true, false]);
    expect(r.truncated).toBe(1);
    expect(progress).toEqual(['task:0/8', 'task:8/8']);
    const one = await runTask(tok, task, fake, { window: 80, limit: 1 });
    expect(one.n).toBe(1);
    expect(one.logliks[0]).toEqual(r.logliks[0]);
    expect(r.acc).toBe(taskMetrics(task.items, r.logliks).acc);
  });
});
