/**
 * `moe-prune prune --work-dir D`: the stage-2 work format (src/pipeline/work-folder.ts) in a folder on disk. Files are
 * written to a temporary name and renamed, so a kill mid-write leaves the old file or the new one.
 */
import { mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { StageTwoWork, type WorkAbout, type WorkFolder } from '../pipeline/work-folder.ts';

export class NodeFolder implements WorkFolder {
  constructor(readonly where: string) {}

  async read(name: string): Promise<Uint8Array | null> {
    try {
      return new Uint8Array(await readFile(join(this.where, name)));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
  }

  async write(name: string, data: Uint8Array): Promise<void> {
    const path = join(this.where, name);
    await writeFile(`${path}.tmp`, data);
    await rename(`${path}.tmp`, path);
  }

  async remove(name: string): Promise<void> {
    await rm(join(this.where, name), { force: true });
  }

  async list(): Promise<string[]> {
    return (await readdir(this.where)).filter((f) => !f.endsWith('.tmp'));
  }
}

export const NodeWorkDir = {
  /** Opens (or starts) the work folder of a job; a folder holding another job's progress is refused. */
  async open(dir: string, fingerprint: string, about?: WorkAbout): Promise<StageTwoWork> {
    await mkdir(dir, { recursive: true });
    return StageTwoWork.open(new NodeFolder(dir), fingerprint, { ...(about ? { about } : {}), hint: 'use another --work-dir, or delete this one to start again' });
  },
};
