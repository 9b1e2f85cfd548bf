import { formatBytes, formatEta, formatRate } from '../core/format.ts';
import { Bar } from './controls.tsx';
import { cancelIngest, useApp } from './state.ts';

export function IngestPanel() {
  const ingest = useApp((s) => s.ingest);
  if (!ingest) return null;
  const p = ingest.progress;
  return (
    <section className="card ingest" data-testid="ingest-progress">
      <div className="card-head">
        <h2>Storing {ingest.name} in this browser</h2>
        <button className="btn btn-quiet" data-testid="ingest-cancel" onClick={cancelIngest}>
          Cancel
        </button>
      </div>
      {!p ? (
        <div className="muted">Checking storage space…</div>
      ) : (
        <>
          <div className="ingest-line">
            <span>
              File {p.fileIndex + 1} of {p.fileCount}: <strong data-testid="ingest-file">{p.file}</strong>
            </span>
            <span className="mono">
              {formatBytes(p.fileDone)} / {formatBytes(p.fileTotal)}
            </span>
          </div>
          <Bar done={p.fileDone} total={p.fileTotal} testid="ingest-file-bar" />
          <div className="ingest-line">
            <span>Overall</span>
            <span className="mono" data-testid="ingest-overall">
              {formatBytes(p.done)} / {formatBytes(p.total)} · {formatRate(p.bytesPerSec)} · {formatEta(p.etaSec)} left
            </span>
          </div>
          <Bar done={p.done} total={p.total} testid="ingest-overall-bar" />
          {p.resumedBytes > 0 && <div className="muted small">Resumed: {formatBytes(p.resumedBytes)} were already stored and verified.</div>}
        </>
      )}
    </section>
  );
}
