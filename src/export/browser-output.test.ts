import { describe, expect, it } from 'vitest';
import { DirectoryOutputFolder, DownloadOutputFolder, INCOMPLETE_MARKER, REPORT_FILE, type DirectoryHandleLike, type FileHandleLike, type WritableLike } from './browser-output.ts';

/** An in-memory stand-in for a File System Access directory: files become visible on close, as in browsers. */
class FakeDir implements DirectoryHandleLike {
  readonly dirs = new Map<string, FakeDir>();
  readonly files = new Map<string, Uint8Array>();
  readonly log: string[];
  aborted = 0;
  constructor(
    readonly name: string,
    log: string[] = [],
  ) {
    this.log = log;
  }
  async getDirectoryHandle(name: string, o?: { create?: boolean }): Promise<DirectoryHandleLike> {
    let d = this.dirs.get(name);
    if (!d && o?.create) this.dirs.set(name, (d = new FakeDir(name, this.log)));
    if (!d) throw new DOMException('no such folder', 'NotFoundError');
    return d;
  }
  async getFileHandle(name: string, o?: { create?: boolean }): Promise<FileHandleLike> {
    if (!this.files.has(name) && !o?.create) throw new DOMException('no such file', 'NotFoundError');
    return {
      createWritable: async (): Promise<WritableLike> => {
        const parts: Uint8Array[] = [];
        return {
          write: async (data) => {
            parts.push(typeof data === 'string' ? new TextEncoder().encode(data) : new Uint8Array(data as ArrayBuffer));
          },
          close: async () => {
            const all = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
            let o = 0;
            for (const p of parts) all.set(p, (o += p.length) - p.length);
            this.files.set(name, all);
            this.log.push(`close ${this.name}/${name}`);
          },
          abort: async () => {
            this.aborted++;
          },
        };
      },
    };
  }
  async removeEntry(name: string): Promise<void> {
    this.log.push(`remove ${this.name}/${name}`);
    if (!this.files.delete(name) && !this.dirs.delete(name)) throw new DOMException('no such entry', 'NotFoundError');
  }
}

const text = (b: Uint8Array | undefined): string => new TextDecoder().decode(b);

describe('DirectoryOutputFolder', () => {
  it('writes the marker first, streams files into <name>, and removes the marker on commit', async () => {
    const root = new FakeDir('picked');
    const out = new DirectoryOutputFolder(root, 'mix-pruned-2');
    const sink = await out.create('config.json');
    await sink.write(new TextEncoder().encode('{"a":'));
    await sink.write(new TextEncoder().encode('1}'));
    await sink.close();
    const sub = root.dirs.get('mix-pruned-2')!;
    expect(out.name).toBe('mix-pruned-2');
    expect(root.log[0]).toBe(`close mix-pruned-2/${INCOMPLETE_MARKER}`);
    expect(text(sub.files.get('config.json'))).toBe('{"a":1}');
    expect(sub.files.has(INCOMPLETE_MARKER)).toBe(true);
    await out.commit();
    expect(sub.files.has(INCOMPLETE_MARKER)).toBe(false);
    expect([...sub.files.keys()]).toEqual(['config.json']);
  });

  it('never writes into an existing folder: picks <name>-2', async () => {
    const root = new FakeDir('picked');
    await root.getDirectoryHandle('m-pruned-4', { create: true });
    const out = new DirectoryOutputFolder(root, 'm-pruned-4');
    await (await out.create('x.json')).close();
    expect(out.name).toBe('m-pruned-4-2');
    expect(root.dirs.get('m-pruned-4')!.files.size).toBe(0);
  });

  it('abort aborts open writables and removes the subfolder', async () => {
    const root = new FakeDir('picked');
    const out = new DirectoryOutputFolder(root, 'm-pruned-4');
    await (await out.create('a.safetensors')).close();
    const open = await out.create('b.safetensors');
    await open.write(new Uint8Array([1, 2, 3]));
    const sub = root.dirs.get('m-pruned-4')!;
    await out.abort();
    expect(sub.aborted).toBe(1);
    expect(root.dirs.has('m-pruned-4')).toBe(false);
  });
});

describe('DownloadOutputFolder', () => {
  const write = async (out: DownloadOutputFolder, name: string, chunks: number[][]) => {
    const s = await out.create(name);
    for (const c of chunks) await s.write(new Uint8Array(c));
    await s.close();
  };

  it('saves each file whole once closed and the report last, only on commit', async () => {
    const saved: Array<[string, Blob]> = [];
    const out = new DownloadOutputFolder((n, b) => saved.push([n, b]));
    await write(out, 'model.safetensors', [[1, 2], [3]]);
    await write(out, REPORT_FILE, [[123]]);
    await write(out, 'README.md', [[65]]);
    expect(saved.map((s) => s[0])).toEqual(['model.safetensors', 'README.md']);
    expect([...new Uint8Array(await saved[0]![1].arrayBuffer())]).toEqual([1, 2, 3]);
    await out.commit();
    expect(saved.map((s) => s[0])).toEqual(['model.safetensors', 'README.md', REPORT_FILE]);
    expect([...new Uint8Array(await saved[2]![1].arrayBuffer())]).toEqual([123]);
  });

  it('abort never saves the report (so the downloads are not a finished export)', async () => {
    const saved: string[] = [];
    const out = new DownloadOutputFolder((n) => saved.push(n));
    await write(out, 'model.safetensors', [[1]]);
    await write(out, REPORT_FILE, [[2]]);
    await out.abort();
    await write(out, 'README.md', [[3]]);
    expect(saved).toEqual(['model.safetensors']);
    await expect(out.commit()).rejects.toThrow(/without a report/);
  });
});
