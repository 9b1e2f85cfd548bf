import { describe, expect, it } from 'vitest';
import { ArchiveOutputFolder, DirectoryOutputFolder, INCOMPLETE_MARKER, type DirectoryHandleLike, type FileHandleLike, type WritableLike } from './browser-output.ts';

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

describe('ArchiveOutputFolder', () => {
  /** A target that keeps the archive's bytes and how it ended. */
  function target() {
    const parts: Uint8Array[] = [];
    const t = {
      name: '',
      closed: false,
      aborted: null as string | null,
      bytes: () => Buffer.concat(parts),
      open: async (name: string) => {
        t.name = name;
        return {
          write: async (b: Uint8Array) => void parts.push(b.slice()),
          close: async () => void (t.closed = true),
          abort: async (reason: string) => void (t.aborted = reason),
        };
      },
    };
    return t;
  }
  const write = async (out: ArchiveOutputFolder, name: string, chunks: number[][]) => {
    const s = await out.create(name);
    for (const c of chunks) await s.write(new Uint8Array(c));
    await s.close();
  };

  it('streams every file into <name>.zip under the folder <name>/ and lists what the archive holds', async () => {
    const t = target();
    const out = new ArchiveOutputFolder('m-pruned-2', t.open);
    await write(out, 'model.safetensors', [[1, 2], [3]]);
    await write(out, 'prune-report.json', [[123]]);
    expect(t.name).toBe('m-pruned-2.zip');
    expect(out.files).toEqual([
      { name: 'model.safetensors', bytes: 3 },
      { name: 'prune-report.json', bytes: 1 },
    ]);
    const before = t.bytes().length;
    await out.commit();
    expect(t.closed).toBe(true);
    const zip = t.bytes();
    expect(zip.length).toBeGreaterThan(before); // the central directory came with commit
    expect(zip.includes(Buffer.from('m-pruned-2/model.safetensors'))).toBe(true);
    expect(zip.readUInt32LE(zip.length - 22)).toBe(0x06054b50); // ends with the end-of-central-directory record
    await out.abort(); // after commit: nothing to undo
    expect(t.aborted).toBeNull();
  });

  it('abort fails the download and never writes a central directory', async () => {
    const t = target();
    const out = new ArchiveOutputFolder('m', t.open);
    await write(out, 'model.safetensors', [[1]]);
    await out.abort();
    expect(t.aborted).toMatch(/incomplete/);
    expect(t.closed).toBe(false);
    expect(t.bytes().includes(Buffer.from([0x50, 0x4b, 0x05, 0x06]))).toBe(false);
  });

  it('refuses nested names', async () => {
    await expect(new ArchiveOutputFolder('m', target().open).create('a/b')).rejects.toThrow(/nested/);
  });
});
