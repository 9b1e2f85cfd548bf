/**
 * The expert-choice comparison on the demo model (docs/results/demo-compare.json) and the README table rendered from
 * it; kept apart from the measuring script so a unit test checks the README against the JSON without a GPU.
 */
export interface CompareRow {
  readonly criterion: string;
  readonly meanError: number;
  readonly perplexity: number;
  readonly seconds: number;
  readonly subsets: number | null;
}

export interface CompareResults {
  readonly format: 'moe-prune-demo-compare';
  readonly heldout: { readonly text: string; readonly seqLen: number; readonly windows: number };
  readonly calibration: { readonly text: string; readonly samples: number; readonly seqLen: number };
  readonly original: number;
  readonly byK: ReadonlyArray<{ readonly keepPerLayer: number; readonly rows: readonly CompareRow[] }>;
}

export const COMPARE_START = '<!-- compare-demo-table:start (tools/demo/compare-table.mjs writes this table; do not edit) -->';
export const COMPARE_END = '<!-- compare-demo-table:end -->';

export function renderCompareTable(r: CompareResults): string {
  const ks = r.byK.map((k) => k.keepPerLayer);
  const criteria = [...new Set(r.byK.flatMap((k) => k.rows.map((x) => x.criterion)))];
  const cell = (k: number, c: string): string => {
    const x = r.byK.find((b) => b.keepPerLayer === k)?.rows.find((y) => y.criterion === c);
    if (!x) return '— | —';
    const best = Math.min(...r.byK.find((b) => b.keepPerLayer === k)!.rows.map((y) => y.perplexity));
    const ppl = x.perplexity.toFixed(2);
    return `${x.perplexity === best ? `**${ppl}**` : ppl} | ${x.meanError.toFixed(4)}`;
  };
  return [
    COMPARE_START,
    `Held-out perplexity (\`${r.heldout.text}\`, ${r.heldout.windows} windows of ${r.heldout.seqLen} tokens; original ${r.original.toFixed(2)}) and mean ` +
      `reconstruction error of the MoE blocks' output on the calibration tokens (\`${r.calibration.text}\`, ${r.calibration.samples} × ${r.calibration.seqLen}), ` +
      'experts chosen by each criterion (`moe-prune compare`, no unstructured pruning). Best perplexity per K in bold.',
    '',
    `| criterion | ${ks.map((k) => `K = ${k}: perplexity | error`).join(' | ')} |`,
    `|---|${ks.map(() => '---|---').join('|')}|`,
    ...criteria.map((c) => `| ${c} | ${ks.map((k) => cell(k, c)).join(' | ')} |`),
    COMPARE_END,
  ].join('\n');
}
