import type { ExpertPlan } from '../pipeline/job.ts';
import { measuredKey, taskKey, useEval } from './eval-state.ts';

const pct = (v: number): string => `${(100 * v).toFixed(1)} %`;

/**
 * Task accuracy beside a perplexity: the evaluation panel's "before" and "after" when "after" was measured on exactly
 * this plan (and these stage-2 masks) with the task chosen now; nothing otherwise. It measures nothing itself.
 */
export function TaskAccuracyLine({ plan, stage2, testid }: { plan: ExpertPlan; stage2: { readonly key: string } | null; testid: string }) {
  const st = useEval();
  const key = taskKey(st);
  const before = st.taskBefore?.source === st.source && st.taskBefore.settingsKey === key ? st.taskBefore : null;
  const after = st.taskAfter?.source === st.source && st.taskAfter.settingsKey === key && st.taskAfter.planKey === measuredKey(plan, stage2) ? st.taskAfter : null;
  if (!after) return null;
  const r = after.result;
  return (
    <div className="small" data-testid={testid} data-acc={r.acc} data-acc-norm={r.acc_norm} data-acc-before={before?.result.acc ?? ''}>
      Task accuracy on {r.task} ({r.n} items): {before ? `${pct(before.result.acc)} → ` : ''}
      <strong>{pct(r.acc)}</strong> acc, {before ? `${pct(before.result.acc_norm)} → ` : ''}
      {pct(r.acc_norm)} acc_norm (measured in Calibration and perplexity below).
    </div>
  );
}
