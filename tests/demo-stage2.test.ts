import { readFileSync } from 'node:fs';
import { expect, it } from 'vitest';
import { renderStage2Table, TABLE_END, TABLE_START, type Stage2Results } from '../tools/demo/stage2-results.ts';

const read = (p: string): string => readFileSync(new URL(`../${p}`, import.meta.url), 'utf8');

it('the README stage-2 demo table is exactly the rendering of docs/results/demo-stage2.json (no number typed by hand)', () => {
  const results = JSON.parse(read('docs/results/demo-stage2.json')) as Stage2Results;
  const readme = read('README.md');
  const a = readme.indexOf(TABLE_START);
  const b = readme.indexOf(TABLE_END);
  expect(a).toBeGreaterThan(0);
  expect(readme.slice(a, b + TABLE_END.length)).toBe(renderStage2Table(results));
  // Every row's report exists and agrees with the row (the oracle re-creates the files from these reports).
  for (const r of results.rows) {
    const rep = JSON.parse(read(`docs/results/demo-stage2/${r.report}`)) as { sparsity: { achieved: number }; perplexity: { after: number } };
    expect(rep.sparsity.achieved).toBe(r.achieved);
    expect(rep.perplexity.after).toBe(r.perplexity);
  }
  expect(new Set(results.rows.map((r) => r.target)).size).toBeGreaterThanOrEqual(3);
  expect(new Set(results.rows.map((r) => r.label))).toEqual(new Set(['magnitude', 'Wanda', 'STUN']));
});
