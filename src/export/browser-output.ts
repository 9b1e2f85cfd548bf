/**
 * OutputFolder implementations for the page: a folder the user picked (File System Access API, streaming
 * writes) and, where that API is missing, one streamed .zip download. Both make a partial export recognisable:
 * the folder carries an EXPORT_INCOMPLETE marker until commit (and is removed on abort); the archive has no
 * central directory until commit, so a cut-short one does not open at all.
 */
import { MoePruneError } from '../core/errors.ts';
import type { ByteSink } from '../formats/safetensors/writer.ts';
import type { OutputFolder } from './write-checkpoint.ts';
import { ZipWriter, type ArchiveSink } from './zip-stream.ts';
import { INCOMPLETE_MARKER, INCOMPLETE_MARKER_TEXT } from '../formats/export-marker.ts';

export { INCOMPLETE_MARKER };

/** The members of the File System Access API this module calls (not yet in TypeScript's DOM lib everywhere). */
export interface WritableLike {
  write(data: BufferSource | Blob | string): Promise<void>;
  close(): Promise<void>;
  abort(reason?: unknown): Promise<void>;
}
export interface FileHandleLike {
  createWritable(options?: { keepExistingData?: boolean }): Promise<WritableLike>;
}
export interface DirectoryHandleLike {
  readonly name: string;
  getDirectoryHandle(name: string, options?: { create?: boolean }): Promise<DirectoryHandleLike>;
  getFileHandle(name: string, options?: { create?: boolean }): Promise<FileHandleLike>;
  removeEntry(name: string, options?: { recursive?: boolean }): Promise<void>;
}

type PickerWindow = { showDirectoryPicker?: (options?: { mode?: 'read' | 'readwrite'; id?: string }) => Promise<DirectoryHandleLike> };

export function canPickDirectory(): boolean {
  return typeof window !== 'undefined' && typeof (window as unknown as PickerWindow).showDirectoryPicker === 'function';
}

/** Opens the browser's folder picker; null when the user closes it. */
export async function pickDirectory(): Promise<DirectoryHandleLike | null> {
  const picker = (window as unknown as PickerWindow).showDirectoryPicker;
  if (!picker) throw new MoePruneError('InvalidArgument', 'this browser cannot write into a folder (no File System Access API); use downloads');
  try {
    return await picker.call(window, { mode: 'readwrite', id: 'moe-prune-export' });
  } catch (e) {
    if (e instanceof DOMException && e.name === 'AbortError') return null;
    throw new MoePruneError('IoError', `cannot open the folder (${(e as Error).message})`, undefined, { cause: e });
  }
}

async function exists(parent: DirectoryHandleLike, name: string): Promise<boolean> {
  try {
    await parent.getDirectoryHandle(name);
    return true;
  } catch {
    try {
      await parent.getFileHandle(name);
      return true;
    } catch {
      return false;
    }
  }
}

/** `base`, or `base-2`, `base-3`, … : never writes into a folder that is already there. */
async function freeName(parent: DirectoryHandleLike, base: string): Promise<string> {
  for (let i = 1; i < 1000; i++) {
    const name = i === 1 ? base : `${base}-${i}`;
    if (!(await exists(parent, name))) return name;
  }
  throw new MoePruneError('IoError', `too many folders named ${base}-N already exist`, parent.name);
}

function ioError(e: unknown, file: string): MoePruneError {
  if (e instanceof MoePruneError) return e;
  if (e instanceof DOMException && e.name === 'QuotaExceededError')
    return new MoePruneError(
      'StorageFull',
      'the disk is full; the unfinished export folder is removed and nothing else in the picked folder is touched: free space and export again',
      file,
      { cause: e },
    );
  return new MoePruneError('IoError', `cannot write (${(e as Error).message})`, file, { cause: e });
}

/** Copies into a fresh ArrayBuffer-backed view (the writable accepts only such BufferSources). */
function ownBytes(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  return bytes.buffer instanceof ArrayBuffer ? (bytes as Uint8Array<ArrayBuffer>) : new Uint8Array(bytes);
}

/**
 * Streams into `<picked folder>/<name>` (a fresh subfolder). EXPORT_INCOMPLETE is written before anything else
 * and removed by commit(); abort() removes the subfolder.
 */
export class DirectoryOutputFolder implements OutputFolder {
  private dir: DirectoryHandleLike | null = null;
  private folderName: string | null = null;
  private readonly open = new Set<WritableLike>();

  constructor(
    private readonly parent: DirectoryHandleLike,
    private readonly baseName: string,
  ) {}

  /** The subfolder's name, once the first file was created. */
  get name(): string | null {
    return this.folderName;
  }

  private async prepare(): Promise<DirectoryHandleLike> {
    if (this.dir) return this.dir;
    const name = await freeName(this.parent, this.baseName);
    try {
      const dir = await this.parent.getDirectoryHandle(name, { create: true });
      this.folderName = name;
      const w = await (await dir.getFileHandle(INCOMPLETE_MARKER, { create: true })).createWritable();
      await w.write(INCOMPLETE_MARKER_TEXT);
      await w.close();
      this.dir = dir;
      return dir;
    } catch (e) {
      throw ioError(e, `${this.parent.name}/${name}`);
    }
  }

  async create(name: string): Promise<ByteSink> {
    if (name.includes('/')) throw new MoePruneError('InvalidArgument', 'nested output files are not supported', name);
    const dir = await this.prepare();
    const path = `${this.folderName}/${name}`;
    let w: WritableLike;
    try {
      w = await (await dir.getFileHandle(name, { create: true })).createWritable({ keepExistingData: false });
    } catch (e) {
      throw ioError(e, path);
    }
    this.open.add(w);
    const open = this.open;
    return {
      async write(bytes) {
        try {
          await w.write(ownBytes(bytes));
        } catch (e) {
          throw ioError(e, path);
        }
      },
      async close() {
        try {
          await w.close();
          open.delete(w);
        } catch (e) {
          throw ioError(e, path);
        }
      },
    };
  }

  async commit(): Promise<void> {
    const dir = await this.prepare();
    try {
      await dir.removeEntry(INCOMPLETE_MARKER);
    } catch (e) {
      throw ioError(e, `${this.folderName}/${INCOMPLETE_MARKER}`);
    }
  }

  async abort(): Promise<void> {
    for (const w of this.open) await w.abort().catch(() => undefined);
    this.open.clear();
    if (this.folderName) await this.parent.removeEntry(this.folderName, { recursive: true }).catch(() => undefined);
  }
}

/** Where an archive's bytes go: the page's streamed download, or a test's collector. */
export interface ArchiveTarget extends ArchiveSink {
  /** Every byte is written: the archive is complete. */
  close(): Promise<void>;
  /** Stops the archive; what was written is not a usable archive (the browser fails the download). */
  abort(reason: string): Promise<void>;
}
export type OpenArchive = (fileName: string) => Promise<ArchiveTarget>;

/**
 * Writes the export as ONE uncompressed .zip, `<name>.zip` holding the folder `<name>/`, streamed piece by piece
 * (browsers drop some of many downloads a page starts; one download has nothing to drop). A ZIP is readable only
 * once its central directory is written, by commit(): an archive cut short by cancel or failure is never mistaken for
 * a finished export, and abort() fails the download too.
 */
export class ArchiveOutputFolder implements OutputFolder {
  private zip: ZipWriter | null = null;
  private target: ArchiveTarget | null = null;
  private done = false;

  constructor(
    private readonly folder: string,
    private readonly open: OpenArchive,
  ) {}

  /** The file name the archive is saved under. */
  get archiveName(): string {
    return `${this.folder}.zip`;
  }

  /** The files the archive holds (after commit: all of them), by their names in the exported folder. */
  get files(): Array<{ name: string; bytes: number }> {
    const prefix = `${this.folder}/`;
    return (this.zip?.files ?? []).map((f) => ({ name: f.name.slice(prefix.length), bytes: f.bytes }));
  }

  private async start(): Promise<ZipWriter> {
    if (this.zip) return this.zip;
    const target = await this.open(this.archiveName);
    this.target = target;
    this.zip = new ZipWriter(target);
    return this.zip;
  }

  async create(name: string): Promise<ByteSink> {
    if (name.includes('/')) throw new MoePruneError('InvalidArgument', 'nested output files are not supported', name);
    const zip = await this.start();
    return zip.add(`${this.folder}/${name}`);
  }

  async commit(): Promise<void> {
    const zip = await this.start();
    await zip.finish();
    await this.target!.close();
    this.done = true;
  }

  async abort(): Promise<void> {
    if (this.done || !this.target) return;
    await this.target.abort('the export was cancelled or failed; this archive is incomplete').catch(() => undefined);
  }
}
