/**
 * Sessions: what a user measured on a model survives a reload. One session per checkpoint (named by its files' names
 * and sizes) keeps the settings of every panel, the measured trade-off points and the sweeps, in IndexedDB through
 * idb-keyval (a database of its own). A session is saved as soon as it holds a measured point; it is listed, reopened
 * (the model from the browser's store or from where it was read, when the page can; else once the user loads it) and
 * deleted from the list.
 */
import { createStore, del, entries, set, type UseStore } from 'idb-keyval';
import { create } from 'zustand';
import { asUserError } from '../core/errors.ts';
import { setCalibSettings, setHeldoutSettings, useEval, type CalibrationSettings, type HeldoutSettings } from './eval-state.ts';
import { setControls, usePlan, type PlanControls } from './prune-state.ts';
import { setStage2Controls, useStage2, type Stage2Controls } from './stage2-state.ts';
import { openRecent, openStored, useApp, type CurrentModel } from './state.ts';
import { useTradeoff, type StoredPoint, type SweepRecord, type XAxisChoice, type YAxisChoice } from './tradeoff-state.ts';

export const SESSION_DB = 'moe-prune-sessions';

export interface SessionRecord {
  readonly id: string;
  readonly version: 1;
  readonly model: { readonly name: string; readonly files: ReadonlyArray<{ readonly name: string; readonly size: number }> };
  readonly savedAt: number;
  readonly plan: PlanControls | null;
  readonly stage2: Stage2Controls;
  readonly calib: CalibrationSettings;
  readonly heldout: HeldoutSettings;
  readonly tradeoff: {
    readonly totalsPct: readonly number[];
    readonly sharesPct: readonly number[];
    readonly expertOnly: boolean;
    readonly axis: XAxisChoice;
    /** Absent in sessions saved before the accuracy axis (perplexity, task not measured). */
    readonly yAxis?: YAxisChoice;
    readonly withTask?: boolean;
    readonly points: readonly StoredPoint[];
    readonly sweeps: readonly SweepRecord[];
  };
}

export interface SessionState {
  sessions: SessionRecord[];
  /** The session being reopened, applied once its model is loaded and planned. */
  pending: SessionRecord | null;
  /** The id of the session the page is working in (reopened or saved). */
  activeId: string | null;
  message: string | null;
}

export const useSessions = create<SessionState>(() => ({ sessions: [], pending: null, activeId: null, message: null }));

let db: UseStore | null = null;
const store = (): UseStore => (db ??= createStore(SESSION_DB, 'sessions'));

/** A checkpoint's identity: its files' names and sizes. */
export function sessionId(model: Pick<CurrentModel, 'files'>): string {
  return [...model.files]
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map((f) => `${f.name}:${f.size}`)
    .join('|');
}

export async function refreshSessions(): Promise<void> {
  try {
    const all = (await entries<string, SessionRecord>(store())).map(([, v]) => v).filter((v) => v && v.version === 1);
    useSessions.setState({ sessions: all.sort((a, b) => b.savedAt - a.savedAt) });
  } catch (e) {
    useSessions.setState({ message: `sessions cannot be read: ${asUserError(e).text}` });
  }
}

/** The session of the model on screen, from the stores, or null when there is nothing measured to keep. */
export function snapshot(cur: CurrentModel | null = useApp.getState().current): SessionRecord | null {
  const t = useTradeoff.getState();
  if (!cur?.summary || t.source !== cur.fileSet || (t.points.length === 0 && t.sweeps.length === 0)) return null;
  const ps = usePlan.getState();
  const ev = useEval.getState();
  return {
    id: sessionId(cur),
    version: 1,
    model: { name: cur.name, files: cur.files.map((f) => ({ name: f.name, size: f.size })) },
    savedAt: Date.now(),
    plan: ps.source === cur.fileSet ? ps.controls : null,
    stage2: useStage2.getState().controls,
    calib: ev.calib,
    heldout: ev.heldout,
    tradeoff: { totalsPct: t.totalsPct, sharesPct: t.sharesPct, expertOnly: t.expertOnly, axis: t.axis, yAxis: t.yAxis, withTask: t.withTask, points: t.points, sweeps: t.sweeps },
  };
}

export async function saveSession(): Promise<void> {
  const s = snapshot();
  if (!s) return;
  try {
    await set(s.id, s, store());
    useSessions.setState({ activeId: s.id });
    await refreshSessions();
  } catch (e) {
    useSessions.setState({ message: `the session was not saved: ${asUserError(e).text}` });
  }
}

export async function deleteSession(id: string): Promise<void> {
  await del(id, store()).catch(() => undefined);
  useSessions.setState((s) => ({ activeId: s.activeId === id ? null : s.activeId, pending: s.pending?.id === id ? null : s.pending }));
  await refreshSessions();
}

/** Puts a session's settings and points on screen; the model must be loaded and its plan ready. */
function apply(rec: SessionRecord): boolean {
  const cur = useApp.getState().current;
  const ps = usePlan.getState();
  if (!cur?.summary || sessionId(cur) !== rec.id || ps.source !== cur.fileSet || !ps.model || !ps.controls) return false;
  if (useTradeoff.getState().source !== cur.fileSet) return false;
  // Cleared first: the setters below notify the subscription that applies a pending session.
  useSessions.setState({ pending: null });
  if (rec.plan) setControls(rec.plan);
  setStage2Controls(rec.stage2);
  setCalibSettings(rec.calib);
  setHeldoutSettings(rec.heldout);
  const t = rec.tradeoff;
  useTradeoff.setState({ totalsPct: [...t.totalsPct], sharesPct: [...t.sharesPct], expertOnly: t.expertOnly, axis: t.axis, yAxis: t.yAxis ?? 'perplexity', withTask: t.withTask ?? false, points: [...t.points], sweeps: [...t.sweeps] });
  useSessions.setState({ activeId: rec.id, message: `Reopened the session of ${rec.model.name}: ${t.points.length} measured point(s).` });
  return true;
}

/**
 * Reopens a session: at once when its model is on screen; else the model is opened from the browser's store or
 * from where it was read before (the browser may ask for permission), or the user is asked to load it.
 */
export async function reopenSession(rec: SessionRecord): Promise<void> {
  useSessions.setState({ pending: rec, message: null });
  if (apply(rec)) return;
  const app = useApp.getState();
  if (app.current && sessionId(app.current) === rec.id) return; // its plan is still being prepared: applied when ready
  const stored = app.models.find((m) => sessionId({ files: m.record.files }) === rec.id && m.record.complete);
  if (stored) return openStored(stored);
  const recent = app.recent.find((r) => sessionId({ files: r.files }) === rec.id);
  if (recent) return openRecent(recent);
  useSessions.setState({ message: `Load ${rec.model.name} (the same files) to reopen this session; it opens by itself then.` });
}

let started = false;
let timer: ReturnType<typeof setTimeout> | null = null;

/** Keeps the session of the model on screen saved, and applies a pending reopen once its model is ready. */
export function startSessions(): void {
  if (started) return;
  started = true;
  void refreshSessions();
  const schedule = (): void => {
    if (useSessions.getState().pending) return;
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => void saveSession(), 250);
  };
  useTradeoff.subscribe((s, prev) => {
    if (s.points !== prev.points || s.sweeps !== prev.sweeps || s.totalsPct !== prev.totalsPct || s.sharesPct !== prev.sharesPct || s.axis !== prev.axis || s.yAxis !== prev.yAxis || s.withTask !== prev.withTask) schedule();
  });
  const tryPending = (): void => {
    const p = useSessions.getState().pending;
    if (p) apply(p);
  };
  usePlan.subscribe(tryPending);
  // The same files under another FileSet (stored in the browser while open, or reopened): the session carries over.
  let prev = useApp.getState().current;
  useApp.subscribe((a) => {
    const before = prev;
    prev = a.current;
    const cur = a.current;
    if (!before?.summary || !cur || cur.fileSet === before.fileSet || sessionId(cur) !== sessionId(before)) return;
    const rec = snapshot(before);
    if (rec) useSessions.setState({ pending: rec });
  });
  useTradeoff.subscribe((s, prev) => {
    if (s.source !== prev.source) tryPending();
  });
}
