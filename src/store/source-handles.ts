/**
 * File System Access handles of the files an ingest copies from, kept beside the partial copy so that after a
 * reload the ingest can resume from the same files without the user finding and dropping them again. Browsers
 * give handles for drops (DataTransferItem.getAsFileSystemHandle) and pickers; a handle is structured-cloneable,
 * so IndexedDB keeps it, and reading through it again needs the user's permission (asked on a click).
 */
import { createStore, del, entries, get, set, type UseStore } from 'idb-keyval';
import { MoePruneError } from '../core/errors.ts';
import type { CheckpointSummary } from '../models/types.ts';
import { matchesFiles, sameIdentity, type FileIdentity } from './records.ts';

/** The members of FileSystemFileHandle we use (typed here: TypeScript's DOM lib lacks the permission calls). */
export interface ReopenableFile {
  readonly kind: 'file';
  readonly name: string;
  getFile(): Promise<File>;
  queryPermission?(d: { mode: 'read' }): Promise<PermissionState>;
  requestPermission?(d: { mode: 'read' }): Promise<PermissionState>;
}

/** A dropped or picked folder: one permission request on it covers every file found inside it. */
export interface ReopenableDir {
  readonly kind: 'directory';
  readonly name: string;
  queryPermission?(d: { mode: 'read' }): Promise<PermissionState>;
  requestPermission?(d: { mode: 'read' }): Promise<PermissionState>;
}

/** A checkpoint file (its name inside the checkpoint folder), the handle it was read from, and the folder it came in. */
export interface SavedSource {
  readonly name: string;
  readonly handle: ReopenableFile;
  /** The same object for every file of one folder (IndexedDB's structured clone keeps shared references). */
  readonly root?: ReopenableDir;
}

/** What to keep to reopen these files later, or null when the browser gave no handle for one of them. */
export function savedSourcesOf(files: ReadonlyArray<{ name: string; handle?: ReopenableFile; root?: ReopenableDir }>): SavedSource[] | null {
  if (!files.every((f) => f.handle)) return null;
  return files.map((f) => ({ name: f.name, handle: f.handle!, ...(f.root && { root: f.root }) }));
}

type Permissioned = Pick<ReopenableFile, 'queryPermission' | 'requestPermission'>;

/** Read permission for a handle, asking the user only when the browser says it would (call from a click). */
async function readPermission(h: Permissioned): Promise<PermissionState> {
  const state = (await h.queryPermission?.({ mode: 'read' })) ?? 'granted';
  return state === 'prompt' ? ((await h.requestPermission?.({ mode: 'read' })) ?? 'denied') : state;
}

/** Where the handles of unfinished ingests are kept, by stored-model id. */
export interface SourceHandleStore {
  save(id: string, sources: readonly SavedSource[]): Promise<void>;
  load(id: string): Promise<readonly SavedSource[] | undefined>;
  drop(id: string): Promise<void>;
}

/**
 * A checkpoint the user read in place (nothing copied), kept so that after a reload it can be opened again from
 * the same files: the point of the no-copy mode is to not make users keep a second copy of a multi-GB model.
 */
export interface RecentCheckpoint {
  readonly id: string;
  readonly name: string;
  readonly files: readonly FileIdentity[];
  readonly sources: readonly SavedSource[];
  readonly summary: CheckpointSummary | null;
  readonly openedAt: number;
}

export interface RecentStore {
  /** Newest first. */
  listRecent(): Promise<RecentCheckpoint[]>;
  putRecent(r: RecentCheckpoint): Promise<void>;
  dropRecent(id: string): Promise<void>;
}

/** How many read-in-place checkpoints are remembered. */
export const MAX_RECENT = 5;

/**
 * Remembers a checkpoint read in place: replaces an entry of the very same files, keeps the newest MAX_RECENT.
 * Returns the new list.
 */
export async function rememberRecent(store: RecentStore, r: RecentCheckpoint): Promise<RecentCheckpoint[]> {
  const before = await store.listRecent();
  for (const old of before) if (old.id !== r.id && matchesFiles(old, r.files)) await store.dropRecent(old.id);
  await store.putRecent(r);
  const after = await store.listRecent();
  for (const old of after.slice(MAX_RECENT)) await store.dropRecent(old.id);
  return after.slice(0, MAX_RECENT);
}

/** Both stores in memory (Node tests): the same handle objects come back, as a structured clone of one behaves. */
export class MemoryHandleStore implements SourceHandleStore, RecentStore {
  readonly map = new Map<string, readonly SavedSource[]>();
  readonly recent = new Map<string, RecentCheckpoint>();
  async save(id: string, sources: readonly SavedSource[]): Promise<void> {
    this.map.set(id, [...sources]);
  }
  async load(id: string): Promise<readonly SavedSource[] | undefined> {
    return this.map.get(id);
  }
  async drop(id: string): Promise<void> {
    this.map.delete(id);
  }
  async listRecent(): Promise<RecentCheckpoint[]> {
    return [...this.recent.values()].sort((a, b) => b.openedAt - a.openedAt);
  }
  async putRecent(r: RecentCheckpoint): Promise<void> {
    this.recent.set(r.id, r);
  }
  async dropRecent(id: string): Promise<void> {
    this.recent.delete(id);
  }
}

export const HANDLE_DB_NAME = 'moe-prune-studio-handles';
const INGEST_KEY = 'ingest:';
const RECENT_KEY = 'recent:';

/** Handles in their own small IndexedDB database, apart from the weight chunks: ingest sources and recent in-place reads. */
export function createIdbHandleStore(): SourceHandleStore & RecentStore {
  let store: UseStore | undefined;
  const s = (): UseStore => (store ??= createStore(HANDLE_DB_NAME, 'handles'));
  return {
    save: (id, sources) => set(INGEST_KEY + id, sources, s()),
    load: (id) => get<SavedSource[]>(INGEST_KEY + id, s()),
    drop: (id) => del(INGEST_KEY + id, s()),
    async listRecent() {
      const all = await entries<string, unknown>(s());
      return all
        .filter(([k]) => String(k).startsWith(RECENT_KEY))
        .map(([, v]) => v as RecentCheckpoint)
        .sort((a, b) => b.openedAt - a.openedAt);
    },
    putRecent: (r) => set(RECENT_KEY + r.id, r, s()),
    dropRecent: (id) => del(RECENT_KEY + id, s()),
  };
}

/**
 * Opens every saved file again for `expected` (the stored record's files): asks for read permission where the
 * browser wants it (call from a click), and refuses, naming the file, when one is gone or changed since.
 */
export async function reopenSources(
  saved: readonly SavedSource[],
  expected: readonly FileIdentity[],
): Promise<Array<FileIdentity & { blob: File; handle: ReopenableFile; root?: ReopenableDir }>> {
  const byName = new Map(saved.map((s) => [s.name, s]));
  // One request per dropped folder covers its files: a checkpoint of 60 shards asks once, not 60 times.
  for (const root of new Set(saved.flatMap((s) => (s.root ? [s.root] : []))))
    if ((await readPermission(root)) !== 'granted')
      throw new MoePruneError('PermissionDenied', 'the browser did not allow reading this folder again; drop the same files to resume', root.name);
  const out: Array<FileIdentity & { blob: File; handle: ReopenableFile; root?: ReopenableDir }> = [];
  for (const want of expected) {
    const entry = byName.get(want.name);
    if (!entry) throw new MoePruneError('MissingFile', 'no saved way to reopen this file; drop the same files again to resume', want.name);
    const { handle, root } = entry;
    if ((await readPermission(handle)) !== 'granted')
      throw new MoePruneError('PermissionDenied', 'the browser did not allow reading this file again; drop the same files to resume', want.name);
    let file: File;
    try {
      file = await handle.getFile();
    } catch (e) {
      throw new MoePruneError('MissingFile', `cannot open the file any more (${(e as Error).message}); it was moved or deleted since it was last read`, want.name, { cause: e });
    }
    const got = { name: want.name, size: file.size, lastModified: file.lastModified };
    if (!sameIdentity(got, want))
      throw new MoePruneError('FileChanged', 'the file changed on disk since it was last read (size or modification time differ); drop the checkpoint again', want.name);
    out.push({ ...got, blob: file, handle, ...(root && { root }) });
  }
  return out;
}
