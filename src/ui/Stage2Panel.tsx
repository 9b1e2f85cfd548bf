import { useEffect } from 'react';
import { formatCount } from '../core/format.ts';
import { TOKENIZER_FILE } from '../eval/tokenizer.ts';
import { METHODS, SCOPES, UNROUTED_POLICIES, type PruneScope, type UnroutedPolicy, type UnstructuredMethod } from '../pipeline/job.ts';
import { Bar, Field, IntControl, Segmented } from './controls.tsx';
import { hasTokenizer, SAMPLE_FILES, useEval } from './eval-state.ts';
import { useJob } from './job-state.ts';
import { setControls, usePlan } from './prune-state.ts';
import {
  cancelStage2, currentDone, discardStage2, measureStage2Perplexity, runStage2, secondsLeft, setStage2Controls, stage2Inputs, startStage2Over, syncStage2Model, useStage2,
  type NmChoice, type Split, type Stage2Controls, type Stage2Done, type Stage2Run,
} from './stage2-state.ts';
import { Stage2Chart } from './Stage2Chart.tsx';
import { useApp } from './state.ts';
import { TaskAccuracyLine } from './TaskAccuracyLine.tsx';

const METHOD_LABEL: Record<UnstructuredMethod, string> = { wanda: 'Wanda', owl: 'OWL', magnitude: 'magnitude' };
const METHOD_HINT: Record<UnstructuredMethod, string> = {
  wanda: 'per output row, the weights with the lowest |W|·‖x‖ on the calibration text',
  owl: 'Wanda with a ratio per layer: layers with more outlier scores keep more (OWL)',
  magnitude: 'per matrix, the weights with the lowest |W|; needs no calibration text',
};
const SCOPE_LABEL: Record<PruneScope, string> = { experts: 'routed experts', 'experts+shared': 'experts + shared', all: 'all linear maps' };
const UNROUTED_LABEL: Record<UnroutedPolicy, string> = { 'all-tokens': 'all tokens', magnitude: 'magnitude', dense: 'leave dense' };
const UNROUTED_HINT: Record<UnroutedPolicy, string> = {
  'all-tokens': 'experts no calibration token reached are scored on every token entering their layer',
  magnitude: 'experts no calibration token reached are pruned by |W| alone',
  dense: 'experts no calibration token reached are not pruned',
};
const NM_OPTIONS: ReadonlyArray<readonly [NmChoice, string]> = [
  ['none', 'none'],
  ['2:4', '2:4'],
  ['4:8', '4:8'],
];

const p1 = (v: number): string => `${(100 * v).toFixed(1)} %`;
const p2 = (v: number): string => `${(100 * v).toFixed(2)} %`;

function seconds(s: number): string {
  return s < 90 ? `${Math.max(1, Math.round(s))} s` : `${Math.round(s / 60)} min`;
}

/** A decimal box (OWL's M and λ): values outside [min, max) are ignored. */
function DecimalBox({ value, min, max, step, testid, onChange }: { value: number; min: number; max?: number; step: number; testid: string; onChange: (v: number) => void }) {
  return (
    <input
      type="number"
      min={min}
      max={max}
      step={step}
      value={value}
      data-testid={testid}
      onChange={(e) => {
        const v = Number(e.currentTarget.value);
        if (e.currentTarget.value !== '' && Number.isFinite(v) && v >= min && (max === undefined || v < max)) onChange(v);
      }}
    />
  );
}

/** Where S goes over the scope: removed with whole experts, zeroed by stage 2, kept. */
function SplitBar({ split }: { split: Split }) {
  const unstructured = split.su === null ? 0 : Math.max(0, split.total - split.se);
  return (
    <div className="split" data-testid="stage2-split" data-se={split.se} data-su={split.su ?? ''} data-total={split.total}>
      <div className="split-bar" aria-hidden>
        <div className="split-experts" style={{ width: `${100 * split.se}%` }} />
        <div className="split-unstructured" style={{ width: `${100 * unstructured}%` }} />
      </div>
      <div className="small">
        <span className="swatch split-experts" /> s<sub>e</sub> = <strong data-testid="stage2-se">{p1(split.se)}</strong> with whole experts ·{' '}
        <span className="swatch split-unstructured" /> s<sub>u</sub> = <strong data-testid="stage2-su">{split.su === null ? '—' : p1(split.su)}</strong> of the rest
        unstructured
      </div>
      <div className="small muted">
        s<sub>u</sub> = (S − s<sub>e</sub>) / (1 − s<sub>e</sub>) over {formatCount(split.params)} parameters of the scope, {formatCount(split.removed)} of them in removed experts.
      </div>
    </div>
  );
}

function Controls({ c, hasTok }: { c: Stage2Controls; hasTok: boolean }) {
  const model = usePlan((s) => s.model);
  const pc = usePlan((s) => s.controls);
  if (!model || !pc) return null;
  const n = model.cat.summary.expertsPerLayer;
  const topK = model.cat.summary.topK;
  return (
    <div className="plan-controls" data-testid="stage2-controls">
      <Field label="Method" hint={METHOD_HINT[c.method]}>
        <Segmented<UnstructuredMethod>
          testid="stage2-method"
          value={c.method}
          options={METHODS.map((m) => [m, METHOD_LABEL[m]] as const)}
          onChange={(method) => setStage2Controls({ method })}
          offReason={(m) =>
            m !== 'magnitude' && !hasTok ? `needs the checkpoint's ${TOKENIZER_FILE} (calibration text)` : m === 'owl' && c.nm !== 'none' ? 'OWL sets a ratio per layer; choose N:M none first' : undefined
          }
        />
      </Field>
      <Field label="Total sparsity S" hint={c.nm === 'none' ? 'share of the scope’s parameters removed in all: whole experts plus unstructured zeros' : `the ${c.nm} pattern fixes the unstructured ratio`}>
        <IntControl testid="stage2-sparsity" value={c.sparsityPct} min={0} max={99} suffix="%" disabled={c.nm !== 'none'} onChange={(sparsityPct) => setStage2Controls({ sparsityPct })} />
      </Field>
      <Field
        label="Expert share: experts kept per layer K"
        hint={
          pc.mode === 'uniform'
            ? `the expert plan's K: ${n} of ${n} prunes unstructured only; fewer experts take more of S as whole experts (expert-only when s_e reaches S)`
            : 'the plan above uses a global target; change it there'
        }
      >
        {pc.mode === 'uniform' ? (
          <IntControl testid="stage2-keep" value={pc.keep} min={Math.min(topK, n)} max={n} suffix={`/ ${n}`} onChange={(keep) => setControls({ keep })} />
        ) : (
          <div className="small" data-testid="stage2-keep-global">
            global target ({pc.globalBy === 'sparsity' ? `${pc.sparsityPct} % of experts removed` : `${pc.targetTotal} experts kept`})
          </div>
        )}
      </Field>
      <Field label="N:M pattern" hint="n of every m consecutive weights of a row are zeroed (hardware-friendly sparsity)">
        <Segmented<NmChoice>
          testid="stage2-nm"
          value={c.nm}
          options={NM_OPTIONS}
          onChange={(nm) => setStage2Controls({ nm })}
          offReason={(v) => (v !== 'none' && c.method === 'owl' ? 'OWL sets a ratio per layer and cannot follow a fixed pattern' : undefined)}
        />
      </Field>
      {c.method === 'owl' && (
        <Field label="OWL" hint="M: a score is an outlier above M × its layer’s mean; λ: the most a layer’s ratio moves from s_u">
          <div className="inline">
            <label className="kappa">
              M
              <DecimalBox testid="stage2-owl-m" value={c.owlM} min={0.1} step={0.5} onChange={(owlM) => setStage2Controls({ owlM })} />
            </label>
            <label className="kappa">
              λ
              <DecimalBox testid="stage2-owl-lambda" value={c.owlLambda} min={0} max={1} step={0.01} onChange={(owlLambda) => setStage2Controls({ owlLambda })} />
            </label>
          </div>
        </Field>
      )}
      <Field label="Scope" hint="embeddings, norms and lm_head are never pruned">
        <Segmented<PruneScope> testid="stage2-scope" value={c.scope} options={SCOPES.map((s) => [s, SCOPE_LABEL[s]] as const)} onChange={(scope) => setStage2Controls({ scope })} />
      </Field>
      <Field label="Experts without calibration tokens" hint={c.method === 'magnitude' ? 'magnitude needs no calibration tokens' : UNROUTED_HINT[c.unrouted]}>
        <Segmented<UnroutedPolicy>
          testid="stage2-unrouted"
          value={c.unrouted}
          options={UNROUTED_POLICIES.map((u) => [u, UNROUTED_LABEL[u]] as const)}
          onChange={(unrouted) => setStage2Controls({ unrouted })}
        />
      </Field>
    </div>
  );
}

function CalibrationLine({ method }: { method: UnstructuredMethod }) {
  const { calibText, calib } = useEval();
  const similarity = usePlan((s) => s.controls?.similarity ?? 'router');
  if (method === 'magnitude' && similarity === 'router')
    return (
      <div className="small muted" data-testid="stage2-calib" data-needed="false">
        Magnitude needs no calibration text.
      </div>
    );
  const name = calibText.source === 'file' && calibText.file ? calibText.file.name : `built-in ${SAMPLE_FILES.calibration}`;
  return (
    <div className="small muted" data-testid="stage2-calib" data-needed="true">
      Calibration: <strong>{name}</strong>, {calib.count} × {calib.length} tokens ({calib.sampling === 'first' ? 'first windows' : `seeded random, seed ${calib.seed}`}); choose the text and N × L in
      Calibration and perplexity below.
    </div>
  );
}

function Progress({ run }: { run: Stage2Run }) {
  const p = run.progress;
  const left = secondsLeft(run);
  const cancelling = run.controller.signal.aborted;
  const step = !p
    ? 'starting…'
    : p.unit === 'layers'
      ? `${p.phase} · layer ${Math.min(p.done, p.total)} of ${p.total}${p.detail ? ` (${p.detail})` : ''}`
      : `${p.phase}${p.detail ? ` (${p.detail})` : ''} · ${p.done} / ${p.total} ${p.unit}`;
  return (
    <div className="run-progress" data-testid="stage2-progress" data-kind={run.kind}>
      <div className="ingest-line small">
        <span>
          <strong>{run.kind === 'prune' ? 'Stage 2' : 'Perplexity'}</strong> · <span data-testid="stage2-progress-step">{cancelling ? 'cancelling after this layer…' : step}</span>
        </span>
        <span className="mono" data-testid="stage2-progress-eta">
          {left !== null ? `about ${seconds(left)} left` : ''}
        </span>
      </div>
      <div className="run-bar">
        <Bar done={p?.done ?? 0} total={p?.total ?? 0} testid="stage2-progress-bar" />
        <button className="btn btn-small" data-testid="stage2-progress-cancel" disabled={cancelling} onClick={cancelStage2}>
          Cancel
        </button>
      </div>
    </div>
  );
}

/** An unfinished run in the work folder: what it was, how far it got, and how to resume it or drop it. */
function SavedRun({ busy }: { busy: boolean }) {
  const saved = useStage2((s) => s.saved);
  const conflict = useStage2((s) => s.conflict);
  if (!saved || saved.complete || !saved.about) return null;
  const a = saved.about;
  return (
    <div className="notice notice-warn" data-testid="stage2-saved" data-layers={saved.layers} data-total={a.layers} data-conflict={conflict ? 'true' : 'false'}>
      <div>
        An interrupted stage-2 run is saved in this browser: <strong>{a.model}</strong>, {a.settings}; {saved.layers} of {a.layers} layers done.
      </div>
      <div>
        Run stage 2 with the same model, settings and calibration text to{' '}
        <strong data-testid="stage2-resume-from">
          resume stage 2 from layer {saved.layers + 1} of {a.layers}
        </strong>
        , or start over with the settings on screen (the saved layers are discarded).
      </div>
      <button className="btn btn-small" data-testid="stage2-start-over" disabled={busy} onClick={() => void startStage2Over()}>
        Start over
      </button>
    </div>
  );
}

function Numbers({ done }: { done: Stage2Done }) {
  const sp = done.result.sparsity;
  return (
    <div className="plan-numbers" data-testid="stage2-numbers">
      <div className="stat">
        <div className="stat-value" data-testid="stage2-achieved" data-value={sp.achieved} data-target={sp.target ?? ''}>
          {p2(sp.achieved)}
        </div>
        <div className="stat-label">achieved over the scope · target {sp.target !== null ? p2(sp.target) : `${sp.nm} pattern`}</div>
      </div>
      <div className="stat">
        <div className="stat-value">{p1(sp.expert)}</div>
        <div className="stat-label">s_e: removed with whole experts</div>
      </div>
      <div className="stat">
        <div className="stat-value">{p1(sp.unstructured)}</div>
        <div className="stat-label">s_u: {done.result.owl ? 'mean OWL ratio' : 'ratio'} applied to the rest</div>
      </div>
      <div className="stat">
        <div className="stat-value" data-testid="stage2-zeros" data-value={sp.counts.zeros} data-params={sp.counts.params} data-removed={sp.counts.removed}>
          {sp.counts.zeros.toLocaleString('en-US')}
        </div>
        <div className="stat-label">
          weights set to zero · {sp.method}
          {sp.nm ? ` ${sp.nm}` : ''} over {SCOPE_LABEL[sp.scope]} · {done.seconds.toFixed(1)} s
        </div>
      </div>
    </div>
  );
}

function Unrouted({ done }: { done: Stage2Done }) {
  const u = done.result.unrouted;
  if (done.result.sparsity.method === 'magnitude') return null;
  if (u.experts.length === 0)
    return (
      <div className="notice notice-ok small" data-testid="stage2-all-routed">
        Every kept expert received calibration tokens.
      </div>
    );
  const shown = u.experts.slice(0, 40);
  return (
    <div className="notice notice-warn" data-testid="stage2-unrouted-list" data-count={u.experts.length}>
      <strong>
        {u.experts.length} expert{u.experts.length === 1 ? '' : 's'} received no calibration token
      </strong>{' '}
      ({UNROUTED_HINT[u.policy]}):
      <ul className="unrouted-list mono">
        {shown.map((n) => (
          <li key={n}>{n}</li>
        ))}
        {u.experts.length > shown.length && <li>… and {u.experts.length - shown.length} more</li>}
      </ul>
    </div>
  );
}

function fmtPpl(p: number): string {
  return p >= 1000 ? p.toFixed(0) : p >= 100 ? p.toFixed(1) : p.toFixed(3);
}

function Perplexity({ done, fresh, busy }: { done: Stage2Done; fresh: boolean; busy: boolean }) {
  const { evaluation, evalError } = useStage2();
  const ev = evaluation && evaluation.source === done.source && evaluation.key === done.key ? evaluation : null;
  const e = ev?.evaluation;
  const change = e ? (100 * (e.after.perplexity - e.before.perplexity)) / e.before.perplexity : null;
  const held = useEval((s) => s.heldout);
  return (
    <div className="ppl-box" data-testid="stage2-ppl">
      <div className="ppl-row">
        <div className="ppl-numbers">
          <div>
            <div className="stat-value" data-testid="stage2-ppl-before" data-value={e ? String(e.before.perplexity) : ''} data-tokens={e?.before.tokens ?? ''}>
              {e ? fmtPpl(e.before.perplexity) : '—'}
            </div>
            <div className="stat-label">original perplexity</div>
          </div>
          <div className="ppl-arrow" aria-hidden>
            →
          </div>
          <div>
            <div className="stat-value" data-testid="stage2-ppl-after" data-value={e ? String(e.after.perplexity) : ''}>
              {e ? fmtPpl(e.after.perplexity) : '—'}
            </div>
            <div className="stat-label">
              experts pruned + masks
              {change !== null && (
                <span className={`ppl-change ${change > 0 ? 'worse' : 'better'}`} data-testid="stage2-ppl-change" data-value={change}>
                  {' '}
                  {change >= 0 ? '+' : '−'}
                  {Math.abs(change).toFixed(1)} %
                </span>
              )}
            </div>
          </div>
        </div>
        <div className="ppl-actions">
          <button className="btn btn-primary btn-small" data-testid="stage2-ppl-measure" disabled={busy || !fresh} onClick={() => void measureStage2Perplexity()}>
            {e ? 'Re-measure perplexity' : 'Measure perplexity'}
          </button>
        </div>
      </div>
      <div className="small muted">
        {ev
          ? `${ev.textName}: ${e!.after.windows} windows of ${e!.windows.length} tokens (${e!.after.tokens.toLocaleString('en-US')} predictions), masks applied on the fly; nothing written. The export's report records these numbers.`
          : `Held-out text and windows (up to ${held.maxWindows} of ${held.length} tokens) as set in Calibration and perplexity below; the masks run on the fly, nothing is written.`}
      </div>
      <TaskAccuracyLine plan={done.plan} stage2={done} testid="stage2-task-acc" />
      {evalError && (
        <div className="notice notice-bad" data-testid="stage2-ppl-error">
          {evalError}
        </div>
      )}
    </div>
  );
}

/** STUN stage 2 on top of the expert plan: unstructured masks per layer, their sparsity, and perplexity with them applied. */
export function Stage2Panel() {
  const cur = useApp((s) => s.current);
  const gpu = useApp((s) => s.gpu.status);
  const gpuLost = useApp((s) => s.gpu.status === 'unavailable' && s.gpu.reason === 'lost');
  const fileSet = cur?.summary ? cur.fileSet : null;
  const st = useStage2();
  // Subscriptions: the inputs below read these stores.
  const ps = usePlan();
  const evalRunning = useEval((s) => s.running !== null);
  useEval((s) => s.calib);
  useEval((s) => s.calibText);
  const job = useJob((s) => (s.source === fileSet ? s.job : null));

  useEffect(() => {
    syncStage2Model(fileSet);
  }, [fileSet]);

  if (!fileSet || !cur?.summary || cur.summary.moeLayers.length === 0) return null;
  if (ps.source !== fileSet || !ps.model || !ps.controls || !job) return null;
  const hasTok = hasTokenizer(cur.files);
  if (gpu !== 'ready')
    return (
      <section className="card plan stage2 eval-off" data-testid="stage2-panel" data-available="false">
        <h2>Unstructured pruning (STUN stage 2)</h2>
        <div className="small muted" data-testid="stage2-unavailable">
          {gpu === 'pending'
            ? 'Waiting for the GPU…'
            : gpuLost
              ? 'Stage 2 computes its masks on the GPU, and the GPU device was lost: reconnect it (top of the page) to run or resume stage 2.'
              : 'Stage 2 computes its masks on the GPU, and WebGPU is not available in this browser.'}
        </div>
        {st.error && (
          <div className="notice notice-bad" data-testid="stage2-error">
            {st.error}
          </div>
        )}
        <SavedRun busy />
      </section>
    );
  const inputs = stage2Inputs();
  const done = st.source === fileSet ? currentDone(fileSet) : null;
  const fresh = done !== null && inputs.ok && inputs.key === done.key;
  const busy = st.running !== null || evalRunning;
  const running = st.running;
  return (
    <section
      className="card plan stage2"
      data-testid="stage2-panel"
      data-available="true"
      data-running={running?.kind ?? ''}
      data-state={done ? (fresh ? 'fresh' : 'stale') : 'none'}
    >
      <div className="card-head">
        <div>
          <h2>Unstructured pruning (STUN stage 2)</h2>
          <div className="muted small">
            After the expert plan, zero individual weights of what remains (Wanda, OWL, magnitude, N:M) so that the scope reaches the total sparsity S.
          </div>
        </div>
      </div>
      <div className="plan-grid">
        <Controls c={st.controls} hasTok={hasTok} />
        <div className="plan-results">
          {inputs.split && <SplitBar split={inputs.split} />}
          <CalibrationLine method={st.controls.method} />
          {!inputs.ok && (
            <div className="notice notice-bad" data-testid="stage2-refusal">
              {inputs.error}
            </div>
          )}
          <div className="inline stage2-actions">
            <button className="btn btn-primary" data-testid="stage2-run" disabled={!inputs.ok || busy} onClick={() => void runStage2()}>
              {done ? 'Run stage 2 again' : 'Run stage 2'}
            </button>
            {done && (
              <button className="btn btn-small" data-testid="stage2-discard" disabled={busy} onClick={discardStage2}>
                Discard result
              </button>
            )}
            {evalRunning && <span className="small muted">waiting for the calibration panel’s run to end</span>}
          </div>
          {running && <Progress run={running} />}
          {running?.kind !== 'prune' && <SavedRun busy={busy} />}
          {!running && st.cancelled && (
            <div className="notice notice-warn" data-testid="stage2-cancelled">
              Stage 2 cancelled: no masks were kept{done ? '; the result below is from the run before' : ''}.
            </div>
          )}
          {st.error && (
            <div className="notice notice-bad" data-testid="stage2-error">
              {st.error}
            </div>
          )}
          {done && !fresh && (
            <div className="notice notice-warn" data-testid="stage2-stale">
              The settings, the expert plan or the calibration changed since this result was computed: run stage 2 again (the export will not write stale masks).
            </div>
          )}
          {done && (
            <div className={`stage2-result${fresh ? '' : ' stale-block'}`} data-testid="stage2-result" data-fresh={fresh ? 'true' : 'false'} data-resumed={done.resumed}>
              {done.resumed > 0 && (
                <div className="small muted" data-testid="stage2-resumed">
                  Resumed: {done.resumed} finished layer{done.resumed === 1 ? '' : 's'} restored from the saved run, the rest computed now.
                </div>
              )}
              <Numbers done={done} />
              <Stage2Chart result={done.result} />
              <Unrouted done={done} />
              <Perplexity done={done} fresh={fresh} busy={busy} />
            </div>
          )}
        </div>
      </div>
    </section>
  );
}
