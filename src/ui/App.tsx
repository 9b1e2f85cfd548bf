import { lazy, Suspense, useEffect } from 'react';
import { AdapterPanel } from './AdapterPanel.tsx';
import { DemoButton } from './DemoButton.tsx';
import { DropZone } from './DropZone.tsx';
import { ErrorBanner } from './ErrorBanner.tsx';
import { IngestPanel } from './IngestPanel.tsx';
import { ModelSummary } from './ModelSummary.tsx';
import { StoredModels } from './StoredModels.tsx';
import { RecentInPlace } from './RecentInPlace.tsx';
import { initGpu, refreshModels, refreshRecent } from './state.ts';

// The pruning and evaluation panels (and the chart library they use) load on first need, so the page that
// summarises a checkpoint comes up fast.
const PlanPanel = lazy(async () => ({ default: (await import('./PlanPanel.tsx')).PlanPanel }));
const EvalPanel = lazy(async () => ({ default: (await import('./EvalPanel.tsx')).EvalPanel }));
const ComparePanel = lazy(async () => ({ default: (await import('./ComparePanel.tsx')).ComparePanel }));
const Stage2Panel = lazy(async () => ({ default: (await import('./Stage2Panel.tsx')).Stage2Panel }));
// Sessions read the panels' stores (and so the pipeline): they load after the page is up.
const SessionList = lazy(async () => ({ default: (await import('./SessionList.tsx')).SessionList }));
const TradeoffPanel = lazy(async () => ({ default: (await import('./TradeoffPanel.tsx')).TradeoffPanel }));
const ExportPanel = lazy(async () => ({ default: (await import('./ExportBox.tsx')).ExportPanel }));
const FlowSteps = lazy(async () => ({ default: (await import('./FlowSteps.tsx')).FlowSteps }));

export function App() {
  useEffect(() => {
    void initGpu();
    void refreshModels();
    void refreshRecent();
  }, []);
  return (
    <div className="app">
      <header className="topbar">
        <div className="brand">
          <div className="logo" aria-hidden>
            <span />
            <span />
            <span />
            <span />
          </div>
          <div>
            <h1>MoE Prune Studio</h1>
            <div className="tagline">Prune Mixture-of-Experts checkpoints on your own GPU. Your weights never leave this machine.</div>
          </div>
        </div>
        <AdapterPanel />
      </header>
      <ErrorBanner />
      <main className="layout">
        <div className="col-side">
          <DemoButton />
          <DropZone />
          <StoredModels />
          <RecentInPlace />
          <Suspense fallback={null}>
            <SessionList />
          </Suspense>
        </div>
        <div className="col-main">
          <Suspense fallback={null}>
            <FlowSteps />
          </Suspense>
          <IngestPanel />
          <ModelSummary />
          <Suspense fallback={null}>
            <PlanPanel />
            <ComparePanel />
            <Stage2Panel />
            <TradeoffPanel />
            <EvalPanel />
            <ExportPanel />
          </Suspense>
        </div>
      </main>
    </div>
  );
}
