import { expect, it } from 'vitest';
import { parseTaskFile } from '../src/eval/tasks/items.ts';
import { renderTaskTable, TASK_TABLE_END, TASK_TABLE_START, type TaskResults } from '../tools/demo/task-results.ts';
import { read, resultsRenderedInReadme } from './demo-readme.ts';

it('the README demo-task table is exactly the rendering of docs/results/demo-task.json (no number typed by hand)', () => {
  const results = resultsRenderedInReadme<TaskResults>('demo-task.json', TASK_TABLE_START, TASK_TABLE_END, renderTaskTable);
  // The original, expert pruning, and STUN at two sparsities, all on every item of the shipped task.
  expect(results.rows[0]!.label).toBe('original');
  expect(results.rows.filter((r) => r.target === null && r.expertsPerLayer < 8).length).toBeGreaterThanOrEqual(1);
  expect(new Set(results.rows.filter((r) => r.target !== null).map((r) => r.target)).size).toBeGreaterThanOrEqual(2);
  expect(results.task.items).toBe(parseTaskFile(read('public/demo/task.jsonl'), 'task.jsonl').items.length);
});

it('the demo task is four-way, answers spread over the positions, and no choice is in the demo model\u2019s training text', () => {
  const task = parseTaskFile(read('public/demo/task.jsonl'), 'task.jsonl', 'jsonl');
  expect(task.items.length).toBeGreaterThanOrEqual(40);
  expect(task.items.every((i) => i.choices.length === 4 && new Set(i.choices).size === 4 && i.context.endsWith(' '))).toBe(true);
  expect(new Set(task.items.map((i) => i.answer)).size).toBe(4);
  // Every context and choice comes from the held-out slice (public/demo/heldout.txt, whitespace folded); the
  // calibration slice and the training text lie before it in each novel, and the held-out slice was never trained on.
  const heldout = read('public/demo/heldout.txt').split(/\s+/).join(' ');
  for (const it of task.items) {
    expect(heldout).toContain(it.context.trim());
    for (const c of it.choices) expect(heldout).toContain(c);
  }
});
