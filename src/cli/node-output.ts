import { mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { MoePruneError } from '../core/errors.ts';
import type { OutputFolder } from '../export/write-checkpoint.ts';
import type { ByteSink } from '../formats/safetensors/writer.ts';

/**
 * A folder on disk that appears only when complete: files go to `<dir>.partial`, which is renamed to `<dir>`
 * by commit() and deleted by abort(). An existing non-empty `<dir>` is refused unless `force`.
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
    this.prepared = true;
  }

  async create(name: string): Promise<ByteSink> {
    await this.prepare();
    const path = join(this.partial, name);
    await mkdir(dirname(path), { recursive: true });
    const fh = await open(path, 'w');
    let pos = 0;
    return {
      async write(bytes) {
        try {
          let off = 0;
          while (off < bytes.byteLength) {
            const { bytesWritten } = await fh.write(bytes, off, bytes.byteLength - off, pos);
            off += bytesWritten;
            pos += bytesWritten;
          }
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code;
          throw new MoePruneError(code === 'ENOSPC' ? 'StorageFull' : 'IoError', code === 'ENOSPC' ? 'the disk is full' : (e as Error).message, path, { cause: e });
        }
      },
      async close() {
        await fh.close();
      },
    };
  }

  async commit(): Promise<void> {
    await this.prepare();
    if (await stat(this.dir).catch(() => null)) await rm(this.dir, { recursive: true, force: true });
    await rename(this.partial, this.dir);
  }

  async abort(): Promise<void> {
    await rm(this.partial, { recursive: true, force: true });
  }
}
