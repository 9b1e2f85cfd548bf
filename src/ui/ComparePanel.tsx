import { useEffect } from 'react';
import { Bar, BarChart, CartesianGrid, Legend, ResponsiveContainer, Tooltip, XAxis, YAxis } from 'recharts';
import type { CriterionResult } from '../pipeline/job.ts';
import { ChartFrame } from './ChartFrame.tsx';
import { Bar as ProgressBar, Field, IntControl } from './controls.tsx';
import {
  cancelComparison, compareKey, compareKeep, isCurrentPlan, runComparison, setCompareKeep, setComparePerplexity, syncCompareModel, takeRowAsPlan, useCompare,
} from './compare-state.ts';
import { useEval, useEvalBlocker } from './eval-state.ts';
import { usePlan } from './prune-state.ts';
import { useStage2 } from './stage2-state.ts';
import { useApp } from './state.ts';

/** What each criterion keeps, in a few words (the CLI's `moe-prune compare` names). */
const HINT: Record<string, string> = {
  'stun-router': 'STUN clustering on router rows',
  'stun-coactivation': 'STUN clustering on co-activation',
  'stun-mixed': 'STUN clustering, router + co-activation',
  reap: 'highest REAP saliency (router weight × output norm)',
  ean: 'largest expert activation norm',
  frequency: 'most often routed',
  random: 'seeded random draw',
  exhaustive: 'NAEE: best of every subset',
  output: 'HC-SMoE: clustering on mean expert outputs',
};

const fmt = (v: number): string => (v === 0 ? '0' : v < 1e-3 ? v.toExponential(2) : v.toFixed(4));

function ErrorChart({ rows }: { rows: readonly CriterionResult[] }) {
  const data = rows.map((r) => ({ criterion: r.criterion, error: r.meanError }));
  return (
    <ChartFrame name="compare-chart" title="Mean reconstruction error per criterion (lower is better)" titled>
    <div className="compare-chart" data-testid="compare-chart">
      <h3 className="chart-title">Mean reconstruction error per criterion (lower is better)</h3>
      <ResponsiveContainer width="100%" height={240}>
        <BarChart data={data} margin={{ top: 8, right: 12, bottom: 28, left: 12 }}>
          <CartesianGrid vertical={false} stroke="#eef1f5" />
          <XAxis dataKey="criterion" tick={{ fontSize: 11 }} interval={0} tickLine={false} label={{ value: 'criterion', position: 'insideBottom', offset: -16, fontSize: 12 }} />
          <YAxis
            tick={{ fontSize: 11 }}
            tickLine={false}
            axisLine={false}
            label={{ value: '‖y − ŷ‖² / ‖y‖² (mean over MoE layers)', angle: -90, position: 'insideLeft', offset: 0, fontSize: 12, style: { textAnchor: 'middle' } }}
          />
          <Tooltip isAnimationActive={false} formatter={(v) => [fmt(Number(v)), 'mean reconstruction error']} />
          <Legend verticalAlign="top" height={28} wrapperStyle={{ fontSize: 12 }} />
          <Bar dataKey="error" name="mean reconstruction error of the MoE blocks on the calibration tokens" fill="#2563c9" isAnimationActive={false} />
        </BarChart>
      </ResponsiveContainer>
    </div>
    </ChartFrame>
  );
}

/**
 * Every way of choosing experts, measured on this model and calibration text: kept experts per layer, reconstruction
 * error (mean and per layer), held-out perplexity when asked, time; any row can be taken as the plan.
 */
export function ComparePanel() {
  const cur = useApp((s) => s.current);
  const gpu = useApp((s) => s.gpu.status);
  const fileSet = cur?.summary ? cur.fileSet : null;
  const st = useCompare();
  const ps = usePlan();
  const blocker = useEvalBlocker();
  const evalRunning = useEval((s) => s.running !== null);
  const stage2Running = useStage2((s) => s.running !== null);
  // Subscriptions: the key below reads these.
  useEval((s) => s.calib);
  useEval((s) => s.calibText);
  useEval((s) => s.heldout);
  useEval((s) => s.heldoutText);

  useEffect(() => {
    syncCompareModel(fileSet);
  }, [fileSet]);

  if (!fileSet || !cur?.summary || cur.summary.moeLayers.length === 0) return null;
  if (ps.source !== fileSet || !ps.model || !ps.controls) return null;
  const n = ps.model.cat.summary.expertsPerLayer;
  const K = compareKeep() ?? n;
  const done = st.done && st.done.source === fileSet ? st.done : null;
  const fresh = done !== null && done.key === compareKey();
  const busy = st.running !== null || evalRunning || stage2Running;
  const why = gpu !== 'ready' ? 'The comparison runs the model on the GPU, which is not available here.' : blocker;
  const rows = done?.comparison.results ?? [];
  const layers = rows[0] ? rows[0].reconstruction.map((l) => l.layer) : [];
  const ppl = done?.comparison.original.perplexity ?? null;
  return (
    <section className="card plan compare" data-testid="compare-panel" data-state={done ? (fresh ? 'fresh' : 'stale') : 'none'} data-running={st.running ? 'true' : ''}>
      <div className="card-head">
        <div>
          <h2>Which experts to drop: compare the criteria</h2>
          <div className="muted small">
            Every criterion keeps K experts per MoE layer on the calibration text; the table shows how far each plan moves the MoE blocks&apos; outputs (and,
            if asked, held-out perplexity). Same as <code>moe-prune compare</code>.
          </div>
        </div>
      </div>
      <div className="inline compare-controls">
        <Field label="Experts kept per layer (K)">
          <IntControl value={K} min={ps.model.cat.summary.topK} max={n} onChange={setCompareKeep} testid="compare-keep" disabled={busy} />
        </Field>
        <label className="small">
          <input type="checkbox" data-testid="compare-perplexity" checked={st.perplexity} disabled={busy} onChange={(e) => setComparePerplexity(e.target.checked)} /> also measure held-out
          perplexity (one more pass per criterion)
        </label>
        <button className="btn btn-primary" data-testid="compare-run" disabled={busy || why !== null} title={why ?? undefined} onClick={() => void runComparison()}>
          {done ? 'Compare again' : 'Compare criteria'}
        </button>
        {st.running && (
          <button className="btn" data-testid="compare-cancel" onClick={cancelComparison}>
            Cancel
          </button>
        )}
      </div>
      {why && <div className="small muted">{why}</div>}
      {st.running?.progress && (
        <div className="small" data-testid="compare-progress">
          {st.running.progress.phase}
          <ProgressBar done={st.running.progress.done} total={st.running.progress.total} />
        </div>
      )}
      {st.error && (
        <div className="notice notice-bad" data-testid="compare-error">
          {st.error}
        </div>
      )}
      {done && (
        <>
          {!fresh && <div className="notice small">K or the texts changed since this table was measured; compare again to update it.</div>}
          <div className="small muted">
            K = {done.comparison.keepPerLayer} · calibration {done.calibrationText}
            {ppl ? ` · held-out ${done.heldoutText}: original perplexity ${ppl.perplexity.toFixed(3)}` : ''} · {done.seconds.toFixed(1)} s in all
            {done.comparison.skipped.map((s) => ` · ${s.criterion} left out: ${s.reason}`).join('')}
          </div>
          <ErrorChart rows={rows} />
          <div style={{ overflowX: 'auto' }}>
            <table className="compare-table" data-testid="compare-table">
              <thead>
                <tr>
                  <th>criterion</th>
                  <th>kept experts per layer</th>
                  <th>mean error</th>
                  {layers.map((l) => (
                    <th key={l}>layer {l}</th>
                  ))}
                  {ppl && <th>perplexity</th>}
                  <th>seconds</th>
                  <th />
                </tr>
              </thead>
              <tbody>
                {rows.map((r) => {
                  const current = isCurrentPlan(r);
                  return (
                    <tr key={r.criterion} data-testid="compare-row" data-criterion={r.criterion} data-mean-error={r.meanError} data-current={current ? 'true' : 'false'}>
                      <td title={HINT[r.criterion]}>
                        <strong>{r.criterion}</strong>
                        <div className="small muted">{HINT[r.criterion]}</div>
                      </td>
                      <td className="mono small" data-testid="compare-kept">
                        {Object.entries(r.kept)
                          .map(([l, k]) => `${l}: ${k.join(',')}`)
                          .join(' · ')}
                      </td>
                      <td className="mono">{fmt(r.meanError)}</td>
                      {r.reconstruction.map((l) => (
                        <td key={l.layer} className="mono small">
                          {fmt(l.error)}
                        </td>
                      ))}
                      {ppl && <td className="mono">{r.perplexity ? r.perplexity.perplexity.toFixed(3) : '—'}</td>}
                      <td className="mono small">{(r.seconds.choose + r.seconds.reconstruction + (r.seconds.perplexity ?? 0)).toFixed(2)}</td>
                      <td>
                        <button className="btn btn-small" data-testid="compare-use" disabled={busy || !fresh || current} onClick={() => takeRowAsPlan(r)}>
                          {current ? 'Current plan' : 'Use as plan'}
                        </button>
                      </td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </div>
          {st.adopted && <div className="small" data-testid="compare-adopted">The plan now keeps what {st.adopted} keeps; stage 2 and the export use it. Moving a plan control returns to clustering.</div>}
        </>
      )}
    </section>
  );
}
