import { mkdir, open, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { MoePruneError } from '../core/errors.ts';
import { INCOMPLETE_MARKER, INCOMPLETE_MARKER_TEXT } from '../formats/export-marker.ts';
import type { OutputFolder } from '../export/write-checkpoint.ts';
import type { ByteSink } from '../formats/safetensors/writer.ts';


/**
 * A folder on disk that appears only when complete: files go to `<dir>.partial` (with an EXPORT_INCOMPLETE
 * marker, written first), which is renamed to `<dir>` by commit() and deleted by abort(). An existing non-empty `<dir>` is refused unless `force`.
 */
export class NodeOutputFolder implements OutputFolder {
  private readonly partial: string;
  private prepared = false;

  constructor(
    readonly dir: string,
    private readonly force = false,
  ) {
    this.partial = `${dir}.partial`;
  }

  private async prepare(): Promise<void> {
    if (this.prepared) return;
    const existing = await readdir(this.dir).catch(() => null);
    if (existing && existing.length && !this.force)
      throw new MoePruneError('InvalidArgument', 'output folder exists and is not empty (use --force to replace it)', this.dir);
    await rm(this.partial, { recursive: true, force: true });
    await mkdir(this.partial, { recursive: true });
    await writeFile(join(this.partial, INCOMPLETE_MARKER), INCOMPLETE_MARKER_TEXT);
    this.prepared = true;
  }

  async create(name: string): Promise<ByteSink> {
    await this.prepare();
    const path = join(this.partial, name);
    const shown = join(this.dir, name);
    const failed = (e: unknown): MoePruneError => {
      const code = (e as NodeJS.ErrnoException).code;
      // The export is aborted after this (the .partial folder is removed): say so, and that <dir> itself is untouched.
      const kept = `the unfinished export is removed and ${this.dir} is left as it was`;
      return code === 'ENOSPC' || code === 'EDQUOT'
        ? new MoePruneError('StorageFull', `the disk is full (while writing this file); ${kept}: free space and run again`, shown, { cause: e })
        : new MoePruneError('IoError', `cannot write (${(e as Error).message}); ${kept}`, shown, { cause: e });
    };
    let fh;
    try {
      await mkdir(dirname(path), { recursive: true });
      fh = await open(path, 'w');
    } catch (e) {
      throw failed(e);
    }
    let pos = 0;
    return {
      // fh.write has finished with the bytes when it resolves: the export refills its read buffers.
      releasesOnWrite: true,
      async write(bytes) {
        try {
          let off = 0;
          while (off < bytes.byteLength) {
            const { bytesWritten } = await fh.write(bytes, off, bytes.byteLength - off, pos);
            off += bytesWritten;
            pos += bytesWritten;
          }
        } catch (e) {
          throw failed(e);
        }
      },
      async close() {
        try {
          await fh.close();
        } catch (e) {
          throw failed(e);
        }
      },
    };
  }

  async commit(): Promise<void> {
    await this.prepare();
    if (await stat(this.dir).catch(() => null)) await rm(this.dir, { recursive: true, force: true });
    await rename(this.partial, this.dir);
    // Last: a crash between the two leaves a folder that is refused as unfinished, never one taken as complete.
    await rm(join(this.dir, INCOMPLETE_MARKER));
  }

  async abort(): Promise<void> {
    await rm(this.partial, { recursive: true, force: true });
  }
}
