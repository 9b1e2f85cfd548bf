import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { MoePruneError } from '../../core/errors.ts';
import { hellaswagPreprocess, parseTaskFile, type TaskFormat } from './items.ts';

const read = (name: string) => readFileSync(fileURLToPath(new URL(`../../../fixtures/tasks/${name}`, import.meta.url)), 'utf8');
const items = (name: string, format: TaskFormat | 'auto' = 'auto') => parseTaskFile(read(name), name, format);
const plain = (name: string) => items(name).items.map(({ context, choices, answer, id }) => ({ context, choices, answer, ...(id !== undefined ? { id } : {}) }));

describe('task files: our JSONL and the public formats (fixtures/tasks)', () => {
  it('our own form, blank lines skipped, lines counted', () => {
    const t = items('ours.jsonl');
    expect(t.format).toBe('jsonl');
    expect(t.items.map((i) => i.line)).toEqual([1, 3]);
    expect(plain('ours.jsonl')).toEqual([
      { id: 'a', context: 'The cat sat on the ', choices: ['mat', 'moon'], answer: 0 },
      { context: 'Two plus two is', choices: [' four', ' five', ' four'], answer: 0 },
    ]);
  });

  it('ARC: "Question: …\\nAnswer: ", labels letters or digits; OpenBookQA: the bare stem', () => {
    expect(items('arc.jsonl').format).toBe('arc');
    expect(plain('arc.jsonl')).toEqual([
      { id: 'sample-arc-1', context: 'Question: Which form of energy does a plant use to make its food?\nAnswer: ', choices: ['sound', 'light', 'heat', 'magnetism'], answer: 1 },
      { id: 'sample-arc-2', context: 'Question: What happens to water when it freezes?\nAnswer: ', choices: ['It becomes a gas.', 'It becomes a solid.', 'It becomes lighter than air.'], answer: 1 },
    ]);
    expect(items('openbookqa.jsonl').format).toBe('arc');
    expect(plain('openbookqa.jsonl')).toEqual([
      { id: 'sample-obqa-1', context: 'A magnet will stick to ', choices: ['a wooden spoon', 'an iron nail', 'a glass cup', 'a paper bag'], answer: 1 },
    ]);
  });

  it('HellaSwag: lm-eval preprocessing (activity label, ctx_a + capitalised ctx_b, [title], [tags], double spaces)', () => {
    expect(items('hellaswag.jsonl').format).toBe('hellaswag');
    expect(plain('hellaswag.jsonl')).toEqual([
      {
        id: '7', context: 'Making tea: A woman fills a kettle with water. She ',
        choices: ['puts the kettle on the stove.', 'throws the kettle. out of the window.', 'paints the kettle blue.', 'sings to the kettle.'], answer: 0,
      },
      {
        id: '8', context: 'Home and Garden: How to water a plant. Check the soil. ',
        choices: ['Pour water slowly at the base.', 'Cut the plant down.', 'Put the plant in the oven.', 'Paint the leaves.'], answer: 0,
      },
    ]);
    expect(hellaswagPreprocess('  a [step] b  c ')).toBe('a b c');
  });

  it('PIQA: "Question: {goal}\\nAnswer: " with sol1/sol2', () => {
    expect(items('piqa.jsonl').format).toBe('piqa');
    expect(plain('piqa.jsonl')).toEqual([
      { context: 'Question: How do you keep bread fresh for longer?\nAnswer: ', choices: ['Store it in a sealed bag.', 'Leave it open in the sun.'], answer: 0 },
      { context: 'Question: To cool a hot drink quickly,\nAnswer: ', choices: ['put it in the oven.', 'stir in some ice.'], answer: 1 },
    ]);
  });

  it('MMLU: subject line, stripped question, lettered options, letters as choices; answer index or letter', () => {
    expect(items('mmlu.jsonl').format).toBe('mmlu');
    expect(plain('mmlu.jsonl')).toEqual([
      {
        context: 'The following are multiple choice questions (with answers) about elementary mathematics.\n\nWhat is 7 times 6?\nA. 36\nB. 42\nC. 48\nD. 56\nAnswer: ',
        choices: ['A', 'B', 'C', 'D'], answer: 1,
      },
      { context: 'Which planet is closest to the Sun?\nA. Venus\nB. Earth\nC. Mercury\nD. Mars\nAnswer: ', choices: ['A', 'B', 'C', 'D'], answer: 2 },
    ]);
  });

  it('an explicit format converts the same; a file of another format is refused at its first line', () => {
    expect(items('piqa.jsonl', 'piqa').items).toEqual(items('piqa.jsonl').items);
    expect(() => items('piqa.jsonl', 'arc')).toThrow(/^piqa\.jsonl: line 1: .*format arc/);
  });

  it('bad lines are reported by file and line number, typed', () => {
    const bad = (content: string, re: RegExp) => {
      let err: unknown;
      try {
        parseTaskFile(content, 'bad.jsonl');
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(MoePruneError);
      expect((err as MoePruneError).code).toBe('InvalidArgument');
      expect((err as MoePruneError).file).toBe('bad.jsonl');
      expect((err as Error).message).toMatch(re);
    };
    const ok = '{"context": "a", "choices": ["b", "c"], "answer": 1}';
    bad(`${ok}\n{"context": "a", "choices": ["b", "c"], "answer": 2}`, /line 2: "answer" must be an integer from 0 to 1/);
    bad(`${ok}\n\n{"context": "a", "choices": ["b"], "answer": 0}`, /line 3: "choices" must be a list of at least 2 strings/);
    bad(`${ok}\n{not json`, /line 2: not valid JSON/);
    bad(`${ok}\n[1, 2]`, /line 2: not a JSON object/);
    bad('{"text": "hello"}', /line 1: no known task format/);
    bad(`${ok}\n{"context": 3, "choices": ["b", "c"], "answer": 0}`, /line 2: "context" must be a string/);
    bad('{"question": "q", "choices": {"text": ["x", "y"], "label": ["A", "B"]}, "answerKey": "E"}', /line 1: "answerKey" "E" is not one of the labels/);
    bad('\n\n', /holds no items/);
  });
});
