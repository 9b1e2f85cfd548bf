import type { ExpertPlan } from '../pipeline/job.ts';
import { heldoutKey, measurePerplexity, planKey, SAMPLE_FILES, useEval, type PerplexityMeasure } from './eval-state.ts';
import { RunProgress } from './RunProgress.tsx';
import { TaskAccuracyLine } from './TaskAccuracyLine.tsx';

function fmt(p: number): string {
  return p >= 1000 ? p.toFixed(0) : p >= 100 ? p.toFixed(1) : p.toFixed(3);
}

function Value({ m, testid, stale }: { m: PerplexityMeasure | null; testid: string; stale: boolean }) {
  return (
    <div className={`stat-value${stale ? ' stale' : ''}`} data-testid={testid} data-value={m ? String(m.perplexity) : ''} data-stale={stale ? 'true' : 'false'} data-tokens={m?.tokens ?? ''}>
      {m ? fmt(m.perplexity) : '—'}
    </div>
  );
}

/**
 * Measured perplexity before/after in the plan panel. "After" is measured on demand (a button), never on a slider
 * move; it is marked stale once the plan or the held-out settings change.
 */
export function PerplexityBox({ plan, available }: { plan: ExpertPlan; available: string | null }) {
  const st = useEval();
  const key = heldoutKey(st);
  const fresh = (m: PerplexityMeasure | null): m is PerplexityMeasure => m !== null && m.source === st.source;
  const before = fresh(st.before) ? st.before : null;
  const after = fresh(st.after) ? st.after : null;
  const beforeStale = before !== null && before.settingsKey !== key;
  const afterStale = after !== null && (after.settingsKey !== key || after.planKey !== planKey(plan));
  const comparable = before && after && before.settingsKey === after.settingsKey;
  const change = comparable ? (100 * (after.perplexity - before.perplexity)) / before.perplexity : null;
  const running = st.running && st.running.kind !== 'calibration' ? st.running : null;
  const textName = st.heldoutText.source === 'file' && st.heldoutText.file ? st.heldoutText.file.name : `built-in ${SAMPLE_FILES.heldout}`;
  return (
    <div className="ppl-box" data-testid="ppl-box">
      <div className="ppl-row">
        <div className="ppl-numbers">
          <div>
            <Value m={before} testid="ppl-before" stale={beforeStale} />
            <div className="stat-label">original perplexity</div>
          </div>
          <div className="ppl-arrow" aria-hidden>
            →
          </div>
          <div>
            <Value m={after} testid="ppl-after" stale={afterStale} />
            <div className="stat-label">
              with this plan
              {change !== null && (
                <span className={`ppl-change ${change > 0 ? 'worse' : 'better'}`} data-testid="ppl-change" data-value={change}>
                  {' '}
                  {change >= 0 ? '+' : '−'}
                  {Math.abs(change).toFixed(1)} %
                </span>
              )}
            </div>
          </div>
        </div>
        <div className="ppl-actions">
          <button
            className="btn btn-primary btn-small"
            data-testid="ppl-measure"
            disabled={available !== null || st.running !== null}
            onClick={() => void measurePerplexity('after')}
            title="Runs the held-out text through the original model (once) and through the model with this plan applied on the fly"
          >
            {after ? 'Re-measure perplexity' : 'Measure perplexity'}
          </button>
        </div>
      </div>
      <div className="small muted">
        {available ??
          (after && afterStale
            ? 'The plan or the held-out settings changed since “after” was measured: measure again to update it.'
            : `Held-out text: ${textName}, up to ${st.heldout.maxWindows} windows of ${st.heldout.length} tokens (change it in Calibration and perplexity below). The plan runs on the fly; nothing is written.`)}
      </div>
      <TaskAccuracyLine plan={plan} stage2={null} testid="ppl-task-acc" />
      {running && <RunProgress run={running} testid="ppl-progress" />}
      {st.pplError && (
        <div className="notice notice-bad" data-testid="ppl-error">
          {st.pplError}
        </div>
      )}
    </div>
  );
}
