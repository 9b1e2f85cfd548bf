/**
 * A work folder in the page's origin-private file system (OPFS): the backend of the stage-2 work format
 * (src/pipeline/work-folder.ts) in the browser, as a folder on disk is in the CLI. A writable stream writes a swap
 * file that replaces the file on close, so a reload or a crash mid-write leaves the old bytes or the new ones.
 */
import { MoePruneError } from '../core/errors.ts';
import type { WorkFolder } from '../pipeline/job.ts';

type ListableDirectory = FileSystemDirectoryHandle & { keys(): AsyncIterable<string> };

const notFound = (e: unknown): boolean => e instanceof DOMException && (e.name === 'NotFoundError' || e.name === 'TypeMismatchError');

export class OpfsFolder implements WorkFolder {
  private constructor(
    private readonly dir: FileSystemDirectoryHandle,
    readonly where: string,
  ) {}

  /** The folder `name` in the origin-private root (created when missing), or null where the browser has no OPFS. */
  static async open(name: string): Promise<OpfsFolder | null> {
    const storage = typeof navigator !== 'undefined' ? navigator.storage : undefined;
    if (!storage || typeof storage.getDirectory !== 'function') return null;
    try {
      const root = await storage.getDirectory();
      return new OpfsFolder(await root.getDirectoryHandle(name, { create: true }), `browser storage: ${name}`);
    } catch {
      // Private windows of some browsers refuse the origin-private file system: the page then runs without it.
      return null;
    }
  }

  async read(name: string): Promise<Uint8Array | null> {
    let file: File;
    try {
      file = await (await this.dir.getFileHandle(name)).getFile();
    } catch (e) {
      if (notFound(e)) return null;
      throw e;
    }
    return new Uint8Array(await file.arrayBuffer());
  }

  async write(name: string, data: Uint8Array): Promise<void> {
    const handle = await this.dir.getFileHandle(name, { create: true });
    const w = await handle.createWritable();
    try {
      await w.write(data as Uint8Array<ArrayBuffer>);
      await w.close();
    } catch (e) {
      await w.abort().catch(() => undefined);
      if (e instanceof DOMException && e.name === 'QuotaExceededError')
        throw new MoePruneError('StorageFull', 'the browser storage quota is full: stage-2 progress cannot be saved; free space or delete a stored model', this.where);
      throw e;
    }
  }

  async remove(name: string): Promise<void> {
    try {
      await this.dir.removeEntry(name);
    } catch (e) {
      if (!notFound(e)) throw e;
    }
  }

  async list(): Promise<string[]> {
    const out: string[] = [];
    for await (const name of (this.dir as ListableDirectory).keys()) out.push(name);
    return out;
  }
}
