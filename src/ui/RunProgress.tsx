import { formatBytes } from '../core/format.ts';
import { Bar } from './controls.tsx';
import { cancelEval, type RunKind, type RunView } from './eval-state.ts';

const KIND: Record<RunKind, string> = {
  calibration: 'Calibration', before: 'Perplexity of the original model', after: 'Perplexity of the plan',
  'task-before': 'Task accuracy of the original model', 'task-after': 'Task accuracy of the plan',
};

/** Seconds left in the current forward pass, from its share of layers done so far (null before the first layer ends). */
export function secondsLeft(r: RunView): number | null {
  const p = r.progress;
  const s = (r.now - r.startedAt) / 1000;
  if (!p || p.unit !== 'layers' || !p.total || p.done === 0 || s <= 0) return null;
  return (s * (p.total - p.done)) / p.done;
}

/** Where a forward pass is: embedding, layer i of n, lm_head (the engine reports layers + 2 steps). */
export function stepLabel(r: RunView): string {
  const p = r.progress;
  if (!p) return 'tokenizing…';
  if (p.unit !== 'layers') return `${p.phase}${p.detail ? ` (${p.detail})` : ''} · ${p.done} / ${p.total} ${p.unit}`;
  if (p.done === 0) return 'embedding';
  if (p.done <= r.layers) return `layer ${p.done} of ${r.layers}`;
  return p.done > r.layers + 1 ? 'finishing' : 'lm_head';
}

/** Tokens per second through the whole model so far (a layer of N tokens counts as N / layers). */
export function tokensPerSecond(r: RunView): number | null {
  const p = r.progress;
  const s = (r.now - r.startedAt) / 1000;
  if (!p || p.unit !== 'layers' || !p.total || !r.tokens || p.done === 0 || s <= 0) return null;
  return (r.tokens * p.done) / p.total / s;
}

/** One run's progress line, bar and Cancel. */
export function RunProgress({ run, testid }: { run: RunView; testid: string }) {
  const p = run.progress;
  const rate = tokensPerSecond(run);
  const cancelling = run.controller.signal.aborted;
  return (
    <div className="run-progress" data-testid={testid} data-kind={run.kind}>
      <div className="ingest-line small">
        <span>
          <strong>{KIND[run.kind]}</strong> · <span data-testid={`${testid}-step`}>{cancelling ? 'cancelling after this layer…' : stepLabel(run)}</span>
        </span>
        <span className="mono" data-testid={`${testid}-rate`}>
          {[
            rate !== null ? `${Math.round(rate).toLocaleString('en-US')} tokens/s` : '',
            secondsLeft(run) !== null ? `about ${Math.ceil(secondsLeft(run)!)} s left` : '',
            run.peakPoolBytes > 0 ? `peak GPU ${formatBytes(run.peakPoolBytes)}` : '',
          ]
            .filter(Boolean)
            .join(' · ')}
        </span>
      </div>
      <div className="run-bar">
        <Bar done={p?.done ?? 0} total={p?.total ?? 0} />
        <button className="btn btn-small" data-testid={`${testid}-cancel`} disabled={cancelling} onClick={cancelEval}>
          Cancel
        </button>
      </div>
    </div>
  );
}
