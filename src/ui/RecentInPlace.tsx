import { formatBytes } from '../core/format.ts';
import { forgetRecent, openRecent, useApp } from './state.ts';

/** Checkpoints read in place before (nothing copied): reopened from the same files after a reload, no new drop. */
export function RecentInPlace() {
  const recent = useApp((s) => s.recent);
  const busy = useApp((s) => s.ingest !== null);
  if (recent.length === 0) return null;
  return (
    <section className="card stored" data-testid="recent-in-place">
      <div className="card-head">
        <h2>Read in place before</h2>
      </div>
      <p className="muted small">Opened from the files where they are, nothing copied. Open reads them again (the browser may ask to allow it).</p>
      <ul className="model-list">
        {recent.map((r) => (
          <li key={r.id} data-testid="recent-model" data-id={r.id}>
            <div className="model-main">
              <div className="model-name">{r.name}</div>
              <div className="muted small">
                {r.files.length} files · {formatBytes(r.files.reduce((n, f) => n + f.size, 0))}
                {r.summary ? ` · ${r.summary.expertsPerLayer} experts × ${r.summary.moeLayers.length} layers` : ''}
              </div>
            </div>
            <div className="model-actions">
              <button className="btn btn-small" data-testid="recent-open" disabled={busy} onClick={() => void openRecent(r)}>
                Open
              </button>
              <button className="btn btn-small" data-testid="recent-forget" onClick={() => void forgetRecent(r.id)}>
                Forget
              </button>
            </div>
          </li>
        ))}
      </ul>
    </section>
  );
}
