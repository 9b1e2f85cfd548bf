import { MoePruneError } from '../core/errors.ts';
import { requireFile, type FileSet } from '../formats/bytes.ts';
import { INDEX_FILE, readShardIndex } from '../formats/safetensors/index-file.ts';
import { openSafetensors } from '../formats/safetensors/reader.ts';
import { getServices } from './services.ts';
import { collectDropped, droppedHandle, type HandleLike } from './drop.ts';
import { getGpuContext, loadPicked, useApp } from './state.ts';

/**
 * `window.__moePrune`, installed only with `?test=1`, lets end-to-end tests check what the page stored
 * without poking at IndexedDB themselves.
 */
export interface TestHooks {
  /** Bytes of one tensor as base64, read through the model's FileSet (stored id, or null = the model on screen). */
  readTensor(modelId: string | null, tensor: string): Promise<string>;
  models(): Promise<Array<{ id: string; name: string; complete: boolean; storedBytes: number; totalBytes: number }>>;
  current(): { name: string; mode: string; storedId: string | null; family: string | null } | null;
  /** The ingest benchmark (bench/ingest-bench.ts), loaded on first use so the app bundle does not carry it. */
  benchIngest(mb?: number, chunkSize?: number, repeats?: number): Promise<import('../../bench/ingest-bench.ts').IngestBenchResult>;
  /** Destroys the GPUDevice behind the app's back, as a driver reset would: the page must report it and stay usable. */
  loseGpu(): boolean;
  /** Loads a folder handle as a Chromium drop delivers one (tests pass an origin-private folder; synthetic drops carry no handles). */
  dropHandle(dir: HandleLike): Promise<void>;
}

declare global {
  interface Window {
    __moePrune?: TestHooks;
  }
}

function toBase64(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

async function shardOf(files: FileSet, tensor: string): Promise<string> {
  const index = files.get(INDEX_FILE);
  if (index) {
    const shard = (await readShardIndex(index)).weightMap.get(tensor);
    if (!shard) throw new MoePruneError('MissingTensor', `no tensor "${tensor}" in the weight map`, INDEX_FILE);
    return shard;
  }
  for (const name of files.names().filter((n) => n.endsWith('.safetensors')))
    if ((await openSafetensors(requireFile(files, name))).tensors.has(tensor)) return name;
  throw new MoePruneError('MissingTensor', `no tensor "${tensor}" in any .safetensors file`);
}

export function installTestHooks(): void {
  const { store } = getServices();
  window.__moePrune = {
    async readTensor(modelId, tensor) {
      const files = modelId ? await store.openFileSet(modelId) : useApp.getState().current?.fileSet;
      if (!files) throw new MoePruneError('InvalidArgument', 'no model is loaded');
      const file = await openSafetensors(requireFile(files, await shardOf(files, tensor)));
      return toBase64(await file.readBytes(tensor));
    },
    async models() {
      return (await store.listModels()).map((m) => ({
        id: m.record.id,
        name: m.record.name,
        complete: m.record.complete,
        storedBytes: m.storedBytes,
        totalBytes: m.record.totalBytes,
      }));
    },
    current() {
      const c = useApp.getState().current;
      return c ? { name: c.name, mode: c.mode, storedId: c.storedId, family: c.summary?.family ?? null } : null;
    },
    async benchIngest(mb, chunkSize, repeats) {
      const { runIngestBench } = await import('../../bench/ingest-bench.ts');
      return runIngestBench(mb, chunkSize, repeats);
    },
    async dropHandle(dir) {
      await loadPicked(await collectDropped([droppedHandle(dir)]));
    },
    loseGpu() {
      const ctx = getGpuContext();
      ctx?.device.destroy();
      return ctx !== undefined;
    },
  };
}
