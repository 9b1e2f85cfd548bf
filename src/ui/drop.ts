import type { ReopenableDir, ReopenableFile } from '../store/source-handles.ts';
import type { PickedFile } from '../store/source-files.ts';

/**
 * Collects the files of a drop, walking dropped folders recursively. Entries must be taken from the
 * DataTransfer synchronously inside the drop handler (the browser empties it afterwards), so
 * `takeDropped` runs in the handler and `collectDropped` awaits the walk.
 */

/** A File System Access handle, as far as we call it (a file handle is also what resume reopens). */
export interface HandleLike {
  readonly kind: 'file' | 'directory';
  readonly name: string;
  getFile?(): Promise<File>;
  values?(): AsyncIterable<HandleLike>;
}
type ItemWithHandle = DataTransferItem & { getAsFileSystemHandle?: () => Promise<HandleLike | null> };

/**
 * One dropped item, every way the browser offers to read it. The handle (Chromium) is preferred: its files can be
 * reopened after a reload, so an interrupted ingest resumes without a new drop. The entry and the file are fallbacks.
 */
export interface DroppedItem {
  readonly handle: Promise<HandleLike | null> | null;
  readonly entry: FileSystemEntry | null;
  readonly file: File | null;
}

export function takeDropped(dt: DataTransfer): DroppedItem[] {
  const out: DroppedItem[] = [];
  const items = dt.items ? [...dt.items].filter((it) => it.kind === 'file') : [];
  for (const it of items) {
    const withHandle = it as ItemWithHandle;
    const handle = typeof withHandle.getAsFileSystemHandle === 'function' ? withHandle.getAsFileSystemHandle() : null;
    handle?.catch(() => undefined); // a refused handle is handled in collectDropped, not reported as unhandled
    const entry = typeof it.webkitGetAsEntry === 'function' ? it.webkitGetAsEntry() : null;
    const file = it.getAsFile();
    if (handle || entry || file) out.push({ handle, entry, file });
  }
  // Some synthetic or older drops fill `files` but not `items`.
  if (out.length === 0 && dt.files) for (const file of [...dt.files]) out.push({ handle: null, entry: null, file });
  return out;
}

/** A folder given as a handle (a picked folder; a drop hands its handle over the same way). */
export function droppedHandle(handle: HandleLike): DroppedItem {
  return { handle: Promise.resolve(handle), entry: null, file: null };
}

function isDir(e: FileSystemEntry): e is FileSystemDirectoryEntry {
  return e.isDirectory;
}
function isFile(e: FileSystemEntry): e is FileSystemFileEntry {
  return e.isFile;
}

function fileOf(e: FileSystemFileEntry): Promise<File> {
  return new Promise((resolve, reject) => e.file(resolve, reject));
}

/** readEntries returns at most ~100 entries per call; keep calling until it returns none. */
async function readAll(dir: FileSystemDirectoryEntry): Promise<FileSystemEntry[]> {
  const reader = dir.createReader();
  const all: FileSystemEntry[] = [];
  for (;;) {
    const batch = await new Promise<FileSystemEntry[]>((resolve, reject) => reader.readEntries(resolve, reject));
    if (batch.length === 0) return all;
    all.push(...batch);
  }
}

async function walkEntry(e: FileSystemEntry, prefix: string, out: PickedFile[]): Promise<void> {
  const path = prefix ? `${prefix}/${e.name}` : e.name;
  if (isFile(e)) out.push({ file: await fileOf(e), path });
  else if (isDir(e)) for (const child of await readAll(e)) await walkEntry(child, path, out);
}

/** `root`: the dropped folder, kept with each file so one permission request reopens them all after a reload. */
async function walkHandle(h: HandleLike, prefix: string, out: PickedFile[], root?: HandleLike): Promise<void> {
  const path = prefix ? `${prefix}/${h.name}` : h.name;
  if (h.kind === 'file' && h.getFile) out.push({ file: await h.getFile(), path, handle: h as ReopenableFile, ...(root && { root: root as ReopenableDir }) });
  else if (h.kind === 'directory' && h.values) for await (const child of h.values()) await walkHandle(child, path, out, root ?? h);
}

export async function collectDropped(items: readonly DroppedItem[]): Promise<PickedFile[]> {
  const out: PickedFile[] = [];
  for (const it of items) {
    const h = it.handle ? await it.handle.catch(() => null) : null;
    if (h) await walkHandle(h, '', out);
    else if (it.entry) await walkEntry(it.entry, '', out);
    else if (it.file) out.push({ file: it.file, path: it.file.name });
  }
  // Hidden files (.DS_Store, .git) are never part of a checkpoint.
  return out.filter((p) => !p.path.split('/').some((seg) => seg.startsWith('.')));
}

/** Files from an <input type=file> (with or without webkitdirectory). */
export function filesFromInput(list: FileList | null): PickedFile[] {
  return [...(list ?? [])]
    .map((file) => ({ file, path: file.webkitRelativePath || file.name }))
    .filter((p) => !p.path.split('/').some((seg) => seg.startsWith('.')));
}

type PickerWindow = {
  showDirectoryPicker?: (o?: { mode?: 'read' }) => Promise<HandleLike>;
  showOpenFilePicker?: (o?: { multiple?: boolean }) => Promise<HandleLike[]>;
};

/** Whether the browser has the File System Access picker for `what`. */
export function hasPicker(what: 'folder' | 'files', w: PickerWindow = window as unknown as PickerWindow): boolean {
  return typeof (what === 'folder' ? w.showDirectoryPicker : w.showOpenFilePicker) === 'function';
}

/**
 * Picks a folder or files through the File System Access pickers where the browser has them (Chromium), so the
 * files come with handles (reopenable after a reload, like a drop); null where it has none (use the file input).
 * A dismissed picker yields no files.
 */
export async function pickWithHandles(what: 'folder' | 'files', w: PickerWindow = window as unknown as PickerWindow): Promise<PickedFile[] | null> {
  if (!hasPicker(what, w)) return null;
  try {
    const handles = what === 'folder' ? [await w.showDirectoryPicker!({ mode: 'read' })] : await w.showOpenFilePicker!({ multiple: true });
    return await collectDropped(handles.map(droppedHandle));
  } catch (e) {
    if (e instanceof DOMException && e.name === 'AbortError') return [];
    throw e;
  }
}
