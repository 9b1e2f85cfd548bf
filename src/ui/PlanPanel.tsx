import { useEffect } from 'react';
import type { Catalogue } from '../models/catalogue.ts';
import type { ExpertPlan, LayerPlan, ReconstructRule, SimilarityMode } from '../pipeline/job.ts';
import { formatBytes, formatCount } from '../core/format.ts';
import { Bar, Field, IntControl, Segmented } from './controls.tsx';
import { DistanceHeatmap } from './DistanceHeatmap.tsx';
import { useEval, useEvalBlocker } from './eval-state.ts';
import { KeptChart } from './KeptChart.tsx';
import { LayerChart } from './LayerChart.tsx';
import { PerplexityBox } from './PerplexityBox.tsx';
import { attachCalibration, expertsRange, preparePlan, selectLayer, setControls, usePlan, type PlanControls, type PlanNumbers } from './prune-state.ts';
import { useApp } from './state.ts';

function pct(after: number, before: number): string {
  return before > 0 ? `${(100 * (1 - after / before)).toFixed(1)} % smaller` : '';
}

const MEASURE_TITLE: Record<SimilarityMode, string> = {
  router: 'Router distances',
  coactivation: 'Co-activation distances',
  mixed: 'Mixed distances (co-activation + router)',
  output: 'Expert-output distances',
};
const MEASURE_LEGEND: Record<SimilarityMode, string> = { router: 'router distance', coactivation: 'co-activation distance', mixed: 'mixed distance', output: 'expert-output distance' };

const SIMILARITY_HINT: Record<SimilarityMode, string> = {
  router: 'distance between router rows: experts the router treats alike',
  coactivation: 'experts chosen together by the same calibration tokens are close (−a_ij / |mean a|)',
  mixed: 'μ · co-activation distance + router distance',
  output: "distance between the experts' mean outputs on the calibration tokens (HC-SMoE)",
};

/** A plan taken from the comparison by a score: the heatmap shows score differences (REAP, EAN, frequency) or none. */
function scoreLegend(score: string | null): string | null {
  if (!score) return null;
  return score === 'reap' || score === 'ean' || score === 'frequency' ? `difference of ${score} scores` : `none (${score} does not cluster)`;
}

/** Router / co-activation / mixed; the last two need this model's calibration statistics. */
function SimilarityControl({ c, calibrated }: { c: PlanControls; calibrated: boolean }) {
  const options: ReadonlyArray<readonly [SimilarityMode, string]> = [
    ['router', 'router distance'],
    ['coactivation', 'co-activation'],
    ['mixed', 'mixed'],
  ];
  return (
    <Field label="Similarity" hint={calibrated ? SIMILARITY_HINT[c.similarity] : `${SIMILARITY_HINT.router} · co-activation and mixed: run calibration first`}>
      <Segmented
        value={c.similarity}
        options={options}
        onChange={(similarity) => setControls({ similarity })}
        testid="similarity"
        data={{ 'data-calibrated': calibrated ? 'true' : 'false' }}
        offReason={(v) => (v !== 'router' && !calibrated ? 'run calibration first (Calibration and perplexity panel)' : undefined)}
      />
      <div className="inline">
        {c.similarity !== 'coactivation' && (
          <label className="check">
            <input type="checkbox" checked={c.normalize} data-testid="normalize" onChange={(e) => setControls({ normalize: e.currentTarget.checked })} />
            normalise router distance by ‖W‖<sub>F</sub>
          </label>
        )}
        {c.similarity === 'mixed' && (
          <label className="kappa">
            μ
            <input
              type="number"
              min={0}
              step={0.1}
              value={c.mixWeight}
              data-testid="mix-weight"
              onChange={(e) => {
                const v = Number(e.currentTarget.value);
                if (Number.isFinite(v) && v >= 0) setControls({ mixWeight: v });
              }}
            />
          </label>
        )}
      </div>
    </Field>
  );
}

function Controls({ c, cat, calibrated }: { c: PlanControls; cat: Catalogue; calibrated: boolean }) {
  const n = cat.summary.expertsPerLayer;
  const layers = cat.moeLayers.length;
  return (
    <div className="plan-controls" data-testid="plan-controls">
      <Field label="Target">
        <Segmented
          testid="plan-mode"
          value={c.mode}
          options={[
            ['uniform', 'Same count per layer'],
            ['global', 'Global target'],
          ]}
          onChange={(mode) => setControls({ mode })}
        />
      </Field>
      {c.mode === 'uniform' ? (
        <Field label="Experts kept per layer" hint={`of ${n}; every token still picks its top ${cat.summary.topK}`}>
          <IntControl testid="keep" value={c.keep} min={Math.min(cat.summary.topK, n)} max={n} suffix={`/ ${n}`} onChange={(keep) => setControls({ keep })} />
        </Field>
      ) : (
        <Field label="Global target" hint="one threshold τ for all layers; layers may keep different counts">
          <Segmented
            testid="global-by"
            value={c.globalBy}
            options={[
              ['sparsity', 'Expert sparsity %'],
              ['total', 'Experts kept in total'],
            ]}
            onChange={(globalBy) => setControls({ globalBy })}
          />
          {c.globalBy === 'sparsity' ? (
            <IntControl testid="sparsity" value={c.sparsityPct} min={0} max={95} suffix="% removed" onChange={(sparsityPct) => setControls({ sparsityPct })} />
          ) : (
            <IntControl testid="target-total" value={c.targetTotal} min={layers} max={n * layers} suffix={`/ ${n * layers}`} onChange={(targetTotal) => setControls({ targetTotal })} />
          )}
        </Field>
      )}
      <SimilarityControl c={c} calibrated={calibrated} />
      <Field
        label="Reconstruction"
        hint={
          c.reconstruct === 'none'
            ? 'each cluster keeps its most central expert'
            : c.reconstruct === 'per-layer'
              ? 'average every cluster when the layer has ≤ κ clusters (official code)'
              : 'average clusters with fewer than κ members (paper)'
        }
      >
        <div className="inline">
          <select value={c.reconstruct} data-testid="reconstruct" onChange={(e) => setControls({ reconstruct: e.currentTarget.value as ReconstructRule })}>
            <option value="none">none (select a representative)</option>
            <option value="per-layer">per-layer κ</option>
            <option value="per-cluster-size">per-cluster-size κ</option>
          </select>
          {c.reconstruct !== 'none' && (
            <label className="kappa">
              κ
              <input
                type="number"
                min={1}
                max={n}
                value={c.kappa}
                data-testid="kappa"
                onChange={(e) => {
                  const v = Math.round(Number(e.currentTarget.value));
                  if (Number.isFinite(v) && v >= 1) setControls({ kappa: v });
                }}
              />
            </label>
          )}
        </div>
      </Field>
    </div>
  );
}

function Numbers({ nums, plan }: { nums: PlanNumbers; plan: ExpertPlan }) {
  const sparsity = nums.expertsBefore ? (100 * (nums.expertsBefore - nums.expertsAfter)) / nums.expertsBefore : 0;
  return (
    <div className="plan-numbers" data-testid="plan-numbers">
      <div className="stat">
        <div className="stat-value" data-testid="plan-experts" data-after={nums.expertsAfter} data-before={nums.expertsBefore}>
          {nums.expertsAfter}
          <span className="stat-of"> / {nums.expertsBefore}</span>
        </div>
        <div className="stat-label">experts kept · {sparsity.toFixed(1)} % sparsity</div>
      </div>
      <div className="stat">
        <div className="stat-value" data-testid="plan-params" data-before={nums.paramsBefore} data-after={nums.paramsAfter}>
          {formatCount(nums.paramsBefore)} → {formatCount(nums.paramsAfter)}
        </div>
        <div className="stat-label">parameters · {pct(nums.paramsAfter, nums.paramsBefore)}</div>
      </div>
      <div className="stat">
        <div className="stat-value" data-testid="plan-bytes" data-before={nums.bytesBefore} data-after={nums.bytesAfter}>
          {formatBytes(nums.bytesBefore)} → {formatBytes(nums.bytesAfter)}
        </div>
        <div className="stat-label">tensor bytes · {pct(nums.bytesAfter, nums.bytesBefore)}</div>
      </div>
      <div className="stat">
        <div className="stat-value" data-testid="plan-k">
          {nums.uniformK ?? `${Math.min(...plan.layers.map((l) => l.kept.length))}–${Math.max(...plan.layers.map((l) => l.kept.length))}`}
        </div>
        <div className="stat-label">experts per layer{plan.search ? ` · τ = ${plan.search.tau.toPrecision(3)}` : ''}</div>
      </div>
    </div>
  );
}

function LayerTable({ plan, selected }: { plan: ExpertPlan; selected: number }) {
  return (
    <div className="layer-table-wrap">
      <table className="files layer-table" data-testid="layer-table">
        <thead>
          <tr>
            <th>Layer</th>
            <th title="original expert indices; an expert's new index is its position in this list">Kept: original indices (new index = position)</th>
            <th>Removed</th>
            <th>Averaged</th>
          </tr>
        </thead>
        <tbody>
          {plan.layers.map((l, i) => {
            const provisional = new Set(l.clusters.filter((c) => !c.resolved).map((c) => c.representative));
            return (
            <tr key={l.layer} data-layer={l.layer} className={i === selected ? 'selected' : ''} onClick={() => selectLayer(i)}>
              <td className="mono">{l.layer}</td>
              <td className="mono" data-testid="layer-kept" data-provisional={[...provisional].sort((a, b) => a - b).join(',')}>
                {l.kept.map((e, slot) => (
                  <span
                    key={e}
                    className={provisional.has(e) ? 'provisional' : undefined}
                    title={provisional.has(e) ? `provisional: stands for its cluster until the weights choose (original expert ${e}, new index ${slot})` : `original expert ${e} becomes expert ${slot}`}
                  >
                    {slot ? ' ' : ''}
                    {e}
                  </span>
                ))}
              </td>
              <td className="mono muted">{l.removed.join(' ') || '—'}</td>
              <td className="mono">{l.merges.length ? l.merges.map((m) => `[${m.members.join('+')}]`).join(' ') : '—'}</td>
            </tr>
            );
          })}
        </tbody>
      </table>
      {plan.unresolved > 0 && (
        <p className="small muted" data-testid="layer-table-provisional">
          * Provisional: {plan.unresolved} cluster{plan.unresolved === 1 ? '' : 's'} of three or more experts keep{plan.unresolved === 1 ? 's' : ''} the member
          nearest their centre in the weights, chosen when you measure perplexity, run stage 2 or export. The table then shows it, and these settings keep it
          from then on.
        </p>
      )}
    </div>
  );
}

function LayerPicker({ plan, index }: { plan: ExpertPlan; index: number }) {
  const last = plan.layers.length - 1;
  return (
    <div className="layer-picker">
      <button className="btn btn-small" disabled={index <= 0} onClick={() => selectLayer(index - 1)} aria-label="previous layer">
        ‹
      </button>
      <select value={index} data-testid="layer-select" onChange={(e) => selectLayer(Number(e.currentTarget.value))}>
        {plan.layers.map((l, i) => (
          <option key={l.layer} value={i}>
            MoE layer {l.layer} · keeps {l.kept.length} of {l.n}
          </option>
        ))}
      </select>
      <button className="btn btn-small" disabled={index >= last} onClick={() => selectLayer(index + 1)} aria-label="next layer">
        ›
      </button>
    </div>
  );
}

function ClusterList({ lp }: { lp: LayerPlan }) {
  const multi = lp.clusters.filter((c) => c.members.length > 1);
  if (multi.length === 0) return <p className="small muted">No experts share a slot in this layer.</p>;
  return (
    <ul className="cluster-list small" data-testid="cluster-list">
      {multi.map((c) => (
        <li key={c.members[0]}>
          <span className="mono">{`{${c.members.join(', ')}}`}</span> →{' '}
          {c.action === 'merge' ? (
            <span className="tag tag-merged">averaged into slot {c.slot}</span>
          ) : (
            <span className="tag tag-kept">
              keeps {c.representative}
              {c.resolved ? '' : ' (provisional: the most central member is chosen from the weights at export)'}
            </span>
          )}
        </li>
      ))}
    </ul>
  );
}

export function PlanPanel() {
  const cur = useApp((s) => s.current);
  const st = usePlan();
  const evalBlocker = useEvalBlocker();
  const fileSet = cur?.summary ? cur.fileSet : null;
  const calibration = useEval((s) => s.calibration);
  const calibStats = fileSet && calibration?.source === fileSet ? calibration.stats : null;
  const calibName = calibStats ? calibration!.textName : '';

  useEffect(() => {
    if (fileSet) void preparePlan(fileSet);
  }, [fileSet]);
  // Re-attached when the model's plan cache is (re)built: preparePlan starts from an empty state.
  useEffect(() => {
    attachCalibration(calibStats, calibName);
  }, [calibStats, calibName, st.model]);

  if (!cur?.summary || !fileSet) return null;
  // Until the effect above has switched the cache to this model, show nothing of the previous one.
  const fresh = st.source === fileSet;
  const model = fresh ? st.model : null;
  const { controls, plan, numbers } = fresh ? st : { controls: null, plan: null, numbers: null };
  const lp = plan && model ? plan.layers[Math.min(st.layerIndex, plan.layers.length - 1)] : undefined;
  return (
    <section className="card plan" data-testid="plan-panel" data-ready={model && plan ? 'true' : 'false'}>
      <div className="card-head">
        <div>
          <h2>Expert pruning plan</h2>
          <div className="muted small">
            STUN stage 1: cluster experts whose router rows are close (or, after a calibration run, that the same tokens choose together), keep one expert per cluster.
          </div>
        </div>
        {model && (
          <span className="chip" data-testid="plan-device" title="Router distances were computed once for this model and are cached">
            distances on {model.device.startsWith('GPU') ? 'GPU' : 'CPU'} · {model.distancesMs.toFixed(0)} ms
          </span>
        )}
      </div>

      {st.preparing && (
        <div data-testid="plan-preparing">
          <div className="ingest-line small">
            <span>{st.preparing.phase}…</span>
            <span className="mono">
              {st.preparing.done} / {st.preparing.total} {st.preparing.unit}
            </span>
          </div>
          <Bar done={st.preparing.done} total={st.preparing.total} />
        </div>
      )}
      {fresh && st.prepareError && (
        <div className="notice notice-bad" data-testid="plan-prepare-error">
          {st.prepareError}
        </div>
      )}

      {model && controls && (
        <div className="plan-grid">
          <Controls c={controls} cat={model.cat} calibrated={st.calibration !== null} />
          <div className="plan-results">
            {st.planError && (
              <div className="notice notice-bad" data-testid="plan-error">
                {st.planError}
              </div>
            )}
            {plan && numbers && (
              <>
                <Numbers nums={numbers} plan={plan} />
                <PerplexityBox plan={plan} available={evalBlocker} />
                {plan.search && !plan.search.exact && (
                  <div className="notice notice-warn" data-testid="plan-search-note">
                    {plan.search.message}
                  </div>
                )}
                {numbers.uniformK === null && (
                  <div className="notice notice-warn" data-testid="plan-constraint">
                    This plan keeps {expertsRange(plan)} experts in different layers. Hugging Face configs hold one expert count, so stock transformers and
                    vLLM load only a uniform plan; export it as a per-layer variant (needs custom code) or switch to uniform mode.
                  </div>
                )}
                {st.exportProblems.map((p) => (
                  <div className="notice notice-warn" data-testid="plan-constraint" key={p}>
                    {p}
                  </div>
                ))}
                <KeptChart plan={plan} onPick={selectLayer} />
                <LayerChart plan={plan} />
              </>
            )}
          </div>
        </div>
      )}

      {plan && lp && (
        <>
          <div className="plan-layer-head">
            <h3 data-testid="heatmap-title">{MEASURE_TITLE[controls?.similarity ?? 'router']}, layer by layer</h3>
            {plan.layers.length > 1 && <LayerPicker plan={plan} index={plan.layers.indexOf(lp)} />}
          </div>
          <DistanceHeatmap lp={lp} measure={scoreLegend(controls?.expertScore ?? null) ?? MEASURE_LEGEND[controls?.similarity ?? 'router']} />
          <ClusterList lp={lp} />
          <h3>Kept and removed experts</h3>
          <LayerTable plan={plan} selected={plan.layers.indexOf(lp)} />
        </>
      )}
    </section>
  );
}
