/**
 * One pruning job per loaded model: the page's stores drive the same `PruneJob` as the CLI (prepare → calibrate →
 * plan experts → unstructured → evaluate → export), so the page's report has the CLI's settings and any page run can
 * be repeated with `moe-prune prune --from-report`. The job is opened once the GPU probe has settled (with the
 * page's GPU context, or none) and again when that context changes (a lost device, a reconnect).
 */
import { create } from 'zustand';
import { asUserError, type MoePruneError } from '../core/errors.ts';
import type { FileSet } from '../formats/bytes.ts';
import type { GpuContext } from '../gpu/device.ts';
import { PruneJob } from '../pipeline/job.ts';
import { getGpuContext, useApp } from './state.ts';

export interface JobState {
  /** The model the job belongs to. */
  source: FileSet | null;
  job: PruneJob | null;
  /** Why the job could not be opened (an incomplete checkpoint, say); the plan panel shows its own message. */
  error: string | null;
}

export const useJob = create<JobState>(() => ({ source: null, job: null, error: null }));

/** Resolves once the GPU probe at start-up has finished (so a model loaded at once still uses the GPU). */
export function gpuSettled(): Promise<void> {
  if (useApp.getState().gpu.status !== 'pending') return Promise.resolve();
  return new Promise((resolve) => {
    const stop = useApp.subscribe((s) => {
      if (s.gpu.status !== 'pending') {
        stop();
        resolve();
      }
    });
  });
}

let opening: { readonly fileSet: FileSet; readonly gpu: GpuContext | undefined; readonly promise: Promise<PruneJob> } | null = null;

/** The job of `fileSet` with the page's current GPU context, opened once (again only when the context changed). */
export async function jobFor(fileSet: FileSet): Promise<PruneJob> {
  await gpuSettled();
  const gpu = getGpuContext();
  if (!opening || opening.fileSet !== fileSet || opening.gpu !== gpu) {
    const entry = { fileSet, gpu, promise: PruneJob.open(fileSet, gpu) };
    opening = entry;
    entry.promise.then(
      (job) => {
        if (opening === entry) useJob.setState({ source: fileSet, job, error: null });
      },
      (e: unknown) => {
        // A failed open is tried again on the next call, not cached.
        if (opening !== entry) return;
        opening = null;
        useJob.setState({ source: fileSet, job: null, error: asUserError(e).text });
      },
    );
    if (useJob.getState().source !== fileSet) useJob.setState({ source: fileSet, job: null, error: null });
  }
  return opening.promise;
}

/** The job on screen for `fileSet`, if it is open already (for synchronous reads such as the expert share). */
export function openJob(fileSet: FileSet | null): PruneJob | null {
  const s = useJob.getState();
  return fileSet && s.source === fileSet ? s.job : null;
}

/**
 * Why a GPU step of `job` failed when its device was lost meanwhile: the loss (its message says what happened and
 * what to do), not the error the interrupted step happened to meet — WebGPU rejects pending reads with an AbortError,
 * which would read as a cancel. The loss is announced a moment after the reads fail, hence the short wait.
 */
export async function lostDevice(job: PruneJob | null): Promise<MoePruneError | undefined> {
  const gpu = job?.gpu;
  if (!gpu) return undefined;
  return gpu.lostError ?? Promise.race([gpu.lost, new Promise<undefined>((r) => setTimeout(r, 250, undefined))]);
}
