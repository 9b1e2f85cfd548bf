import { expect, it } from 'vitest';
import { COMPARE_END, COMPARE_START, renderCompareTable, type CompareResults } from '../tools/demo/compare-results.ts';
import { resultsRenderedInReadme } from './demo-readme.ts';

it('the README expert-choice table is exactly the rendering of docs/results/demo-compare.json (no number typed by hand)', () => {
  const results = resultsRenderedInReadme<CompareResults>('demo-compare.json', COMPARE_START, COMPARE_END, renderCompareTable);
  // Two values of K, each with the STUN, saliency, random and exhaustive rows (the demo has 8 experts per layer).
  expect(results.byK.map((k) => k.keepPerLayer)).toHaveLength(2);
  for (const k of results.byK) {
    const names = k.rows.map((r) => r.criterion);
    for (const c of ['stun-router', 'reap', 'ean', 'frequency', 'random', 'exhaustive']) expect(names).toContain(c);
    // NAEE's subset count is C(8, K) per MoE layer.
    const binom = (n: number, r: number): number => (r === 0 ? 1 : (binom(n - 1, r - 1) * n) / r);
    expect(k.rows.find((r) => r.criterion === 'exhaustive')!.subsets).toBe(4 * binom(8, k.keepPerLayer));
  }
});
