import { formatBytes } from '../core/format.ts';
import { Bar } from './controls.tsx';
import { deleteStored, openStored, resumeStored, useApp } from './state.ts';

export function StoredModels() {
  const models = useApp((s) => s.models);
  const usage = useApp((s) => s.usage);
  const ingesting = useApp((s) => s.ingest !== null);
  const currentId = useApp((s) => s.current?.storedId ?? null);
  return (
    <section className="card stored" data-testid="stored-models">
      <div className="card-head">
        <h2>Stored in this browser</h2>
      </div>
      {usage?.quota != null && (
        <div className="usage" data-testid="storage-usage">
          <Bar done={usage.usage ?? 0} total={usage.quota} />
          <div className="muted small">
            {formatBytes(usage.usage ?? 0)} used of {formatBytes(usage.quota)} this site may use
            {usage.persisted ? ' · persistent' : ' · may be evicted under storage pressure'}
          </div>
        </div>
      )}
      {models.length === 0 ? (
        <p className="muted small">Nothing stored. Storing copies a checkpoint into IndexedDB so it survives a reload; reading the dropped files copies nothing.</p>
      ) : (
        <ul className="model-list">
          {models.map((m) => (
            <li key={m.record.id} data-testid="stored-model" data-id={m.record.id} data-complete={String(m.record.complete)} className={m.record.id === currentId ? 'active' : ''}>
              <div className="model-main">
                <div className="model-name">{m.record.name}</div>
                <div className="muted small">
                  {m.record.files.length} files · {formatBytes(m.record.totalBytes)}
                  {m.record.summary ? ` · ${m.record.summary.expertsPerLayer} experts × ${m.record.summary.moeLayers.length} layers` : ''}
                </div>
                {!m.record.complete && (
                  <div className="partial small" data-testid="stored-partial">
                    Incomplete: {formatBytes(m.storedBytes)} of {formatBytes(m.record.totalBytes)} stored.{' '}
                    {m.reopenable
                      ? 'Resume reads the same files again from where they were dropped (the browser may ask to allow it).'
                      : 'Drop the same files again to resume.'}
                  </div>
                )}
              </div>
              <div className="model-actions">
                {m.reopenable && (
                  <button className="btn btn-small" data-testid="stored-resume" disabled={ingesting} onClick={() => void resumeStored(m)}>
                    Resume
                  </button>
                )}
                {m.record.complete && (
                  <button className="btn btn-small" data-testid="stored-open" disabled={ingesting} onClick={() => void openStored(m)}>
                    Open
                  </button>
                )}
                <button
                  className="btn btn-small btn-danger"
                  data-testid="stored-delete"
                  disabled={ingesting}
                  onClick={() => {
                    if (window.confirm(`Delete the stored copy of ${m.record.name} (${formatBytes(m.storedBytes)})? The files on your disk are not touched.`))
                      void deleteStored(m.record.id);
                  }}
                >
                  Delete
                </button>
              </div>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
