import { cancelEval, useEval, heldoutKey, planKey, type RunView } from './eval-state.ts';
import { cancelExport, useExport } from './export-state.ts';
import { flowSteps, type StepFacts, type StepId } from './flow-steps.ts';
import { usePlan } from './prune-state.ts';
import { secondsLeft as evalSecondsLeft } from './RunProgress.tsx';
import { cancelStage2, currentDone, freshDone, secondsLeft as stage2SecondsLeft, useStage2 } from './stage2-state.ts';
import { cancelIngest, useApp } from './state.ts';

const EVAL_KINDS = new Set<RunView['kind']>(['before', 'after']);

/** The panels' own Cancel for a running step (planning is quick and has none). */
const CANCEL: Partial<Record<StepId, () => void>> = { load: cancelIngest, calibrate: cancelEval, unstructured: cancelStage2, evaluate: cancelEval, export: cancelExport };

/**
 * The guided flow at a glance: load → calibrate → plan experts → unstructured → evaluate → export, each step's state
 * from the stores the panels below already keep, and before a step runs what it will cost.
 */
export function FlowSteps() {
  const app = useApp();
  const ev = useEval();
  const plan = usePlan();
  const st2 = useStage2();
  const exp = useExport();
  const cur = app.current;
  const fileSet = cur?.fileSet ?? null;
  if (!cur && !app.ingest) return null;

  const run = ev.running;
  const calib = ev.calibration && ev.calibration.source === fileSet ? ev.calibration : null;
  const calibStale = calib !== null && (calib.seqLen !== ev.calib.length || calib.sampling !== ev.calib.sampling);
  const after = ev.after && ev.after.source === fileSet ? ev.after : null;
  const afterStale = after !== null && (after.settingsKey !== heldoutKey(ev) || !plan.plan || after.planKey !== planKey(plan.plan));
  const s2 = currentDone(fileSet);
  const ingest = app.ingest?.progress ?? null;
  const steps: Record<'load' | 'calibrate' | 'plan' | 'unstructured' | 'evaluate' | 'export', StepFacts> = {
    load: { running: app.ingest !== null, done: cur?.summary != null, progress: ingest ? { done: ingest.done, total: ingest.total } : null, secondsLeft: ingest?.etaSec ?? null },
    calibrate: {
      running: run?.kind === 'calibration',
      done: calib !== null,
      stale: calibStale,
      progress: run?.kind === 'calibration' ? run.progress : null,
      secondsLeft: run?.kind === 'calibration' ? evalSecondsLeft(run) : null,
    },
    plan: { running: plan.preparing !== null, done: plan.plan !== null && plan.source === fileSet, progress: plan.preparing },
    unstructured: {
      running: st2.running !== null,
      done: s2 !== null,
      stale: s2 !== null && freshDone() === null,
      progress: st2.running?.progress ?? null,
      secondsLeft: st2.running ? stage2SecondsLeft(st2.running) : null,
    },
    evaluate: {
      running: run !== null && EVAL_KINDS.has(run.kind),
      done: after !== null,
      stale: afterStale,
      progress: run && EVAL_KINDS.has(run.kind) ? run.progress : null,
      secondsLeft: run && EVAL_KINDS.has(run.kind) ? evalSecondsLeft(run) : null,
    },
    export: { running: exp.running !== null, done: exp.done !== null && exp.done.source === fileSet, progress: exp.running?.progress ?? null },
  };
  const views = flowSteps({
    steps,
    layers: cur?.summary?.layers ?? 0,
    largestLayerBytes: calib ? calib.peakLayerWeightBytes : null,
    secondsPerLayer: calib && calib.layers.length ? calib.seconds / calib.layers.length : null,
    exportBytes: plan.numbers?.bytesAfter ?? null,
  });
  return (
    <nav className="flow-steps" aria-label="Steps" data-testid="flow-steps">
      <ol>
        {views.map((v, i) => (
          <li key={v.id} className={`flow-step flow-${v.state}`} data-testid="flow-step" data-step={v.id} data-state={v.state}>
            <span className="flow-step-name">
              {i + 1}. {v.label}
            </span>{' '}
            <span className="flow-step-state small">{v.state === 'not-started' ? 'not started' : v.state}</span>
            {v.detail && <span className="flow-step-detail small muted"> · {v.detail}</span>}
            {v.state === 'running' && CANCEL[v.id] && (
              <button type="button" className="btn btn-small flow-step-cancel" data-testid="flow-step-cancel" onClick={CANCEL[v.id]}>
                Cancel
              </button>
            )}
          </li>
        ))}
      </ol>
    </nav>
  );
}
