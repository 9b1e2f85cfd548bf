import { DOWNLOAD_WARN_BYTES, INCOMPLETE_MARKER, REPORT_FILE } from '../export/browser-output.ts';
import { formatBytes } from '../core/format.ts';
import { Bar, Segmented } from './controls.tsx';
import { cancelExport, exportFolderName, folderExportAvailable, setExportTarget, setPerLayerVariant, startExport, useExport, type ExportTarget } from './export-state.ts';
import { expertsRange, nearestUniformK, setControls, usePlan } from './prune-state.ts';
import { useApp } from './state.ts';

const TARGETS: ReadonlyArray<readonly [ExportTarget, string]> = [
  ['folder', 'Into a folder I pick'],
  ['downloads', 'As downloads'],
];

export function ExportBox() {
  const { model, numbers, exportProblems, plan } = usePlan();
  const { running, done, stopped, target, perLayerVariant } = useExport();
  const name = useApp((s) => s.current?.name ?? 'model');
  const canFolder = folderExportAvailable();
  if (!model || !numbers || !plan) return null;
  const k = numbers.uniformK;
  const blocked = (k === null && !perLayerVariant) || exportProblems.length > 0;
  const folderK = k ?? (perLayerVariant ? expertsRange(plan, '-') : 'K');
  const uniformK = k === null ? nearestUniformK() : null;
  const biggest = Math.max(0, ...[...model.cat.shards.values()].map((s) => s.source.size));
  const p = running?.progress;
  return (
    <div className="export" data-testid="export-box">
      <h3>Export</h3>
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
            Saves each file as a download once it is complete; <code>{REPORT_FILE}</code> comes last, so a download folder without it is an unfinished
            export. Put the files into one folder to load them. The browser may ask once to allow this page to download several files.
            {!canFolder && ' This browser cannot write into a folder directly (no File System Access API).'}
            {biggest > DOWNLOAD_WARN_BYTES && (
              <strong className="warn-text">
                {' '}
                Shards here are up to {formatBytes(biggest)}: each download is assembled in memory first, so prefer a folder export (Chrome or Edge).
              </strong>
            )}
          </>
        )}
      </div>
      {blocked && (
        <div className="small warn-text" data-testid="export-blocked">
          {exportProblems.length ? 'Fix the plan above to export.' : 'Tick the per-layer variant, or switch to uniform mode (the same count per layer) to export a checkpoint stock runtimes load.'}
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
          {target === 'downloads' && ` Files already downloaded have no ${REPORT_FILE}; delete them.`}
        </div>
      )}
      {!running && done?.source === model.fileSet && (
        <div className="notice notice-ok" data-testid="export-done" data-files={done.files.length} data-k={done.expertsPerLayer}>
          Exported {done.expertsPerLayer} experts per layer{done.perLayer ? ' (per-layer variant: needs custom code)' : ''}: {done.files.length} files
          {done.folder ? (
            <>
              {' '}
              into <code>{done.folder}</code>
            </>
          ) : (
            ' as downloads'
          )}{' '}
          ({formatBytes(done.files.reduce((s, f) => s + f.bytes, 0))}). Drop the folder on this page to check it.
        </div>
      )}
    </div>
  );
}
