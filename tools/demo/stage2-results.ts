/**
 * The stage-2 demo results (docs/results/demo-stage2.json) and the README table rendered from them. Kept apart from
 * the measuring script so the unit test can check the README against the JSON without a GPU.
 */
export interface Stage2Row {
  /** File of the run's prune-report.json under docs/results/demo-stage2/. */
  readonly report: string;
  readonly label: 'magnitude' | 'Wanda' | 'STUN';
  readonly expertsPerLayer: number;
  readonly target: number;
  readonly achieved: number;
  readonly perplexity: number;
  /** SHA-256 of each written shard, by file name: what the perplexity was measured on. */
  readonly shards: Record<string, string>;
}

export interface Stage2Results {
  readonly format: 'moe-prune-demo-stage2';
  readonly heldout: { readonly text: string; readonly seqLen: number; readonly windows: number; readonly tokens: number };
  readonly calibration: { readonly text: string; readonly samples: number; readonly seqLen: number };
  readonly original: number;
  readonly rows: readonly Stage2Row[];
}

export const TABLE_START = '<!-- stage2-demo-table:start (tools/demo/stage2-table.mjs writes this table; do not edit) -->';
export const TABLE_END = '<!-- stage2-demo-table:end -->';

const columnOf = (r: Stage2Row): string => (r.label === 'STUN' ? `STUN: ${r.expertsPerLayer} of 8 experts + Wanda` : r.label === 'Wanda' ? 'Wanda only' : 'magnitude only');

/** The markdown table: one row per target sparsity, one column per method; each cell "perplexity (achieved %)". */
export function renderStage2Table(r: Stage2Results): string {
  const columns = [...new Set(r.rows.map(columnOf))];
  const targets = [...new Set(r.rows.map((x) => x.target))].sort((a, b) => a - b);
  const cell = (t: number, c: string): string => {
    const x = r.rows.find((y) => y.target === t && columnOf(y) === c);
    return x ? `${x.perplexity.toFixed(2)} (${(100 * x.achieved).toFixed(1)} %)` : '—';
  };
  const best = (t: number): number => Math.min(...r.rows.filter((y) => y.target === t).map((y) => y.perplexity));
  const lines = [
    `| total sparsity of the experts | ${columns.join(' | ')} |`,
    `|---|${columns.map(() => '---').join('|')}|`,
    ...targets.map((t) => `| ${(100 * t).toFixed(0)} % | ${columns.map((c) => {
      const text = cell(t, c);
      const x = r.rows.find((y) => y.target === t && columnOf(y) === c);
      return x && x.perplexity === best(t) ? `**${text}**` : text;
    }).join(' | ')} |`),
  ];
  return [
    TABLE_START,
    `Held-out perplexity (\`${r.heldout.text}\`, ${r.heldout.windows} windows of ${r.heldout.seqLen} tokens; original model ${r.original.toFixed(2)}), ` +
      `calibration on \`${r.calibration.text}\` (${r.calibration.samples} × ${r.calibration.seqLen} tokens); in brackets the sparsity achieved over the ` +
      'routed experts, counted from the written files\u2019 masks and removed experts. Best per row in bold.',
    '',
    ...lines,
    TABLE_END,
  ].join('\n');
}
