import { useEffect, useState } from 'react';
import { formatCount } from '../core/format.ts';
import type { TradeoffPoint } from '../pipeline/job.ts';
import { Bar, Field, Segmented } from './controls.tsx';
import { hasTokenizer, taskKey, useEval } from './eval-state.ts';
import { useJob } from './job-state.ts';
import { usePlan } from './prune-state.ts';
import { useStage2 } from './stage2-state.ts';
import { useApp } from './state.ts';
import { TradeoffChart, xOf } from './TradeoffChart.tsx';
import { ChartFrame } from './ChartFrame.tsx';
import { downloadBlob } from './chart-export.ts';
import {
  accuracyPoints, cancelTradeoff, clearPoints, currentAccuracyCsv, currentCsv, currentSetting, measureCurrentPoint, parsePercents, runTradeoffSweep, secondsLeft, setAxis, setGrid, sweepBase,
  ownTextNames, setWithTask, setYAxis, syncTradeoffModel, useTradeoff, visiblePoints, type TradeoffRun, type XAxisChoice, type YAxisChoice,
} from './tradeoff-state.ts';

const Y_AXES: ReadonlyArray<readonly [YAxisChoice, string]> = [
  ['perplexity', 'perplexity'],
  ['accuracy', 'task accuracy'],
];

const AXES: ReadonlyArray<readonly [XAxisChoice, string]> = [
  ['params', 'parameters kept'],
  ['sparsity', 'total sparsity'],
];

function seconds(s: number): string {
  return s < 90 ? `${Math.max(1, Math.round(s))} s` : `${Math.round(s / 60)} min`;
}

/** A list of percents typed as text ("25, 50, 75"); the store keeps the last valid list. */
function PercentList({ value, lo, hi, testid, onChange }: { value: readonly number[]; lo: number; hi: number; testid: string; onChange: (v: number[]) => void }) {
  const [text, setText] = useState(value.join(', '));
  const [bad, setBad] = useState(false);
  useEffect(() => setText(value.join(', ')), [value]);
  return (
    <input
      type="text"
      className={bad ? 'invalid' : ''}
      aria-invalid={bad}
      data-testid={testid}
      value={text}
      onChange={(e) => {
        const t = e.currentTarget.value;
        setText(t);
        const v = parsePercents(t, lo, hi);
        setBad(v === null);
        if (v) onChange(v);
      }}
    />
  );
}

function SweepProgress({ run }: { run: TradeoffRun }) {
  const left = secondsLeft(run);
  const cancelling = run.controller.signal.aborted;
  const step = run.step;
  const what = run.kind === 'sweep' ? (run.total ? `setting ${Math.min(run.done + 1, run.total)} of ${run.total}` : 'preparing') : 'this point';
  return (
    <div className="run-progress" data-testid="sweep-progress" data-kind={run.kind} data-done={run.done} data-total={run.total}>
      <div className="ingest-line small">
        <span>
          <strong>{run.kind === 'sweep' ? 'Sweep' : 'Measuring'}</strong> · {cancelling ? 'cancelling…' : `${what} · ${run.detail}`}
          {step && !cancelling ? ` · ${step.phase} ${Math.min(step.done, step.total)}/${step.total} ${step.unit}` : ''}
        </span>
        <span className="mono" data-testid="sweep-eta">
          {left !== null && run.kind === 'sweep' ? `about ${seconds(left)} left` : 'time left: after the first setting'}
        </span>
      </div>
      <div className="run-bar">
        <Bar done={run.done} total={run.total} testid="sweep-progress-bar" />
        <button className="btn btn-small" data-testid="sweep-cancel" disabled={cancelling} onClick={cancelTradeoff}>
          Cancel
        </button>
      </div>
    </div>
  );
}

const pct1 = (v: number): string => `${(100 * v).toFixed(1)} %`;

function PointsTable({ points }: { points: readonly TradeoffPoint[] }) {
  if (!points.length) return null;
  const withAcc = points.some((p) => p.acc !== undefined);
  return (
    <details className="tradeoff-table">
      <summary>Table of the measured points ({points.length})</summary>
      <table className="small" data-testid="tradeoff-table">
        <thead>
          <tr>
            <th scope="col">experts / layer</th>
            <th scope="col">expert sparsity</th>
            <th scope="col">unstructured s_u</th>
            <th scope="col">total</th>
            <th scope="col">method</th>
            <th scope="col">non-zero parameters</th>
            <th scope="col">perplexity</th>
            {withAcc && <th scope="col">accuracy (acc / acc_norm)</th>}
          </tr>
        </thead>
        <tbody>
          {points.map((p, i) => (
            <tr key={i}>
              <td>{Math.round(p.expertsPerLayer * 100) / 100}</td>
              <td>{pct1(p.expertSparsity)}</td>
              <td>{pct1(p.unstructuredSparsity)}</td>
              <td>{pct1(p.totalSparsity)}</td>
              <td>{p.method}</td>
              <td>{formatCount(p.nonzeroParams)}</td>
              <td className="mono">{p.perplexity === null ? '—' : p.perplexity.toFixed(3)}</td>
              {withAcc && <td className="mono">{p.acc === undefined || p.acc_norm === undefined ? '—' : `${pct1(p.acc)} / ${pct1(p.acc_norm)}`}</td>}
            </tr>
          ))}
        </tbody>
      </table>
    </details>
  );
}

function downloadCsv(name: string, csv: string): void {
  downloadBlob(new Blob([csv], { type: 'text/csv' }), name);
}

/** The trade-off explorer: measured size against held-out perplexity, a sweep over a grid, and the setting on screen. */
export function TradeoffPanel() {
  const cur = useApp((s) => s.current);
  const gpu = useApp((s) => s.gpu.status);
  const fileSet = cur?.summary ? cur.fileSet : null;
  const st = useTradeoff();
  // Subscriptions: the current setting and the context read these stores.
  const ps = usePlan();
  useStage2((s) => s.controls);
  const stage2Busy = useStage2((s) => s.running !== null);
  const evalBusy = useEval((s) => s.running !== null);
  useEval((s) => s.calib);
  useEval((s) => s.heldout);
  useEval((s) => s.calibText);
  useEval((s) => s.heldoutText);
  const tk = useEval((s) => taskKey(s));
  const job = useJob((s) => (s.source === fileSet ? s.job : null));

  useEffect(() => {
    syncTradeoffModel(fileSet);
  }, [fileSet]);

  if (!fileSet || !cur?.summary || cur.summary.moeLayers.length === 0) return null;
  if (ps.source !== fileSet || !ps.model || !ps.controls || !job) return null;
  const ready = gpu === 'ready' && hasTokenizer(cur.files);
  const b = sweepBase();
  const points = visiblePoints(st, b.ok ? b.context : null);
  const accPoints = accuracyPoints(st, b.ok ? b.context : null, tk);
  const shown = b.ok ? st.points.filter((p) => p.context === b.context) : [];
  const ownTexts = ownTextNames(shown);
  const elsewhere = st.points.length - shown.length;
  const current = currentSetting();
  const busy = st.running !== null || stage2Busy || evalBusy;
  const original = cur.summary.params.total;
  const last = st.sweeps.at(-1);
  const name = `${cur.name.replace(/[^\w.-]+/g, '_')}-tradeoff.csv`;
  return (
    <section className="card plan tradeoff" data-testid="tradeoff-panel" data-available={ready ? 'true' : 'false'} data-running={st.running?.kind ?? ''}>
      <div className="card-head">
        <div>
          <h2>Trade-off: size against quality</h2>
          <div className="muted small">
            Measure what each setting costs in held-out perplexity: STUN with experts taking different shares of the total sparsity, unstructured pruning alone and expert
            pruning alone. Every point is measured on the fly with the other settings on this page (similarity, method, scope, calibration and held-out texts); nothing
            is written.
          </div>
        </div>
      </div>
      {!ready ? (
        <div className="small muted" data-testid="tradeoff-unavailable">
          {gpu !== 'ready' ? 'Measuring points runs on the GPU, and WebGPU is not available (yet).' : 'Measuring perplexity needs the checkpoint’s tokenizer.json.'}
        </div>
      ) : (
        <>
          <div className="plan-grid">
            <div className="plan-controls" data-testid="tradeoff-controls">
              <Field label="Total sparsities S (%)" hint="comma-separated, each in 1–99">
                <PercentList testid="sweep-totals" value={st.totalsPct} lo={1} hi={99} onChange={(totalsPct) => setGrid({ totalsPct })} />
              </Field>
              <Field label="Expert shares of S (%)" hint="0 = unstructured only; each share picks the experts-per-layer count closest to it (≥ top-k)">
                <PercentList testid="sweep-shares" value={st.sharesPct} lo={0} hi={99} onChange={(sharesPct) => setGrid({ sharesPct })} />
              </Field>
              <Field label="Expert pruning only" hint="also measure the expert count closest to each S, without stage 2">
                <label className="inline small">
                  <input type="checkbox" data-testid="sweep-expert-only" checked={st.expertOnly} onChange={(e) => setGrid({ expertOnly: e.currentTarget.checked })} /> include
                </label>
              </Field>
              <Field label="x axis">
                <Segmented<XAxisChoice> testid="tradeoff-axis" value={st.axis} options={AXES} onChange={setAxis} />
              </Field>
              <Field label="y axis" hint="accuracy: on the task of the calibration and perplexity panel (the demo task or yours), of the points measured with it">
                <Segmented<YAxisChoice> testid="tradeoff-y-axis" value={st.yAxis} options={Y_AXES} onChange={setYAxis} />
              </Field>
              <Field label="Task accuracy" hint="the sweep and Measure this point also measure the task, with the same plans and masks (slower)">
                <label className="inline small">
                  <input type="checkbox" data-testid="sweep-with-task" checked={st.withTask} disabled={busy} onChange={(e) => setWithTask(e.currentTarget.checked)} /> measure too
                </label>
              </Field>
            </div>
            <div className="plan-results">
              {(ownTexts.length > 0 || elsewhere > 0) && (
                <div className="small muted" data-testid="tradeoff-texts" data-own={ownTexts.join(';')} data-elsewhere={elsewhere}>
                  {ownTexts.length > 0 ? `Points measured with your own text (${ownTexts.join('; ')}). ` : ''}
                  {elsewhere > 0 ? `${elsewhere} more point(s) of this model were measured under other settings or texts; choose those again to see them.` : ''}
                </div>
              )}
              <div className="inline stage2-actions">
                <button className="btn btn-primary" data-testid="sweep-run" disabled={busy || !b.ok} onClick={() => void runTradeoffSweep()}>
                  Run sweep
                </button>
                <button className="btn" data-testid="tradeoff-point-measure" disabled={busy || !current} onClick={() => void measureCurrentPoint()}>
                  Measure this point
                </button>
                <button className="btn" data-testid="tradeoff-csv" disabled={!points.length} onClick={() => downloadCsv(name, currentCsv())}>
                  Download CSV
                </button>
                <button className="btn" data-testid="tradeoff-acc-csv" disabled={!accPoints.length} onClick={() => downloadCsv(name.replace(/\.csv$/, '-accuracy.csv'), currentAccuracyCsv())}>
                  Download accuracy CSV
                </button>
                <button className="btn btn-small" data-testid="tradeoff-clear" disabled={busy || !points.length} onClick={clearPoints}>
                  Clear points
                </button>
              </div>
              <div className="small muted" data-testid="tradeoff-current" data-perplexity={current?.point.perplexity ?? ''} data-measured={current ? String(current.point.measured) : ''}>
                {current
                  ? `Setting on screen: ${Math.round(current.point.expertsPerLayer * 100) / 100} experts per layer, total ${pct1(current.point.totalSparsity)} (${current.point.method}); perplexity ${
                      current.point.perplexity === null ? 'not measured' : `${current.point.perplexity.toFixed(3)} ${current.point.measured ? '(measured)' : '(estimate)'}`
                    }${current.point.acc !== undefined ? `; accuracy ${pct1(current.point.acc)} (measured)` : ''}; x = ${xOf(current.point, st.axis, original)} %.`
                  : 'The setting on screen cannot be measured (see the stage-2 panel).'}
              </div>
              {st.running && <SweepProgress run={st.running} />}
              {st.error && (
                <div className="notice notice-bad" data-testid="tradeoff-error">
                  {st.error}
                </div>
              )}
              {st.cancelled && (
                <div className="notice notice-warn small" data-testid="sweep-cancelled">
                  Sweep cancelled; the points measured before it stay.
                </div>
              )}
              {last && !st.running && (
                <div className="small muted" data-testid="sweep-done" data-settings={last.settings}>
                  Last sweep: {last.settings} settings in {seconds(last.seconds)}.
                </div>
              )}
            </div>
          </div>
          <ChartFrame name="tradeoff" title="Size against quality (trade-off chart)" titled>
            <TradeoffChart points={st.yAxis === 'accuracy' ? accPoints : points} current={current?.point ?? null} axis={st.axis} originalParams={original} y={st.yAxis} />
          </ChartFrame>
          <PointsTable points={points} />
        </>
      )}
    </section>
  );
}
