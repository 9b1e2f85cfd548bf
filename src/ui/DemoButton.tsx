import { useEffect, useState } from 'react';
import { demoAvailable, loadDemo } from './demo.ts';
import { showError, useApp } from './state.ts';

/** "Try the demo model": the small MoE shipped with the app, loaded like a dropped folder. */
export function DemoButton() {
  const busy = useApp((s) => s.ingest !== null);
  const [available, setAvailable] = useState<boolean | null>(null);
  const [fetching, setFetching] = useState<{ done: number; total: number } | null>(null);

  useEffect(() => {
    let live = true;
    void demoAvailable().then((ok) => live && setAvailable(ok));
    return () => {
      live = false;
    };
  }, []);

  const run = async () => {
    setFetching({ done: 0, total: 1 });
    try {
      await loadDemo((done, total) => setFetching({ done, total }));
    } catch (e) {
      showError(e);
    } finally {
      setFetching(null);
    }
  };

  return (
    <div className="card demo" data-testid="demo-card" data-available={available === null ? 'pending' : String(available)}>
      <div className="demo-text">
        <div className="demo-title">New here?</div>
        <div className="muted small">
          {available === false
            ? 'This build ships no demo model (public/demo/model/ is empty).'
            : 'A small Mixtral-style MoE (8 experts, top-2) trained on Jane Austen’s novels. Plan, inspect and export it in seconds.'}
        </div>
      </div>
      <button className="btn btn-primary" data-testid="demo-button" disabled={available !== true || fetching !== null || busy} onClick={() => void run()}>
        {fetching ? `Fetching demo… ${fetching.done}/${fetching.total}` : 'Try the demo model'}
      </button>
    </div>
  );
}
