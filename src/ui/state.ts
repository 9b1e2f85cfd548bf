import { create } from 'zustand';
import { asUserError, MoePruneError } from '../core/errors.ts';
import type { FileSet } from '../formats/bytes.ts';
import { createDevice, describeAdapter, type GpuContext } from '../gpu/device.ts';
import { inspectCheckpoint } from '../models/catalogue.ts';
import { describeSafetensorsFile, loneWeightsFile, type LoneFileSummary } from '../models/lone-file.ts';
import type { CheckpointSummary } from '../models/types.ts';
import { matchesFiles, newLocalId, type StorageMode } from '../store/records.ts';
import { rememberRecent, reopenSources, savedSourcesOf, type RecentCheckpoint, type SavedSource } from '../store/source-handles.ts';
import { checkpointName, directFileSet, toSourceFiles, type PickedFile } from '../store/source-files.ts';
import type { IngestProgress, SourceFile, StoredModel } from '../store/weight-store.ts';
import { browserGpu } from './gpu-access.ts';
import { getServices } from './services.ts';

export type AdapterInfo = ReturnType<typeof describeAdapter>;

export type GpuState =
  | { readonly status: 'pending' }
  | { readonly status: 'ready'; readonly info: AdapterInfo }
  | { readonly status: 'unavailable'; readonly reason: 'no-api' | 'no-adapter' | 'lost'; readonly secureContext: boolean; readonly message: string };

/** The checkpoint the page is working on: always read through one FileSet, stored or direct. */
export interface CurrentModel {
  readonly name: string;
  readonly mode: StorageMode;
  readonly fileSet: FileSet;
  readonly files: ReadonlyArray<{ readonly name: string; readonly size: number }>;
  /** Dropped files (direct mode) that can be stored; null when opened from the store. */
  readonly sources: readonly SourceFile[] | null;
  readonly storedId: string | null;
  readonly summary: CheckpointSummary | null;
  /** A lone weights file with no config.json: its header listed instead of a summary (summary is then null). */
  readonly lone: LoneFileSummary | null;
  readonly inspecting: boolean;
  /** A stored model made of the same files (complete: no copy needed; partial: resume). */
  readonly match: StoredModel | null;
}

export interface IngestView {
  readonly name: string;
  readonly progress: IngestProgress | null;
  readonly controller: AbortController;
}

export interface Banner {
  readonly id: number;
  readonly message: string;
  readonly code: string;
}

export interface UsageView {
  readonly usage: number | null;
  readonly quota: number | null;
  readonly persisted: boolean;
}

export interface AppState {
  gpu: GpuState;
  current: CurrentModel | null;
  ingest: IngestView | null;
  models: readonly StoredModel[];
  /** Checkpoints read in place earlier, reopenable without a new drop (newest first). */
  recent: readonly RecentCheckpoint[];
  usage: UsageView | null;
  errors: readonly Banner[];
  notice: string | null;
}

export const useApp = create<AppState>(() => ({
  gpu: { status: 'pending' },
  current: null,
  ingest: null,
  models: [],
  recent: [],
  usage: null,
  errors: [],
  notice: null,
}));

let nextBannerId = 1;

/** Code-point order, the same order FileSet.names() uses. */
function byName(a: { name: string }, b: { name: string }): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}
let gpuContext: GpuContext | undefined;

/** The open GPU context, for the pipeline stages that run after loading. */
export function getGpuContext(): GpuContext | undefined {
  return gpuContext;
}

export function showError(e: unknown): MoePruneError {
  const err = asUserError(e);
  if (err.code === 'Cancelled') return err;
  useApp.setState((s) => ({ errors: [...s.errors, { id: nextBannerId++, message: err.text, code: err.code }] }));
  return err;
}

export function dismissError(id: number): void {
  useApp.setState((s) => ({ errors: s.errors.filter((b) => b.id !== id) }));
}

export function dismissNotice(): void {
  useApp.setState({ notice: null });
}

export async function initGpu(): Promise<void> {
  const avail = browserGpu();
  if (avail.kind === 'no-api') {
    useApp.setState({
      gpu: { status: 'unavailable', reason: 'no-api', secureContext: avail.secureContext, message: 'This browser does not expose WebGPU (navigator.gpu is missing).' },
    });
    return;
  }
  try {
    const ctx = await createDevice(avail.gpu);
    gpuContext = ctx;
    // A lost device (driver reset, GPU memory exhausted, tab backgrounded too long) is reported once; the page keeps
    // working on what needs no GPU, and "Reconnect" asks for a fresh device.
    ctx.onLost((err) => {
      if (gpuContext === ctx) gpuContext = undefined;
      showError(err);
      useApp.setState({ gpu: { status: 'unavailable', reason: 'lost', secureContext: true, message: err.text } });
    });
    useApp.setState({ gpu: { status: 'ready', info: describeAdapter(ctx) } });
  } catch (e) {
    useApp.setState({ gpu: { status: 'unavailable', reason: 'no-adapter', secureContext: true, message: asUserError(e, 'GpuUnavailable').text } });
  }
}

/** The stored model made of exactly these dropped files, if any (complete: no copy needed; partial: resume). */
function matchFor(sources: readonly SourceFile[], models: readonly StoredModel[]): StoredModel | null {
  return models.find((m) => matchesFiles(m.record, sources)) ?? null;
}

export async function refreshModels(): Promise<void> {
  try {
    const u = await getServices().store.usage();
    useApp.setState((s) => ({
      models: u.models,
      usage: { usage: u.usage, quota: u.quota, persisted: u.persisted },
      current: s.current?.sources && s.current.mode === 'direct' ? { ...s.current, match: matchFor(s.current.sources, u.models) } : s.current,
    }));
  } catch (e) {
    showError(new MoePruneError('StorageError', `cannot list stored models (${(e as Error).message}); IndexedDB may be disabled in this browser profile`));
  }
}

interface Inspected {
  readonly summary: CheckpointSummary | null;
  readonly lone: LoneFileSummary | null;
}

/**
 * A checkpoint's summary; or, for a lone weights file without config.json (one shard dropped on its own), what its
 * header says, since the family needs the config. A failure is shown as a banner and gives neither.
 */
async function summarize(fileSet: FileSet): Promise<Inspected> {
  try {
    const lone = loneWeightsFile(fileSet);
    if (lone) return { summary: null, lone: await describeSafetensorsFile(lone) };
    return { summary: await inspectCheckpoint(fileSet, {}), lone: null };
  } catch (e) {
    showError(e);
    return { summary: null, lone: null };
  }
}

/** A drop or file pick: read the files where they are (nothing copied) and summarise them. */
export async function loadPicked(picked: readonly PickedFile[]): Promise<void> {
  if (picked.length === 0) {
    showError(new MoePruneError('MissingFile', 'nothing to load: the drop held no files (drop the checkpoint folder or its files)'));
    return;
  }
  await loadSources(toSourceFiles(picked), checkpointName(picked));
}

/**
 * Resumes an interrupted ingest from the files it was reading, reopened through the handles saved when it started
 * (the browser may ask the user for read permission: call from a click). No new drop is needed.
 */
export async function resumeStored(m: StoredModel): Promise<void> {
  if (useApp.getState().ingest) return;
  try {
    const sources = await getServices().store.reopenSources(m.record.id);
    await loadSources(sources, m.record.name, false);
    await storeCurrent();
  } catch (e) {
    showError(e);
  }
}

async function loadSources(sources: readonly SourceFile[], folder: string | null, rememberIt = true): Promise<void> {
  const fileSet = directFileSet(sources);
  const name = folder ?? 'Dropped files';
  const match = matchFor(sources, await getServices().store.listModels().catch(() => []));
  useApp.setState({
    notice: null,
    current: {
      name,
      mode: 'direct',
      fileSet,
      files: sources.map((s) => ({ name: s.name, size: s.size })).sort(byName),
      sources,
      storedId: null,
      summary: null,
      lone: null,
      inspecting: true,
      match,
    },
  });
  const { summary, lone } = await summarize(fileSet);
  const named = folder ?? summary?.architecture ?? lone?.file ?? name;
  useApp.setState((s) => (s.current?.fileSet === fileSet ? { current: { ...s.current, name: named, summary, lone, inspecting: false } } : {}));
  const saved = savedSourcesOf(sources);
  if (rememberIt && summary && saved) await remember(named, sources, saved, summary);
}

/** Keeps a checkpoint read through file handles in the recent list (best effort: the page works without it). */
async function remember(name: string, files: readonly SourceFile[], sources: SavedSource[], summary: CheckpointSummary): Promise<void> {
  const entry: RecentCheckpoint = {
    id: newLocalId(),
    name,
    files: files.map(({ name, size, lastModified }) => ({ name, size, lastModified })),
    sources,
    summary,
    openedAt: Date.now(),
  };
  try {
    useApp.setState({ recent: await rememberRecent(getServices().recent, entry) });
  } catch {
    // A browser that cannot keep handles in IndexedDB just has no recent list.
  }
}

export async function refreshRecent(): Promise<void> {
  try {
    useApp.setState({ recent: await getServices().recent.listRecent() });
  } catch {
    useApp.setState({ recent: [] });
  }
}

/** Opens a checkpoint read in place earlier from the same files (the browser may ask for permission: call from a click). */
export async function openRecent(r: RecentCheckpoint): Promise<void> {
  if (useApp.getState().ingest) return;
  try {
    await loadSources(await reopenSources(r.sources, r.files), r.name);
  } catch (e) {
    showError(e);
  }
}

export async function forgetRecent(id: string): Promise<void> {
  await getServices().recent.dropRecent(id).catch(() => undefined);
  await refreshRecent();
}

/** Copies the current dropped files into IndexedDB (or finishes an interrupted copy of them). */
export async function storeCurrent(): Promise<void> {
  const cur = useApp.getState().current;
  if (!cur?.sources || useApp.getState().ingest) return;
  const controller = new AbortController();
  useApp.setState({ ingest: { name: cur.name, progress: null, controller }, notice: null });
  try {
    const { store } = getServices();
    const res = await store.ingest(cur.name, cur.sources, {
      signal: controller.signal,
      summary: cur.summary,
      onIngest: (p) => useApp.setState((s) => (s.ingest ? { ingest: { ...s.ingest, progress: p } } : {})),
    });
    const fileSet = await store.openFileSet(res.record.id);
    useApp.setState((s) => ({
      current: s.current?.sources === cur.sources ? { ...s.current, mode: 'stored', storedId: res.record.id, fileSet, match: null } : s.current,
      notice: res.reused
        ? `${cur.name} was already stored in this browser; nothing was copied again.`
        : `${cur.name} is stored in this browser${res.resumed ? ' (resumed where it stopped)' : ''}${res.persisted ? '' : '; the browser may evict it under storage pressure'}.`,
    }));
  } catch (e) {
    showError(e);
  } finally {
    useApp.setState({ ingest: null });
    await refreshModels();
  }
}

export function cancelIngest(): void {
  useApp.getState().ingest?.controller.abort();
}

export async function openStored(m: StoredModel): Promise<void> {
  try {
    const { store } = getServices();
    const fileSet = await store.openFileSet(m.record.id);
    useApp.setState({
      notice: null,
      current: {
        name: m.record.name,
        mode: 'stored',
        fileSet,
        files: m.record.files.map((f) => ({ name: f.name, size: f.size })).sort(byName),
        sources: null,
        storedId: m.record.id,
        summary: m.record.summary,
        lone: null,
        inspecting: m.record.summary === null,
        match: null,
      },
    });
    if (m.record.summary === null) {
      const { summary, lone } = await summarize(fileSet);
      if (summary) await store.setSummary(m.record.id, summary).catch(() => undefined);
      useApp.setState((s) => (s.current?.fileSet === fileSet ? { current: { ...s.current, summary, lone, inspecting: false } } : {}));
    }
  } catch (e) {
    showError(e);
  }
}

export async function deleteStored(id: string): Promise<void> {
  try {
    await getServices().store.deleteModel(id);
    useApp.setState((s) => ({
      current: s.current?.storedId === id ? null : s.current?.match?.record.id === id ? { ...s.current, match: null } : s.current,
    }));
  } catch (e) {
    showError(e);
  } finally {
    await refreshModels();
  }
}
