import { useEffect } from 'react';
import { deleteSession, reopenSession, startSessions, useSessions } from './session-state.ts';
import { ownTextNames } from './tradeoff-state.ts';

const when = (t: number): string => new Date(t).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });

/** Saved sessions (a model's settings, measured points and sweeps), newest first: reopen or delete. */
export function SessionList() {
  const { sessions, pending, activeId, message } = useSessions();
  useEffect(() => startSessions(), []);
  return (
    <section className="card stored sessions" data-testid="session-list" data-count={sessions.length}>
      <div className="card-head">
        <h2>Sessions</h2>
      </div>
      {message && (
        <div className="small notice" data-testid="session-message">
          {message}
        </div>
      )}
      {sessions.length === 0 ? (
        <p className="muted small">No saved session. Measuring a trade-off point saves the model’s settings, points and sweeps here; they survive a reload.</p>
      ) : (
        <ul className="model-list">
          {sessions.map((s) => (
            <li key={s.id} data-testid="session" data-name={s.model.name} data-points={s.tradeoff.points.length} data-saved={s.savedAt} data-statistics={s.statistics ? s.statistics.text.name : ''} className={s.id === activeId ? 'active' : ''}>
              <div className="model-main">
                <div className="model-name">{s.model.name}</div>
                <div className="muted small">
                  {s.tradeoff.points.length} measured point{s.tradeoff.points.length === 1 ? '' : 's'} · {s.tradeoff.sweeps.length} sweep{s.tradeoff.sweeps.length === 1 ? '' : 's'} ·
                  saved {when(s.savedAt)}
                  {pending?.id === s.id ? ' · waiting for the model' : ''}
                </div>
                {(s.statistics || ownTextNames(s.tradeoff.points).length > 0) && (
                  <div className="muted small" data-testid="session-texts">
                    {s.statistics ? `calibration statistics kept (${s.statistics.text.name}, ${s.statistics.windows} windows)` : ''}
                    {s.statistics && ownTextNames(s.tradeoff.points).length > 0 ? ' · ' : ''}
                    {ownTextNames(s.tradeoff.points).length > 0 ? `your texts: ${ownTextNames(s.tradeoff.points).join('; ')}` : ''}
                  </div>
                )}
              </div>
              <div className="model-actions">
                <button className="btn btn-small" data-testid="session-open" onClick={() => void reopenSession(s)}>
                  Reopen
                </button>
                <button
                  className="btn btn-small btn-danger"
                  data-testid="session-delete"
                  onClick={() => {
                    if (window.confirm(`Delete the session of ${s.model.name} (${s.tradeoff.points.length} measured points)? The model is not touched.`)) void deleteSession(s.id);
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
