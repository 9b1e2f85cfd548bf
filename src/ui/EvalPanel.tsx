import { useEffect, type ChangeEvent } from 'react';
import type { Sampling } from '../eval/windows.ts';
import { formatBytes } from '../core/format.ts';
import { CoactivationMap } from './CoactivationMap.tsx';
import {
  chooseSample,
  chooseUserFile,
  measurePerplexity,
  measureTask,
  pickText,
  runCalibration,
  SAMPLE_FILES,
  selectEvalLayer,
  setCalibSettings,
  setHeldoutSettings,
  setTaskLimit,
  taskKey,
  syncEvalModel,
  useEval,
  useEvalBlocker,
  type CalibrationResult,
  type TaskMeasure,
  type TextChoice,
  type TextRole,
} from './eval-state.ts';
import { Field, Segmented } from './controls.tsx';
import { usePlan } from './prune-state.ts';
import { RoutedChart } from './RoutedChart.tsx';
import { RunProgress } from './RunProgress.tsx';
import { freshDone } from './stage2-state.ts';
import { useApp } from './state.ts';

/** A positive integer box; values outside [min, max] are clamped, anything else ignored. */
function IntBox({ value, min, max, testid, onChange }: { value: number; min: number; max: number; testid: string; onChange: (v: number) => void }) {
  return (
    <input
      type="number"
      min={min}
      max={max}
      step={1}
      value={value}
      data-testid={testid}
      onChange={(e) => {
        const v = Math.round(Number(e.currentTarget.value));
        if (Number.isFinite(v) && e.currentTarget.value !== '') onChange(Math.min(max, Math.max(min, v)));
      }}
    />
  );
}

/** Built-in sample or the user's own file (plain text, or JSONL with a "text" field per line). */
function TextSource({ role, choice, disabled }: { role: TextRole; choice: TextChoice; disabled: boolean }) {
  const prefix = role === 'calibration' ? 'calib' : role === 'task' ? 'task' : 'heldout';
  const onFile = (e: ChangeEvent<HTMLInputElement>) => {
    const f = e.currentTarget.files?.[0];
    e.currentTarget.value = '';
    if (f) void pickText(role, f);
  };
  return (
    <div className="field-body">
      <div className="inline">
        <Segmented
          testid={`${prefix}-source`}
          value={choice.source}
          options={[
            ['sample', 'Built-in sample'],
            ['file', 'My file'],
          ]}
          onChange={(v) => (v === 'sample' ? chooseSample(role) : chooseUserFile(role))}
        />
        <label className={`btn btn-small${disabled ? ' disabled' : ''}`}>
          Choose file…
          <input type="file" accept={role === 'task' ? '.jsonl,.json' : '.txt,.jsonl,.json,.md,text/plain'} data-testid={`${prefix}-file`} disabled={disabled} onChange={onFile} />
        </label>
      </div>
      <div className="small muted" data-testid={`${prefix}-text-name`}>
        {choice.source === 'file' && choice.file
          ? `${choice.file.name} · ${choice.file.content.length.toLocaleString('en-US')} characters`
          : `${SAMPLE_FILES[role]}: ${role === 'task' ? 'the demo task, next sentences of Jane Austen passages (4 choices)' : 'Jane Austen'}, public domain, served by this page${choice.file ? ` (your file ${choice.file.name} is loaded too)` : ''}`}
      </div>
    </div>
  );
}

function CalibrationForm({ busy }: { busy: boolean }) {
  const { calibText, calib } = useEval();
  return (
    <div className="eval-form" data-testid="calib-form">
      <h3>Calibration</h3>
      <Field label="Text">
        <TextSource role="calibration" choice={calibText} disabled={busy} />
      </Field>
      <div className="eval-row">
        <Field label="Samples N">
          <IntBox testid="calib-count" value={calib.count} min={1} max={4096} onChange={(count) => setCalibSettings({ count })} />
        </Field>
        <Field label="Tokens L">
          <IntBox testid="calib-length" value={calib.length} min={2} max={32768} onChange={(length) => setCalibSettings({ length })} />
        </Field>
      </div>
      <Field
        label="Sampling"
        hint={calib.sampling === 'first' ? 'the first N non-overlapping windows of L tokens (deterministic)' : 'N windows at random starts, drawn with this seed (as in Wanda)'}
      >
        <div className="inline">
          <Segmented<Sampling>
            testid="calib-sampling"
            value={calib.sampling}
            options={[
              ['first', 'First windows'],
              ['random', 'Seeded random'],
            ]}
            onChange={(sampling) => setCalibSettings({ sampling })}
          />
          {calib.sampling === 'random' && (
            <label className="kappa">
              seed
              <IntBox testid="calib-seed" value={calib.seed} min={0} max={2 ** 31 - 1} onChange={(seed) => setCalibSettings({ seed })} />
            </label>
          )}
        </div>
      </Field>
      <div>
        <button className="btn btn-primary" data-testid="calib-run" disabled={busy} onClick={() => void runCalibration()}>
          Run calibration
        </button>
      </div>
    </div>
  );
}

function PerplexityForm({ busy, hasPlan }: { busy: boolean; hasPlan: boolean }) {
  const { heldoutText, heldout } = useEval();
  return (
    <div className="eval-form" data-testid="ppl-form">
      <h3>Perplexity</h3>
      <Field label="Held-out text">
        <TextSource role="heldout" choice={heldoutText} disabled={busy} />
      </Field>
      <div className="eval-row">
        <Field label="Tokens L">
          <IntBox testid="heldout-length" value={heldout.length} min={2} max={32768} onChange={(length) => setHeldoutSettings({ length })} />
        </Field>
        <Field label="Max windows">
          <IntBox testid="heldout-windows" value={heldout.maxWindows} min={1} max={4096} onChange={(maxWindows) => setHeldoutSettings({ maxWindows })} />
        </Field>
      </div>
      <div className="small muted">The first windows of L tokens of the text; every window is scored on its own (L − 1 predictions each).</div>
      <div className="inline">
        <button className="btn" data-testid="ppl-measure-before" disabled={busy} onClick={() => void measurePerplexity('before')}>
          Measure original
        </button>
        <button className="btn" data-testid="ppl-measure-after" disabled={busy || !hasPlan} onClick={() => void measurePerplexity('after')}>
          Measure with the expert plan
        </button>
      </div>
      <div className="small muted">Results appear in the expert pruning plan panel, before → after.</div>
    </div>
  );
}

const pct = (v: number, e: number | null) => `${(100 * v).toFixed(1)} %${e === null ? '' : ` ± ${(100 * e).toFixed(1)}`}`;

/** One measured accuracy: acc and acc_norm (the lm-eval metrics) with their standard errors. */
function TaskStat({ m, label, testid, stale }: { m: TaskMeasure | null; label: string; testid: string; stale: boolean }) {
  return (
    <div className="stat">
      <div
        className={`stat-value${stale ? ' stale' : ''}`}
        data-testid={testid}
        data-acc={m ? String(m.result.acc) : ''}
        data-acc-norm={m ? String(m.result.acc_norm) : ''}
        data-n={m?.result.n ?? ''}
        data-stale={stale ? 'true' : 'false'}
      >
        {m ? pct(m.result.acc, m.result.acc_stderr) : '—'}
      </div>
      <div className="stat-label">
        {label}
        {m ? ` · acc_norm ${pct(m.result.acc_norm, m.result.acc_norm_stderr)} · ${m.result.n} items, ${m.seconds.toFixed(1)} s` : ''}
      </div>
    </div>
  );
}

/** Zero-shot multiple-choice accuracy (lm-evaluation-harness rules) of the original model and of the plan. */
function TaskForm({ busy, hasPlan, fileSet }: { busy: boolean; hasPlan: boolean; fileSet: unknown }) {
  const st = useEval();
  const key = taskKey(st);
  const before = st.taskBefore?.source === fileSet ? st.taskBefore : null;
  const after = st.taskAfter?.source === fileSet ? st.taskAfter : null;
  return (
    <div className="eval-form" data-testid="task-form">
      <h3>Task accuracy</h3>
      <Field label="Task file">
        <TextSource role="task" choice={st.taskText} disabled={busy} />
      </Field>
      <Field label="Items" hint="0 = every item of the file">
        <IntBox testid="task-limit" value={st.taskLimit} min={0} max={1_000_000} onChange={(v) => setTaskLimit(v)} />
      </Field>
      <div className="small muted">
        JSON Lines of {'{"context", "choices", "answer"}'}, or ARC / OpenBookQA, HellaSwag, PIQA, MMLU files as published; each choice scored by its
        log-likelihood after the context, as lm-evaluation-harness does (acc_norm: per character).
      </div>
      <div className="inline">
        <button className="btn" data-testid="task-measure-before" disabled={busy} onClick={() => void measureTask('before')}>
          Measure original
        </button>
        <button className="btn" data-testid="task-measure-after" disabled={busy || !hasPlan} onClick={() => void measureTask('after', freshDone())}>
          Measure with the plan
        </button>
      </div>
      <div className="plan-numbers" data-testid="task-results">
        <TaskStat m={before} label="original accuracy" testid="task-acc-before" stale={before !== null && before.settingsKey !== key} />
        <TaskStat m={after} label="accuracy with the plan" testid="task-acc-after" stale={after !== null && after.settingsKey !== key} />
      </div>
    </div>
  );
}

function UnroutedCallout({ result }: { result: CalibrationResult }) {
  const names = result.stats.moeLayers.flatMap((l) => l.unrouted);
  if (names.length === 0)
    return (
      <div className="notice notice-ok small" data-testid="calib-all-routed">
        Every expert received at least one calibration token.
      </div>
    );
  const shown = names.slice(0, 40);
  return (
    <div className="notice notice-warn" data-testid="calib-unrouted" data-count={names.length}>
      <strong>
        {names.length} expert{names.length === 1 ? '' : 's'} received no calibration token.
      </strong>{' '}
      Statistics for them are empty; use more or longer samples, or other text.
      <ul className="unrouted-list mono">
        {shown.map((n) => (
          <li key={n}>{n}</li>
        ))}
        {names.length > shown.length && <li>… and {names.length - shown.length} more</li>}
      </ul>
    </div>
  );
}

function CalibrationResults({ result, layerIndex }: { result: CalibrationResult; layerIndex: number }) {
  const layers = result.stats.moeLayers;
  const routed = layers.reduce((s, l) => s + l.tokensPerExpert.reduce((a, b) => a + b, 0), 0);
  const lay = layers[Math.min(layerIndex, layers.length - 1)];
  const tokens = result.stats.tokens;
  return (
    <div
      className="calib-result"
      data-testid="calib-result"
      data-tokens={tokens}
      data-windows={result.windows}
      data-seq-len={result.seqLen}
      data-moe-layers={layers.length}
      data-top-k={layers[0]?.topK ?? 0}
      data-routed-total={routed}
    >
      <h3>Calibration statistics</h3>
      <div className="plan-numbers">
        <div className="stat">
          <div className="stat-value">{tokens.toLocaleString('en-US')}</div>
          <div className="stat-label">
            tokens · {result.windows} × {result.seqLen} from {result.textName}
            {result.sampling === 'random' ? ` (seed ${result.seed})` : ''}
          </div>
        </div>
        <div className="stat">
          <div className="stat-value" data-testid="calib-routed-total">
            {routed.toLocaleString('en-US')}
          </div>
          <div className="stat-label">
            expert assignments · {layers.length} MoE layers × top-{layers[0]?.topK}
          </div>
        </div>
        <div className="stat">
          <div className="stat-value">{Math.round(tokens / Math.max(result.seconds, 1e-6)).toLocaleString('en-US')}</div>
          <div className="stat-label">tokens/s · {result.seconds.toFixed(2)} s for {result.layers.length} layers</div>
        </div>
        <div className="stat">
          <div className="stat-value" data-testid="calib-peak">
            {formatBytes(result.peakPoolBytes)}
          </div>
          <div className="stat-label">peak GPU memory · largest layer {formatBytes(result.peakLayerWeightBytes)} of weights</div>
        </div>
      </div>
      <UnroutedCallout result={result} />
      {lay && (
        <>
          <div className="plan-layer-head">
            <h3>Routing in MoE layer {lay.layer}</h3>
            {layers.length > 1 && (
              <div className="layer-picker">
                <button className="btn btn-small" disabled={layerIndex <= 0} onClick={() => selectEvalLayer(layerIndex - 1)} aria-label="previous layer">
                  ‹
                </button>
                <select value={layerIndex} data-testid="calib-layer-select" onChange={(e) => selectEvalLayer(Number(e.currentTarget.value))}>
                  {layers.map((l, i) => (
                    <option key={l.layer} value={i}>
                      MoE layer {l.layer}
                      {l.unrouted.length ? ` · ${l.unrouted.length} unrouted` : ''}
                    </option>
                  ))}
                </select>
                <button className="btn btn-small" disabled={layerIndex >= layers.length - 1} onClick={() => selectEvalLayer(layerIndex + 1)} aria-label="next layer">
                  ›
                </button>
              </div>
            )}
          </div>
          <div className="calib-charts">
            <RoutedChart layer={lay} />
            <CoactivationMap layer={lay} />
          </div>
        </>
      )}
      <div className="routed-layers" hidden>
        {layers.map((l) => (
          <span key={l.layer} data-testid="routed-layer" data-layer={l.layer} data-counts={Array.from(l.tokensPerExpert).join(',')} data-unrouted={l.unrouted.join(',')} />
        ))}
      </div>
    </div>
  );
}

/** Calibration (routing statistics for later stages) and perplexity of held-out text, on the GPU, layer by layer. */
/** The panel's run errors, each under its own test id; shown also while the panel is unavailable (a lost GPU). */
function RunErrors({ errors }: { errors: ReadonlyArray<readonly [string | null, string]> }) {
  return (
    <>
      {errors.map(([message, testid]) =>
        message ? (
          <div key={testid} className="notice notice-bad" data-testid={testid}>
            {message}
          </div>
        ) : null,
      )}
    </>
  );
}

export function EvalPanel() {
  const cur = useApp((s) => s.current);
  const fileSet = cur?.summary ? cur.fileSet : null;
  const st = useEval();
  const blocker = useEvalBlocker();
  const hasPlan = usePlan((s) => s.source === fileSet && s.plan !== null);

  useEffect(() => {
    syncEvalModel(fileSet);
  }, [fileSet]);

  if (!fileSet || cur?.summary?.moeLayers.length === 0) return null;
  if (blocker)
    return (
      <section className="card eval eval-off" data-testid="eval-panel" data-available="false">
        <h2>Calibration and perplexity</h2>
        <div className="small muted" data-testid="eval-unavailable">
          {blocker}
        </div>
        <RunErrors errors={[[st.calibError, 'calib-error'], [st.pplError, 'eval-ppl-error']]} />
      </section>
    );
  const fresh = st.source === fileSet;
  const result = fresh && st.calibration?.source === fileSet ? st.calibration : null;
  const busy = st.running !== null;
  return (
    <section className="card eval" data-testid="eval-panel" data-available="true" data-running={st.running?.kind ?? ''}>
      <div className="card-head">
        <div>
          <h2>Calibration and perplexity</h2>
          <div className="muted small">
            Runs the model on text, one decoder layer at a time on your GPU: which experts the tokens reach (for later pruning stages), and how well the
            model predicts held-out text.
          </div>
        </div>
      </div>
      <div className="eval-grid">
        <CalibrationForm busy={busy} />
        <PerplexityForm busy={busy} hasPlan={hasPlan} />
        <TaskForm busy={busy} hasPlan={hasPlan} fileSet={fileSet} />
      </div>
      {st.running && (
        <RunProgress run={st.running} testid={st.running.kind === 'calibration' ? 'calib-progress' : st.running.kind.startsWith('task') ? 'task-progress' : 'eval-ppl-progress'} />
      )}
      <RunErrors errors={[[st.calibError, 'calib-error'], [st.pplError, 'eval-ppl-error'], [st.taskError, 'task-error']]} />
      {result && <CalibrationResults result={result} layerIndex={st.layerIndex} />}
    </section>
  );
}
