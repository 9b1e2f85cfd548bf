/**
 * File System Access handles of the files an ingest copies from, kept beside the partial copy so that after a
 * reload the ingest can resume from the same files without the user finding and dropping them again. Browsers
 * give handles for drops (DataTransferItem.getAsFileSystemHandle) and pickers; a handle is structured-cloneable,
 * so IndexedDB keeps it, and reading through it again needs the user's permission (asked on a click).
 */
import { createStore, del, get, set, type UseStore } from 'idb-keyval';
import { MoePruneError } from '../core/errors.ts';
import { sameIdentity, type FileIdentity } from './records.ts';

/** The members of FileSystemFileHandle we use (typed here: TypeScript's DOM lib lacks the permission calls). */
export interface ReopenableFile {
  readonly kind: 'file';
  readonly name: string;
  getFile(): Promise<File>;
  queryPermission?(d: { mode: 'read' }): Promise<PermissionState>;
  requestPermission?(d: { mode: 'read' }): Promise<PermissionState>;
}

/** A checkpoint file (its name inside the checkpoint folder) and the handle it was read from. */
export interface SavedSource {
  readonly name: string;
  readonly handle: ReopenableFile;
}

/** Where handles are kept, by stored-model id. */
export interface SourceHandleStore {
  save(id: string, sources: readonly SavedSource[]): Promise<void>;
  load(id: string): Promise<readonly SavedSource[] | undefined>;
  drop(id: string): Promise<void>;
}

/** Handles in memory (Node tests): the same objects come back, as a structured clone of a handle behaves. */
export class MemoryHandleStore implements SourceHandleStore {
  readonly map = new Map<string, readonly SavedSource[]>();
  async save(id: string, sources: readonly SavedSource[]): Promise<void> {
    this.map.set(id, [...sources]);
  }
  async load(id: string): Promise<readonly SavedSource[] | undefined> {
    return this.map.get(id);
  }
  async drop(id: string): Promise<void> {
    this.map.delete(id);
  }
}

export const HANDLE_DB_NAME = 'moe-prune-studio-handles';

/** Handles in their own small IndexedDB database, apart from the weight chunks. */
export function createIdbHandleStore(): SourceHandleStore {
  let store: UseStore | undefined;
  const s = (): UseStore => (store ??= createStore(HANDLE_DB_NAME, 'handles'));
  return {
    save: (id, sources) => set(id, sources.map((x) => ({ name: x.name, handle: x.handle })), s()),
    load: (id) => get<SavedSource[]>(id, s()),
    drop: (id) => del(id, s()),
  };
}

/**
 * Opens every saved file again for `expected` (the stored record's files): asks for read permission where the
 * browser wants it (call from a click), and refuses, naming the file, when one is gone or changed since.
 */
export async function reopenSources(saved: readonly SavedSource[], expected: readonly FileIdentity[]): Promise<Array<FileIdentity & { blob: File; handle: ReopenableFile }>> {
  const byName = new Map(saved.map((s) => [s.name, s.handle]));
  const out: Array<FileIdentity & { blob: File; handle: ReopenableFile }> = [];
  for (const want of expected) {
    const handle = byName.get(want.name);
    if (!handle) throw new MoePruneError('MissingFile', 'no saved way to reopen this file; drop the same files again to resume', want.name);
    let state: PermissionState = (await handle.queryPermission?.({ mode: 'read' })) ?? 'granted';
    if (state === 'prompt') state = (await handle.requestPermission?.({ mode: 'read' })) ?? 'denied';
    if (state !== 'granted')
      throw new MoePruneError('PermissionDenied', 'the browser did not allow reading this file again; drop the same files to resume', want.name);
    let file: File;
    try {
      file = await handle.getFile();
    } catch (e) {
      throw new MoePruneError('MissingFile', `cannot open the file any more (${(e as Error).message}); it was moved or deleted since the ingest started`, want.name, { cause: e });
    }
    const got = { name: want.name, size: file.size, lastModified: file.lastModified };
    if (!sameIdentity(got, want))
      throw new MoePruneError('FileChanged', 'the file changed on disk since the ingest started (size or modification time differ); drop the checkpoint again to store it anew', want.name);
    out.push({ ...got, blob: file, handle });
  }
  return out;
}
