import type { PickedFile } from '../store/source-files.ts';

/**
 * Collects the files of a drop, walking dropped folders recursively. Entries must be taken from the
 * DataTransfer synchronously inside the drop handler (the browser empties it afterwards), so
 * `takeDropped` runs in the handler and `collectDropped` awaits the walk.
 */

/** The two directory APIs browsers offer; only the members we call are described. */
interface DirectoryHandleLike {
  readonly kind: 'file' | 'directory';
  readonly name: string;
  getFile?(): Promise<File>;
  values?(): AsyncIterable<DirectoryHandleLike>;
}
type ItemWithHandle = DataTransferItem & { getAsFileSystemHandle?: () => Promise<DirectoryHandleLike | null> };

export type DroppedItem =
  | { readonly kind: 'entry'; readonly entry: FileSystemEntry }
  | { readonly kind: 'handle'; readonly handle: Promise<DirectoryHandleLike | null>; readonly file: File | null }
  | { readonly kind: 'file'; readonly file: File };

export function takeDropped(dt: DataTransfer): DroppedItem[] {
  const out: DroppedItem[] = [];
  const items = dt.items ? [...dt.items].filter((it) => it.kind === 'file') : [];
  for (const it of items) {
    const entry = typeof it.webkitGetAsEntry === 'function' ? it.webkitGetAsEntry() : null;
    if (entry) {
      out.push({ kind: 'entry', entry });
      continue;
    }
    const withHandle = it as ItemWithHandle;
    if (typeof withHandle.getAsFileSystemHandle === 'function') {
      out.push({ kind: 'handle', handle: withHandle.getAsFileSystemHandle(), file: it.getAsFile() });
      continue;
    }
    const file = it.getAsFile();
    if (file) out.push({ kind: 'file', file });
  }
  // Some synthetic or older drops fill `files` but not `items`.
  if (out.length === 0 && dt.files) for (const file of [...dt.files]) out.push({ kind: 'file', file });
  return out;
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

async function walkHandle(h: DirectoryHandleLike, prefix: string, out: PickedFile[]): Promise<void> {
  const path = prefix ? `${prefix}/${h.name}` : h.name;
  if (h.kind === 'file' && h.getFile) out.push({ file: await h.getFile(), path });
  else if (h.kind === 'directory' && h.values) for await (const child of h.values()) await walkHandle(child, path, out);
}

export async function collectDropped(items: readonly DroppedItem[]): Promise<PickedFile[]> {
  const out: PickedFile[] = [];
  for (const it of items) {
    if (it.kind === 'entry') await walkEntry(it.entry, '', out);
    else if (it.kind === 'handle') {
      const h = await it.handle.catch(() => null);
      if (h) await walkHandle(h, '', out);
      else if (it.file) out.push({ file: it.file, path: it.file.name });
    } else out.push({ file: it.file, path: it.file.name });
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
