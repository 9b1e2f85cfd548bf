/**
 * Export of the planned checkpoint from the page: representatives of ≥3-member clusters are resolved first
 * (parameter reads, on the GPU when there is one), then the checkpoint is streamed into a picked folder or
 * saved as downloads. Progress and cancel live here; the plan panel only renders them.
 */
import { create } from 'zustand';
import { asUserError, MoePruneError } from '../core/errors.ts';
import type { Progress } from '../core/progress.ts';
import type { FileSet } from '../formats/bytes.ts';
import { canPickDirectory, clickDownload, DirectoryOutputFolder, DownloadOutputFolder, pickDirectory, type DirectoryHandleLike } from '../export/browser-output.ts';
import type { OutputFolder } from '../export/write-checkpoint.ts';
import { exportExpertPruned, resolvePlan } from '../pipeline/expert-prune.ts';
import { adoptResolvedPlan, expertsRange, planCalibrationSettings, planSettings, usePlan } from './prune-state.ts';
import { getGpuContext, showError, useApp } from './state.ts';

export type ExportTarget = 'folder' | 'downloads';

export interface ExportDone {
  /** The model that was exported (the panel shows the result only while it is on screen). */
  readonly source: FileSet;
  readonly target: ExportTarget;
  /** Subfolder written (folder target) or null (downloads). */
  readonly folder: string | null;
  readonly files: ReadonlyArray<{ name: string; bytes: number }>;
  /** "4", or "3–5" for a per-layer variant. */
  readonly expertsPerLayer: string;
  /** Written as a per-layer variant (needs custom code to load). */
  readonly perLayer: boolean;
}

export interface ExportState {
  /** Where the next export goes (kept here so it survives the panel re-mounting). */
  target: ExportTarget;
  running: { target: ExportTarget; progress: Progress | null; controller: AbortController } | null;
  done: ExportDone | null;
  /** Last export ended by cancel or failure (the message), cleared on the next start. */
  stopped: string | null;
  /** The user chose to export a non-uniform (global) plan as a per-layer variant that needs custom code. */
  perLayerVariant: boolean;
}

export const useExport = create<ExportState>(() => ({ target: folderExportAvailable() ? 'folder' : 'downloads', running: null, done: null, stopped: null, perLayerVariant: false }));

export function setExportTarget(target: ExportTarget): void {
  useExport.setState({ target });
}

export function setPerLayerVariant(on: boolean): void {
  useExport.setState({ perLayerVariant: on });
}

/** Test-only: `?test=1&exportTo=opfs` writes "picked folder" exports into the origin-private file system. */
function testDirectoryRequested(): boolean {
  if (typeof location === 'undefined') return false;
  const q = new URLSearchParams(location.search);
  return q.get('test') === '1' && q.get('exportTo') === 'opfs';
}

/** Test-only: `?test=1&slowExport=<ms>` pauses after each file the export writes, so a test can cancel mid-export. */
function testExportDelayMs(): number {
  if (typeof location === 'undefined') return 0;
  const q = new URLSearchParams(location.search);
  const ms = Number(q.get('slowExport'));
  return q.get('test') === '1' && Number.isSafeInteger(ms) && ms > 0 ? ms : 0;
}

/** Wraps an output so every closed file is followed by a pause that ends early (as a cancel) on abort. */
function pausingAfterEachFile(out: OutputFolder, ms: number, signal: AbortSignal): OutputFolder {
  const pause = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const cancelled = (): void => (clearTimeout(t), reject(new MoePruneError('Cancelled', 'cancelled by the user')));
      const t = setTimeout(() => (signal.removeEventListener('abort', cancelled), resolve()), ms);
      if (signal.aborted) cancelled();
      else signal.addEventListener('abort', cancelled, { once: true });
    });
  return {
    async create(name) {
      const sink = await out.create(name);
      return {
        write: (bytes) => sink.write(bytes),
        async close() {
          await sink.close();
          await pause();
        },
      };
    },
    commit: () => out.commit(),
    abort: () => out.abort(),
  };
}

export function folderExportAvailable(): boolean {
  return canPickDirectory() || testDirectoryRequested();
}

/** A file-system-safe folder name: `<model>-pruned-<K>` (`<model>-pruned-3-5` for a per-layer variant). */
export function exportFolderName(model: string, k: number | string): string {
  const base = model.replace(/[\\/:*?"<>|\u0000-\u001f]+/g, '_').replace(/^\.+/, '').trim() || 'model';
  return `${base}-pruned-${k}`;
}

export async function startExport(target: ExportTarget): Promise<void> {
  const { model, plan, controls, numbers, exportProblems } = usePlan.getState();
  const cur = useApp.getState().current;
  const perLayer = numbers?.uniformK === null;
  if (!model || !plan || !controls || !numbers || exportProblems.length || !cur || useExport.getState().running) return;
  if (perLayer && !useExport.getState().perLayerVariant) return;
  const k = expertsRange(plan);
  let out: OutputFolder;
  let dirOut: DirectoryOutputFolder | null = null;
  if (target === 'folder') {
    const parent = testDirectoryRequested()
      ? ((await navigator.storage.getDirectory()) as unknown as DirectoryHandleLike)
      : await pickDirectory().catch((e: unknown) => (showError(e), null));
    if (!parent) return;
    out = dirOut = new DirectoryOutputFolder(parent, exportFolderName(cur.name, expertsRange(plan, '-')));
  } else out = new DownloadOutputFolder(clickDownload);

  const controller = new AbortController();
  const delayMs = testExportDelayMs();
  if (delayMs) out = pausingAfterEachFile(out, delayMs, controller.signal);
  useExport.setState({ running: { target, progress: null, controller }, stopped: null, done: null });
  const onProgress = (p: Progress): void => useExport.setState((s) => (s.running ? { running: { ...s.running, progress: p } } : {}));
  const gpu = getGpuContext();
  try {
    const resolved = await resolvePlan(model.cat, plan, gpu, { onProgress, signal: controller.signal });
    adoptResolvedPlan(plan, resolved);
    const result = await exportExpertPruned(model.cat, model.fileSet, resolved, out, {
      onProgress,
      signal: controller.signal,
      perLayerVariant: perLayer,
      tool: 'MoE Prune Studio (page)',
      settings: {
        ...planSettings(controls, model.cat),
        experts_per_layer: controls.mode === 'uniform' ? controls.keep : null,
        expert_sparsity: controls.mode === 'global' && controls.globalBy === 'sparsity' ? controls.sparsityPct / 100 : null,
        normalize_router: controls.normalize,
        per_layer_variant: perLayer,
        ...planCalibrationSettings(controls),
        device: gpu ? gpu.adapter.label : 'cpu',
        output: target,
      },
    });
    useExport.setState({ done: { source: model.fileSet, target, folder: dirOut?.name ?? null, files: result.files, expertsPerLayer: k, perLayer } });
  } catch (e) {
    const err = asUserError(e);
    useExport.setState({ stopped: err.code === 'Cancelled' ? 'Export cancelled; nothing usable was left behind.' : err.text });
    showError(err);
  } finally {
    useExport.setState({ running: null });
  }
}

export function cancelExport(): void {
  useExport.getState().running?.controller.abort();
}
