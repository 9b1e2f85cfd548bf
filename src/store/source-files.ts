import { BlobSource, MapFileSet, type FileSet } from '../formats/bytes.ts';
import type { ReopenableDir, ReopenableFile } from './source-handles.ts';
import type { SourceFile } from './weight-store.ts';

/** A picked or dropped file with the path it had under the dropped folder ('' or its own name for loose files). */
export interface PickedFile {
  readonly file: File;
  readonly path: string;
  /** Present when the browser gave a handle (drops in Chromium): lets an interrupted ingest resume after a reload. */
  readonly handle?: ReopenableFile;
  /** The dropped or picked folder the file was found in (one permission request covers all its files). */
  readonly root?: ReopenableDir;
}

/**
 * Names files relative to the checkpoint folder: when every path starts with the same top folder
 * (the folder the user dropped), that folder is dropped, so `Mixtral/config.json` becomes `config.json`
 * while `Mixtral/original/x.bin` keeps `original/x.bin`.
 */
export function toSourceFiles(picked: readonly PickedFile[]): SourceFile[] {
  const paths = picked.map((p) => (p.path || p.file.name).replace(/\\/g, '/').replace(/^\/+/, ''));
  const tops = new Set(paths.map((p) => (p.includes('/') ? p.slice(0, p.indexOf('/')) : '')));
  const strip = tops.size === 1 && !tops.has('') ? [...tops][0]!.length + 1 : 0;
  return picked.map((p, i) => ({
    name: paths[i]!.slice(strip),
    size: p.file.size,
    lastModified: p.file.lastModified,
    blob: p.file,
    ...(p.handle ? { handle: p.handle } : {}),
    ...(p.root ? { root: p.root } : {}),
  }));
}

/** "Read from the dropped files": a FileSet over the files themselves; nothing is copied. */
export function directFileSet(files: readonly SourceFile[]): FileSet {
  return new MapFileSet(files.map((f) => new BlobSource(f.name, f.blob)));
}

/** The dropped folder's name, or null for loose files (the caller then names the checkpoint from its config). */
export function checkpointName(picked: readonly PickedFile[]): string | null {
  const p = (picked[0]?.path ?? '').replace(/^\/+/, '');
  return p.includes('/') ? p.split('/')[0]! : null;
}
