/**
 * Sessions: what a user measured on a model survives a reload. One session per checkpoint (named by its files' names
 * and sizes) keeps the settings of every panel, the measured trade-off points and the sweeps, in IndexedDB through
 * idb-keyval (a database of its own). A session is saved as soon as it holds a measured point; it is listed, reopened
 * (the model from the browser's store or from where it was read, when the page can; else once the user loads it) and
 * deleted from the list. The model's calibration statistics (the evaluation panel's pass) are kept too, in a database of
 * their own (they can be megabytes, and the list reads every session): reopening restores them when the calibration
 * text on screen has the same SHA-256 and settings, so plans re-plan from them without a new pass; otherwise the
 * session says that the next measure calibrates again.
 */
import { createStore, del, entries, get, set, type UseStore } from 'idb-keyval';
import { create } from 'zustand';
import { asUserError } from '../core/errors.ts';
import type { CalibrationSpec } from '../pipeline/job.ts';
import { calibrationSpec, chosenCalibrationText, setCalibSettings, setHeldoutSettings, useEval, type CalibrationResult, type CalibrationSettings, type HeldoutSettings } from './eval-state.ts';
import { setControls, usePlan, type PlanControls } from './prune-state.ts';
import { setStage2Controls, useStage2, type Stage2Controls } from './stage2-state.ts';
import { openRecent, openStored, useApp, type CurrentModel } from './state.ts';
import { ownTextNames, textDigest, useTradeoff, type StoredPoint, type SweepRecord, type TextDigest, type XAxisChoice, type YAxisChoice } from './tradeoff-state.ts';

export const SESSION_DB = 'moe-prune-sessions';
export const SESSION_STATS_DB = 'moe-prune-session-stats';

/** What a session records of its kept calibration statistics (the statistics themselves are stored beside it). */
export interface SessionStatistics {
  readonly text: TextDigest;
  readonly spec: CalibrationSpec;
  readonly windows: number;
  readonly tokens: number;
  readonly savedAt: number;
}

/** The stored statistics of a session: the evaluation panel's calibration result without its FileSet. */
export interface StoredStatistics {
  readonly about: SessionStatistics;
  readonly result: Omit<CalibrationResult, 'source'>;
}

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
  /** Absent when no calibration pass was kept (sessions saved before statistics were, or none ran). */
  readonly statistics?: SessionStatistics;
}

/**
 * Whether kept statistics fit the calibration on screen: the same text (by SHA-256) and the same windows spec. Anything
 * else would put another calibration's numbers under these settings.
 */
export function statisticsFit(about: SessionStatistics, text: TextDigest, spec: CalibrationSpec): boolean {
  return about.text.sha256 === text.sha256 && JSON.stringify(about.spec) === JSON.stringify(spec);
}

/** What reopening says: the points, the user's own texts they were measured with, and what became of the statistics. */
export function reopenMessage(rec: SessionRecord, statistics: 'restored' | 'recalibrate' | 'none'): string {
  const n = rec.tradeoff.points.length;
  const own = ownTextNames(rec.tradeoff.points);
  const texts = own.length ? ` Measured with your own text (${own.join('; ')}): choose the same file again to see those points under it.` : '';
  const stats =
    statistics === 'restored'
      ? ` Calibration statistics restored (${rec.statistics?.text.name}, ${rec.statistics?.windows} windows): plans use them without a new pass.`
      : statistics === 'recalibrate'
        ? ` Its calibration statistics were taken on ${rec.statistics?.text.name}, not the calibration text and settings on screen: the next measure calibrates again.`
        : '';
  return `Reopened the session of ${rec.model.name}: ${n} measured point(s).${texts}${stats}`;
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
let statsDb: UseStore | null = null;
const statsStore = (): UseStore => (statsDb ??= createStore(SESSION_STATS_DB, 'statistics'));

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

/** The statistics last written per session: a save writes them again only when the calibration result changed. */
const keptStats = new Map<string, { result: CalibrationResult; about: SessionStatistics }>();

/**
 * The statistics of the model on screen to keep with its session: the evaluation panel's calibration pass of this
 * model, when the calibration text on screen is the one it ran on (same name; its digest recorded) with the same spec.
 */
async function statisticsToKeep(id: string): Promise<{ about: SessionStatistics; write: StoredStatistics | null } | null> {
  const cur = useApp.getState().current;
  const ev = useEval.getState();
  const r = ev.calibration;
  if (!cur || !r || r.source !== cur.fileSet) return null;
  const kept = keptStats.get(id);
  if (kept?.result === r) return { about: kept.about, write: null };
  const spec = calibrationSpec(ev.calib);
  if (r.seqLen !== spec.seqLen || r.sampling !== spec.sampling || (spec.sampling === 'random' && r.seed !== spec.seed)) return null;
  const text = await chosenCalibrationText();
  if (text.name !== r.textName) return null;
  const about: SessionStatistics = { text: await textDigest(text, ev.calibText.source === 'file'), spec, windows: r.windows, tokens: r.stats.tokens, savedAt: Date.now() };
  const { source: _source, ...result } = r;
  keptStats.set(id, { result: r, about });
  return { about, write: { about, result } };
}

export async function saveSession(): Promise<void> {
  const snap = snapshot();
  if (!snap) return;
  try {
    const stats = await statisticsToKeep(snap.id).catch(() => null);
    if (stats?.write) await set(snap.id, stats.write, statsStore());
    // A session keeps the statistics it had when the page has none to replace them with.
    const before = useSessions.getState().sessions.find((x) => x.id === snap.id)?.statistics;
    const about = stats?.about ?? before;
    const s: SessionRecord = about ? { ...snap, statistics: about } : snap;
    await set(s.id, s, store());
    useSessions.setState({ activeId: s.id });
    await refreshSessions();
  } catch (e) {
    useSessions.setState({ message: `the session was not saved: ${asUserError(e).text}` });
  }
}

export async function deleteSession(id: string): Promise<void> {
  await del(id, store()).catch(() => undefined);
  await del(id, statsStore()).catch(() => undefined);
  keptStats.delete(id);
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
  useSessions.setState({ activeId: rec.id, message: reopenMessage(rec, 'none') });
  if (rec.statistics) void restoreStatistics(rec, cur.fileSet);
  return true;
}

/** Puts a reopened session's calibration statistics back when they fit the calibration on screen. */
async function restoreStatistics(rec: SessionRecord, fileSet: CurrentModel['fileSet']): Promise<void> {
  const about = rec.statistics;
  if (!about) return;
  try {
    const [kept, text] = await Promise.all([get<StoredStatistics>(rec.id, statsStore()), chosenCalibrationText()]);
    const ev = useEval.getState();
    if (useApp.getState().current?.fileSet !== fileSet || ev.running) return;
    if (!kept || !statisticsFit(kept.about, await textDigest(text, false), calibrationSpec(ev.calib))) {
      if (useSessions.getState().activeId === rec.id) useSessions.setState({ message: reopenMessage(rec, 'recalibrate') });
      return;
    }
    const result: CalibrationResult = { ...kept.result, source: fileSet };
    keptStats.set(rec.id, { result, about: kept.about });
    useEval.setState({ calibration: result, layerIndex: Math.min(ev.layerIndex, Math.max(0, result.stats.moeLayers.length - 1)) });
    if (useSessions.getState().activeId === rec.id) useSessions.setState({ message: reopenMessage(rec, 'restored') });
  } catch {
    if (useSessions.getState().activeId === rec.id) useSessions.setState({ message: reopenMessage(rec, 'recalibrate') });
  }
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
  // A finished calibration pass is kept with the session on screen.
  useEval.subscribe((s, prev) => {
    if (s.calibration !== prev.calibration && s.calibration) schedule();
  });
  // The same files under another FileSet (stored in the browser while open, or reopened): the session carries over.
  let prev = useApp.getState().current;
  useApp.subscribe((a) => {
    const before = prev;
    prev = a.current;
    const cur = a.current;
    if (!before?.summary || !cur || cur.fileSet === before.fileSet || sessionId(cur) !== sessionId(before)) return;
    const rec = snapshot(before);
    // Its kept statistics come along (restored from where they are stored, as on a reopen).
    const statistics = useSessions.getState().sessions.find((x) => x.id === rec?.id)?.statistics;
    if (rec) useSessions.setState({ pending: statistics ? { ...rec, statistics } : rec });
  });
  useTradeoff.subscribe((s, prev) => {
    if (s.source !== prev.source) tryPending();
  });
}
