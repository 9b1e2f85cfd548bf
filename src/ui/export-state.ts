/**
 * Export of the planned checkpoint from the page: representatives of ≥3-member clusters are resolved first
 * (parameter reads, on the GPU when there is one), then the checkpoint is streamed into a picked folder or
 * streamed as one .zip download. Progress and cancel live here; the plan panel only renders them.
 */
import { create } from 'zustand';
import { asUserError, MoePruneError } from '../core/errors.ts';
import type { Progress } from '../core/progress.ts';
import type { FileSet } from '../formats/bytes.ts';
import { ArchiveOutputFolder, canPickDirectory, DirectoryOutputFolder, pickDirectory } from '../export/browser-output.ts';
import { openStreamDownload } from '../export/stream-download.ts';
import type { OutputFolder } from '../export/write-checkpoint.ts';
import { needsCalibrationText, resolveJobSettings, type Calibration, type Evaluation, type ExpertPlan, type JobSettings } from '../pipeline/job.ts';
import { calibrationSpec, chosenCalibrationText, stageOneEvaluation, taskEvaluationFor, useEval } from './eval-state.ts';
import { jobFor } from './job-state.ts';
import { adoptResolvedPlan, expertsRange, planSettings, usePlan } from './prune-state.ts';
import { currentDone, freshDone, freshEvaluation } from './stage2-state.ts';
import { tradeoffForExport } from './tradeoff-state.ts';
import { showError, useApp } from './state.ts';

export type ExportTarget = 'folder' | 'downloads';

export interface ExportDone {
  /** The model that was exported (the panel shows the result only while it is on screen). */
  readonly source: FileSet;
  readonly target: ExportTarget;
  /** Subfolder written (folder target) or the archive's file name (downloads). */
  readonly folder: string | null;
  /** What was written: into the folder, or into the archive (read back from the archive's own entries). */
  readonly files: ReadonlyArray<{ name: string; bytes: number }>;
  /** "4", or "3–5" for a per-layer variant. */
  readonly expertsPerLayer: string;
  /** Written as a per-layer variant (needs custom code to load). */
  readonly perLayer: boolean;
  /** Stage-2 masks written (method and achieved sparsity), or null for the expert plan alone. */
  readonly stage2: { readonly method: string; readonly achieved: number } | null;
  /** Whether measured perplexity went into the report. */
  readonly perplexity: boolean;
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

export function folderExportAvailable(): boolean {
  return canPickDirectory();
}

/** A file-system-safe folder name: `<model>-pruned-<K>` (`<model>-pruned-3-5` for a per-layer variant). */
export function exportFolderName(model: string, k: number | string): string {
  const base = model.replace(/[\\/:*?"<>|\u0000-\u001f]+/g, '_').replace(/^\.+/, '').trim() || 'model';
  return `${base}-pruned-${k}`;
}

/**
 * Why the export would not write what the page shows, or null: a stage-2 result whose settings no longer match the
 * controls is neither written nor silently dropped (run it again, or discard it).
 */
export function stage2ExportProblem(): string | null {
  const fileSet = useApp.getState().current?.fileSet ?? null;
  return currentDone(fileSet) && !freshDone()
    ? 'The stage-2 masks were computed with other settings than the ones on screen: run stage 2 again, or discard its result to export the expert plan alone.'
    : null;
}

/**
 * Exports through the model's job (`job.export`), as `moe-prune prune` does: the report's settings have the CLI's
 * shape, so `moe-prune prune --from-report` repeats the export. With a fresh stage-2 result its masks are written
 * and its plan is the one exported; otherwise the plan is resolved by the job (≥3-member clusters' representatives
 * from the weights). Perplexity measured on exactly the exported model goes into the report and the model card.
 */
export async function startExport(target: ExportTarget): Promise<void> {
  const { model, plan, controls, numbers, exportProblems } = usePlan.getState();
  const cur = useApp.getState().current;
  const perLayer = numbers?.uniformK === null;
  if (!model || !plan || !controls || !numbers || exportProblems.length || !cur || useExport.getState().running) return;
  if (perLayer && !useExport.getState().perLayerVariant) return;
  const stageTwoProblem = stage2ExportProblem();
  if (stageTwoProblem) {
    showError(new MoePruneError('InvalidPlan', stageTwoProblem));
    return;
  }
  const stage2 = freshDone();
  const k = expertsRange(plan);
  let out: OutputFolder;
  let dirOut: DirectoryOutputFolder | null = null;
  let zipOut: ArchiveOutputFolder | null = null;
  const folderName = exportFolderName(cur.name, expertsRange(plan, '-'));
  if (target === 'folder') {
    const parent = await pickDirectory().catch((e: unknown) => (showError(e), null));
    if (!parent) return;
    out = dirOut = new DirectoryOutputFolder(parent, folderName);
  } else out = zipOut = new ArchiveOutputFolder(folderName, openStreamDownload);

  const controller = new AbortController();
  const { signal } = controller;
  useExport.setState({ running: { target, progress: null, controller }, stopped: null, done: null });
  const onProgress = (p: Progress): void => useExport.setState((s) => (s.running ? { running: { ...s.running, progress: p } } : {}));
  try {
    const job = await jobFor(model.fileSet);
    let settings: JobSettings;
    let calibration: Calibration | null;
    let exported: ExpertPlan;
    let evaluation: Evaluation | null;
    if (stage2) {
      settings = { ...stage2.settings, perLayerVariant: perLayer };
      calibration = stage2.calibration;
      exported = stage2.plan;
      evaluation = freshEvaluation();
    } else {
      settings = resolveJobSettings({ experts: planSettings(controls, model.cat), unstructured: null, calibration: calibrationSpec(useEval.getState().calib), perLayerVariant: perLayer });
      calibration = needsCalibrationText(settings) ? await job.calibrate(await chosenCalibrationText(), settings.calibration, signal) : null;
      exported = await job.planExperts(settings.experts, calibration, { onProgress, signal });
      adoptResolvedPlan(plan, exported);
      evaluation = stageOneEvaluation(model.fileSet, exported);
    }
    const result = await job.export(
      out,
      { plan: exported, stage2: stage2?.result ?? null, settings, calibration, evaluation, task: taskEvaluationFor(model.fileSet, exported, stage2), tool: 'MoE Prune Studio (page)', tradeoff: tradeoffForExport(job, settings, exported, stage2?.result ?? null, evaluation) },
      { onProgress, signal },
    );
    useExport.setState({
      done: {
        source: model.fileSet,
        target,
        folder: dirOut?.name ?? zipOut?.archiveName ?? null,
        files: zipOut ? zipOut.files : result.files,
        expertsPerLayer: k,
        perLayer,
        stage2: stage2 ? { method: stage2.result.sparsity.method, achieved: stage2.result.sparsity.achieved } : null,
        perplexity: evaluation !== null,
      },
    });
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
