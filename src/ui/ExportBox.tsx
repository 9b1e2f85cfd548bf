import type { FileSet } from '../formats/bytes.ts';
import { INCOMPLETE_MARKER } from '../export/browser-output.ts';
import { formatBytes } from '../core/format.ts';
import { Bar, Segmented } from './controls.tsx';
import { cancelExport, exportFolderName, folderExportAvailable, setExportTarget, setPerLayerVariant, stage2ExportProblem, startExport, useExport, type ExportTarget } from './export-state.ts';
import { expertsRange, nearestUniformK, setControls, usePlan } from './prune-state.ts';
import { freshDone, freshEvaluation, useStage2 } from './stage2-state.ts';
import { useApp } from './state.ts';
import { stageOneEvaluation, useEval } from './eval-state.ts';

const TARGETS: ReadonlyArray<readonly [ExportTarget, string]> = [
  ['folder', 'Into a folder I pick'],
  ['downloads', 'As one .zip download'],
];

/** What the export will write besides the expert plan: stage-2 masks and measured perplexity (or why it cannot). */
function WhatIsWritten({ fileSet }: { fileSet: FileSet }) {
  // Subscriptions: the fresh/stale checks read these stores.
  useStage2();
  useEval();
  const plan = usePlan((s) => s.plan);
  const stale = stage2ExportProblem();
  const s2 = freshDone();
  const ev = s2 ? freshEvaluation() : plan ? stageOneEvaluation(fileSet, plan) : null;
  const sp = s2?.result.sparsity;
  return (
    <div className="small export-what" data-testid="export-stage2" data-applied={s2 ? 'true' : 'false'} data-perplexity={ev ? 'true' : 'false'}>
      {stale ? (
        <span className="warn-text">{stale}</span>
      ) : sp ? (
        <>
          Writes the expert plan with the stage-2 masks: {sp.method}
          {sp.nm ? ` ${sp.nm}` : ''}, {(100 * sp.achieved).toFixed(2)} % of the scope zero or removed, pruned weights stored as exact zeros.
        </>
      ) : (
        <>Writes the expert plan alone (no stage-2 masks: run stage 2 above to add them).</>
      )}{' '}
      {!stale && (ev ? 'The measured perplexity before → after goes into the report and the model card.' : 'No perplexity of exactly this model was measured; the report leaves it out.')}
    </div>
  );
}

/** The export as its own step, after the expert plan and stage 2. */
export function ExportPanel() {
  const plan = usePlan((s) => s.plan);
  const ready = usePlan((s) => s.model !== null && s.numbers !== null);
  const cur = useApp((s) => s.current);
  if (!plan || !ready || !cur?.summary) return null;
  return (
    <section className="card plan export-card" data-testid="export-panel">
      <ExportBox />
    </section>
  );
}

export function ExportBox() {
  const { model, numbers, exportProblems, plan } = usePlan();
  const { running, done, stopped, target, perLayerVariant } = useExport();
  const name = useApp((s) => s.current?.name ?? 'model');
  // Subscriptions: whether a stage-2 result is stale depends on these stores too.
  useStage2();
  useEval((s) => s.calibText);
  useEval((s) => s.calib);
  const stale = stage2ExportProblem() !== null;
  const canFolder = folderExportAvailable();
  if (!model || !numbers || !plan) return null;
  const k = numbers.uniformK;
  const blocked = (k === null && !perLayerVariant) || exportProblems.length > 0 || stale;
  const folderK = k ?? (perLayerVariant ? expertsRange(plan, '-') : 'K');
  const uniformK = k === null ? nearestUniformK() : null;
  const p = running?.progress;
  return (
    <div className="export" data-testid="export-box">
      <h2>Export</h2>
      <WhatIsWritten fileSet={model.fileSet} />
      {k === null && (
        <div className="export-variant small" data-testid="per-layer-box">
          <label>
            <input type="checkbox" data-testid="per-layer-variant" checked={perLayerVariant} disabled={running !== null} onChange={(e) => setPerLayerVariant(e.currentTarget.checked)} />{' '}
            Export a <strong>per-layer variant</strong> ({expertsRange(plan)} experts per layer). It needs custom code to load: its <code>model_type</code> is marked so that
            stock transformers and vLLM refuse it instead of re-initialising experts at random. <code>config.json</code> lists each layer&apos;s count.
          </label>
          {uniformK !== null && (
            <button className="btn btn-small" data-testid="use-uniform" disabled={running !== null} onClick={() => setControls({ mode: 'uniform', keep: uniformK })}>
              Use {uniformK} per layer instead (loads anywhere)
            </button>
          )}
        </div>
      )}
      <div className="export-row">
        <Segmented<ExportTarget>
          value={target}
          options={TARGETS}
          onChange={setExportTarget}
          testid="export-target"
          offReason={(v) => (v === 'folder' && !canFolder ? 'this browser has no File System Access API' : undefined)}
        />
        <button className="btn btn-primary" data-testid="export-button" disabled={blocked || running !== null} onClick={() => void startExport(target)}>
          Export pruned checkpoint
        </button>
        {running && (
          <button className="btn" data-testid="export-cancel" onClick={cancelExport}>
            Cancel
          </button>
        )}
      </div>
      <div className="small muted export-explain">
        {target === 'folder' ? (
          <>
            Writes a new folder <code>{exportFolderName(name, folderK)}</code> inside the folder you pick, streaming shard by shard. It holds an{' '}
            <code>{INCOMPLETE_MARKER}</code> file until the last byte is written, and is deleted if you cancel.
          </>
        ) : (
          <>
            Streams one download, <code>{exportFolderName(name, folderK)}.zip</code> (uncompressed), holding that folder: the browser saves it to disk as it is
            written, nothing is gathered in memory. The archive opens only once complete; a cancelled or failed export leaves the
            download marked failed.
            {!canFolder && ' This browser cannot write into a folder directly (no File System Access API).'}
          </>
        )}
      </div>
      {blocked && (
        <div className="small warn-text" data-testid="export-blocked">
          {exportProblems.length
            ? 'Fix the plan above to export.'
            : stale
              ? 'Run stage 2 again with these settings, or discard its result.'
              : 'Tick the per-layer variant, or switch to uniform mode (the same count per layer) to export a checkpoint stock runtimes load.'}
        </div>
      )}
      {running && (
        <div data-testid="export-progress" data-phase={p?.phase ?? ''}>
          <div className="ingest-line small">
            <span>
              {p ? (p.phase === 'export' ? `Writing ${p.file ?? ''}` : `${p.phase}${p.detail ? ` (${p.detail})` : ''}`) : 'Starting…'}
            </span>
            <span className="mono">
              {p ? (p.unit === 'bytes' ? `${formatBytes(p.done)} / ${formatBytes(p.total)}` : `${p.done} / ${p.total} ${p.unit}`) : ''}
            </span>
          </div>
          <Bar done={p?.done ?? 0} total={p?.total ?? 0} />
        </div>
      )}
      {!running && stopped && (
        <div className="notice notice-warn" data-testid="export-stopped">
          {stopped}
          {target === 'downloads' && ' The browser marks the download as failed; a cut-short .zip does not open.'}
        </div>
      )}
      {!running && done?.source === model.fileSet && (
        <div
          className="notice notice-ok"
          data-testid="export-done"
          data-files={done.files.length}
          data-k={done.expertsPerLayer}
          data-stage2={done.stage2 ? 'true' : 'false'}
          data-perplexity={done.perplexity ? 'true' : 'false'}
        >
          Exported {done.expertsPerLayer} experts per layer{done.perLayer ? ' (per-layer variant: needs custom code)' : ''}
          {done.stage2 ? ` with ${done.stage2.method} masks (${(100 * done.stage2.achieved).toFixed(2)} % sparsity)` : ''}: {done.files.length} files
          {done.folder && (
            <>
              {' '}
              into <code>{done.folder}</code>
            </>
          )}{' '}
          ({formatBytes(done.files.reduce((s, f) => s + f.bytes, 0))}).{' '}
          {done.target === 'downloads' ? 'Unpack it and drop the folder on this page to check it.' : 'Drop the folder on this page to check it.'}
        </div>
      )}
    </div>
  );
}
