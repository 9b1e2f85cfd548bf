import { expect, it } from 'vitest';
import { renderStage2Table, TABLE_END, TABLE_START, type Stage2Results } from '../tools/demo/stage2-results.ts';
import { read, resultsRenderedInReadme } from './demo-readme.ts';

it('the README stage-2 demo table is exactly the rendering of docs/results/demo-stage2.json (no number typed by hand)', () => {
  const results = resultsRenderedInReadme<Stage2Results>('demo-stage2.json', TABLE_START, TABLE_END, renderStage2Table);
  // Every row's report exists and agrees with the row (the oracle re-creates the files from these reports).
  for (const r of results.rows) {
    const rep = JSON.parse(read(`docs/results/demo-stage2/${r.report}`)) as { sparsity: { achieved: number }; perplexity: { after: number } };
    expect(rep.sparsity.achieved).toBe(r.achieved);
    expect(rep.perplexity.after).toBe(r.perplexity);
  }
  expect(new Set(results.rows.map((r) => r.target)).size).toBeGreaterThanOrEqual(3);
  expect(new Set(results.rows.map((r) => r.label))).toEqual(new Set(['magnitude', 'Wanda', 'STUN']));
});
