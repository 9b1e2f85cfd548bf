import { Bar, CartesianGrid, ComposedChart, Legend, Line, ResponsiveContainer, Tooltip, XAxis, YAxis } from 'recharts';
import type { ExpertPlan } from '../pipeline/job.ts';
import { ChartFrame } from './ChartFrame.tsx';
import { Bar as ProgressBar } from './controls.tsx';
import { cancelReconstruction, layerRows, measureReconstruction, reconKey, useLayers } from './layer-state.ts';
import { currentDone, useStage2 } from './stage2-state.ts';
import { useApp } from './state.ts';
import { useEval } from './eval-state.ts';

const pct = (v: number | null): number | null => (v === null ? null : Math.round(v * 10000) / 100);

/**
 * Per decoder layer: experts kept (bars, left axis), the unstructured ratio stage 2 applied there (OWL's spread) and the
 * MoE block's reconstruction error on the calibration text (lines, right axis, both in %). The error is measured on
 * request; one measured for another plan or calibration is shown as stale, not as this plan's.
 */
export function LayerChart({ plan }: { plan: ExpertPlan }) {
  const fileSet = useApp((s) => s.current?.fileSet ?? null);
  useStage2((s) => s.done);
  useEval((s) => s.calibText);
  useEval((s) => s.calib);
  const st = useLayers();
  const stage2 = currentDone(fileSet);
  const recon = st.done && st.done.source === fileSet ? st.done : null;
  const fresh = recon !== null && recon.key === reconKey(plan);
  const rows = layerRows(plan, stage2?.result ?? null, fresh ? recon.layers : null);
  const data = rows.map((r) => ({ layer: String(r.layer), kept: r.kept, unstructured: pct(r.unstructured), error: pct(r.error) }));
  const maxExperts = Math.max(1, ...rows.map((r) => r.experts ?? 0));
  const run = st.running;
  return (
    <div className="layer-chart-wrap" data-testid="layer-chart-panel" data-recon={fresh ? 'measured' : recon ? 'stale' : 'none'}>
      <ChartFrame name="layer-chart" title="Per layer: experts kept, unstructured sparsity and reconstruction error">
        <div
          className="layer-chart"
          data-testid="layer-chart"
          data-layers={rows.map((r) => r.layer).join(',')}
          data-kept={rows.map((r) => r.kept ?? '').join(',')}
          data-unstructured={rows.map((r) => r.unstructured ?? '').join(',')}
          data-errors={rows.map((r) => r.error ?? '').join(',')}
        >
          <ResponsiveContainer width="100%" height={250}>
            <ComposedChart accessibilityLayer={false} data={data} margin={{ top: 8, right: 12, bottom: 18, left: 8 }}>
              <CartesianGrid vertical={false} stroke="#eef1f5" />
              <XAxis dataKey="layer" tick={{ fontSize: 11 }} interval="preserveStartEnd" tickLine={false} label={{ value: 'decoder layer', position: 'insideBottom', offset: -10, fontSize: 12 }} />
              <YAxis
                yAxisId="n"
                domain={[0, maxExperts]}
                allowDecimals={false}
                tick={{ fontSize: 11 }}
                tickLine={false}
                axisLine={false}
                label={{ value: 'experts kept (count)', angle: -90, position: 'insideLeft', offset: 4, fontSize: 12, style: { textAnchor: 'middle' } }}
              />
              <YAxis
                yAxisId="p"
                orientation="right"
                domain={[0, 'auto']}
                unit="%"
                tick={{ fontSize: 11 }}
                tickLine={false}
                axisLine={false}
                label={{ value: 'sparsity, error (%)', angle: 90, position: 'insideRight', offset: 4, fontSize: 12, style: { textAnchor: 'middle' } }}
              />
              <Tooltip isAnimationActive={false} labelFormatter={(l) => `layer ${String(l)}`} />
              <Legend verticalAlign="top" height={28} wrapperStyle={{ fontSize: 12 }} />
              <Bar yAxisId="n" dataKey="kept" name="experts kept" fill="#2563c9" isAnimationActive={false} />
              <Line yAxisId="p" dataKey="unstructured" name={stage2?.result.owl ? 'unstructured ratio (OWL, %)' : 'unstructured ratio (%)'} stroke="#b54708" strokeWidth={2} dot isAnimationActive={false} connectNulls />
              <Line yAxisId="p" dataKey="error" name="reconstruction error ‖y − ŷ‖² / ‖y‖² (%, measured)" stroke="#7c3aed" strokeWidth={2} dot isAnimationActive={false} connectNulls />
            </ComposedChart>
          </ResponsiveContainer>
          <div className="small muted chart-caption">
            {stage2 ? 'Unstructured ratio: from the last stage-2 run.' : 'Unstructured ratio: run stage 2 to see it.'}{' '}
            {fresh
              ? `Reconstruction error: measured on the calibration text for this plan in ${recon.seconds.toFixed(1)} s.`
              : recon
                ? 'Reconstruction error: measured for another plan or calibration (stale), measure again.'
                : 'Reconstruction error: not measured yet.'}
          </div>
        </div>
      </ChartFrame>
      <div className="layer-chart-actions">
        {run ? (
          <>
            <ProgressBar done={run.progress?.done ?? 0} total={run.progress?.total ?? 0} testid="recon-progress" />
            <button type="button" className="btn btn-small" data-testid="recon-cancel" onClick={cancelReconstruction}>
              Cancel
            </button>
          </>
        ) : (
          <button type="button" className="btn btn-small" data-testid="recon-measure" disabled={!fileSet} onClick={() => void measureReconstruction(plan)}>
            Measure reconstruction error (GPU, one pass over the calibration text)
          </button>
        )}
        {st.error && (
          <span className="notice notice-warn small" data-testid="recon-error">
            {st.error}
          </span>
        )}
      </div>
    </div>
  );
}
