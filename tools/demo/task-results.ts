/**
 * The demo task's accuracy results (docs/results/demo-task.json) and the README table rendered from them. Kept apart
 * from the measuring script (tools/demo/task-table.ts) so the unit test checks the README against the JSON without a GPU.
 */
export interface TaskRow {
  readonly label: string;
  /** Routed experts kept per MoE layer (of 8), and stage 2's target total sparsity over the routed experts (null: none). */
  readonly expertsPerLayer: number;
  readonly target: number | null;
  readonly achieved: number | null;
  readonly acc: number;
  readonly acc_norm: number;
  readonly acc_stderr: number | null;
  readonly acc_norm_stderr: number | null;
  readonly seconds: number;
}

export interface TaskResults {
  readonly format: 'moe-prune-demo-task';
  readonly task: { readonly file: string; readonly items: number; readonly choices: number; readonly window: number };
  readonly calibration: { readonly text: string; readonly samples: number; readonly seqLen: number };
  readonly device: string;
  readonly rows: readonly TaskRow[];
}

export const TASK_TABLE_START = '<!-- demo-task-table:start (tools/demo/task-table.mjs writes this table; do not edit) -->';
export const TASK_TABLE_END = '<!-- demo-task-table:end -->';

const pct = (v: number, e: number | null): string => `${(100 * v).toFixed(1)} %${e === null ? '' : ` ± ${(100 * e).toFixed(1)}`}`;

export function renderTaskTable(r: TaskResults): string {
  return [
    TASK_TABLE_START,
    `Zero-shot accuracy on the demo task (\`${r.task.file}\`: ${r.task.items} items, pick the true next sentence among ${r.task.choices}; ` +
      `chance ${(100 / r.task.choices).toFixed(0)} %), scored as lm-evaluation-harness scores multiple choice, the pruning applied on the fly; ` +
      `± is the standard error. Calibration for Wanda: \`${r.calibration.text}\` (${r.calibration.samples} × ${r.calibration.seqLen} tokens).`,
    '',
    '| model | experts per layer | total sparsity of the experts | acc | acc_norm |',
    '|---|---|---|---|---|',
    ...r.rows.map(
      (x) =>
        `| ${x.label} | ${x.expertsPerLayer} of 8 | ${x.achieved === null ? (x.expertsPerLayer === 8 ? '0 %' : `${((100 * (8 - x.expertsPerLayer)) / 8).toFixed(1)} % (whole experts)`) : `${(100 * x.achieved).toFixed(1)} %`} | ${pct(x.acc, x.acc_stderr)} | ${pct(x.acc_norm, x.acc_norm_stderr)} |`,
    ),
    TASK_TABLE_END,
  ].join('\n');
}
