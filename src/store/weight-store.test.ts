import { beforeAll, describe, expect, it } from 'vitest';
import { MemoryKv } from './kv.ts';
import { keys } from './records.ts';
import { directFileSet, toSourceFiles } from './source-files.ts';
import { MemoryHandleStore, type ReopenableFile } from './source-handles.ts';
import { fixedStorageAccess } from './storage-access.ts';
import { WeightStore, type IngestProgress, type SourceFile } from './weight-store.ts';
import { rejection } from '../../tests/errors.ts';

function randomBytes(n: number, seed: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

function source(name: string, bytes: Uint8Array<ArrayBuffer>, lastModified = 1000): SourceFile {
  return { name, size: bytes.byteLength, lastModified, blob: new Blob([bytes]) };
}

let format: 'blob' | 'bytes' = 'blob';

function makeStore(kv = new MemoryKv(), chunkSize = 1000) {
  let n = 0;
  return new WeightStore(kv, { chunkSize, chunkFormat: format, storage: fixedStorageAccess(1e9), newId: () => `m${++n}`, now: () => 1_000_000 + n });
}

/** Bytes of a stored chunk value, whichever format it was written in. */
async function chunkBytes(v: unknown): Promise<Uint8Array> {
  if (v instanceof Blob) return new Uint8Array(await v.arrayBuffer());
  if (v instanceof ArrayBuffer) return new Uint8Array(v);
  throw new Error(`not a chunk value: ${String(v)}`);
}

const a = randomBytes(2500, 1);
const b = randomBytes(1000, 2);
const files = () => [source('model-00001-of-00002.safetensors', a), source('model-00002-of-00002.safetensors', b), source('config.json', new TextEncoder().encode('{"x":1}'))];

describe.each(['blob', 'bytes'] as const)('chunks written as %s', (f) => {
  beforeAll(() => {
    format = f;
  });

  describe('WeightStore ingest and read-back', () => {
    it('splits each file into bounded chunks and reads any range back byte-identical', async () => {
      const kv = new MemoryKv();
      const store = makeStore(kv);
      const res = await store.ingest('tiny', files());
      expect(res.record.complete).toBe(true);
      expect(res.writtenBytes).toBe(2500 + 1000 + 7);
      expect(res.persisted).toBe(true);
      const c2 = kv.map.get(keys.chunk('m1', 'model-00001-of-00002.safetensors', 2));
      expect(c2 instanceof Blob).toBe(format === 'blob');
      expect(await chunkBytes(c2)).toEqual(a.slice(2000, 2500));
      expect(kv.map.has(keys.chunk('m1', 'model-00001-of-00002.safetensors', 3))).toBe(false);
      expect(kv.map.get(keys.fileLengths('m1', 'model-00001-of-00002.safetensors'))).toEqual([1000, 1000, 500]);

      const fs = await store.openFileSet('m1');
      expect(fs.names()).toEqual(['config.json', 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']);
      const src = fs.get('model-00001-of-00002.safetensors')!;
      expect(src.size).toBe(2500);
      for (const [off, len] of [[0, 2500], [999, 2], [1500, 1000], [2499, 1], [0, 0], [10, 1990]] as const)
        expect(await src.read(off, len)).toEqual(a.slice(off, off + len));
      expect((await rejection(src.read(2000, 501))).code).toBe('TruncatedFile');
    });

    it('reports per-file and overall progress ending at the total', async () => {
      const seen: IngestProgress[] = [];
      await makeStore().ingest('tiny', files(), { onIngest: (p) => seen.push(p) });
      const last = seen[seen.length - 1]!;
      expect(last.done).toBe(3507);
      expect(last.total).toBe(3507);
      expect(last.file).toBe('config.json');
      const firstFile = seen.filter((p) => p.fileIndex === 0).map((p) => p.fileDone);
      expect(firstFile).toEqual([0, 1000, 2000, 2500]);
      for (let i = 1; i < seen.length; i++) expect(seen[i]!.done).toBeGreaterThanOrEqual(seen[i - 1]!.done);
    });

    it('slices at most one chunk at a time; blob chunks never pass through script memory, byte chunks at most two', async () => {
      const big = randomBytes(10_000, 3);
      const slices: number[] = [];
      let outstanding = 0;
      let peak = 0;
      let reads = 0;
      const blob = new Blob([big]);
      const spy = {
        size: big.byteLength,
        slice(s: number, e: number) {
          slices.push(e - s);
          const part = blob.slice(s, e);
          const read = part.arrayBuffer.bind(part);
          part.arrayBuffer = async () => {
            reads++;
            outstanding++;
            peak = Math.max(peak, outstanding);
            const buf = await read();
            outstanding--;
            return buf;
          };
          return part;
        },
      } as unknown as Blob;
      const store = makeStore();
      const res = await store.ingest('big', [{ name: 'w.safetensors', size: big.byteLength, lastModified: 1, blob: spy }]);
      expect(slices.length).toBe(10);
      expect(Math.max(...slices)).toBe(1000);
      if (format === 'blob') expect(reads).toBe(0);
      else {
        expect(reads).toBe(10);
        expect(peak).toBeLessThanOrEqual(2);
      }
      expect(await (await store.openFileSet(res.record.id)).get('w.safetensors')!.read(4321, 3000)).toEqual(big.slice(4321, 7321));
    });
  });

  describe('WeightStore resume, dedupe and delete', () => {
    it('resumes a cancelled ingest where it stopped and rewrites only missing chunks', async () => {
      const kv = new MemoryKv();
      const store = makeStore(kv);
      const ac = new AbortController();
      const err = await rejection(
        store.ingest('tiny', files(), {
          signal: ac.signal,
          onIngest: (p) => {
            if (p.done >= 2000) ac.abort();
          },
        }),
      );
      expect(err.code).toBe('Cancelled');
      const [listed] = await store.listModels();
      expect(listed!.record.complete).toBe(false);
      expect(listed!.storedBytes).toBe(2000);
      expect((await rejection(store.openFileSet('m1'))).code).toBe('StorageError');

      const writesBefore = kv.writes;
      const res = await store.ingest('tiny again', files());
      expect(res.resumed).toBe(true);
      expect(res.record.id).toBe('m1');
      expect(res.skippedBytes).toBe(2000);
      expect(res.writtenBytes).toBe(1507);
      // 3 chunks left (500 + 1000 + 7 bytes) plus the record at start and at the end.
      expect(kv.writes - writesBefore).toBe(5);
      const fs = await store.openFileSet('m1');
      expect(await fs.get('model-00001-of-00002.safetensors')!.read(0, 2500)).toEqual(a);
      expect(await fs.get('model-00002-of-00002.safetensors')!.read(0, 1000)).toEqual(b);
    });

    it('verifies each stored chunk length on resume: a short or missing chunk is rewritten', async () => {
      const kv = new MemoryKv();
      const store = makeStore(kv);
      await store.ingest('tiny', files());
      const name = 'model-00001-of-00002.safetensors';
      // Damage: chunk 0 recorded short, chunk 2 gone.
      kv.map.set(keys.chunk('m1', name, 0), new ArrayBuffer(10));
      kv.map.set(keys.fileLengths('m1', name), [10, 1000, 500]);
      kv.map.delete(keys.chunk('m1', name, 2));
      kv.map.set(keys.model('m1'), { ...(kv.map.get(keys.model('m1')) as object), complete: false });
      expect((await store.listModels())[0]!.storedBytes).toBe(1000 + 1000 + 7);

      const res = await store.ingest('tiny', files());
      expect(res.resumed).toBe(true);
      expect(res.writtenBytes).toBe(1500);
      expect(await (await store.openFileSet('m1')).get(name)!.read(0, 2500)).toEqual(a);
    });

    it('a short chunk found while reading is a TruncatedFile error naming the file', async () => {
      const kv = new MemoryKv();
      const store = makeStore(kv);
      await store.ingest('tiny', files());
      const name = 'model-00002-of-00002.safetensors';
      kv.map.set(keys.chunk('m1', name, 0), new ArrayBuffer(999));
      const err = await rejection((await store.openFileSet('m1')).get(name)!.read(0, 4));
      expect(err.code).toBe('TruncatedFile');
      expect(err.message).toContain(name);
      expect(err.message).toContain('999');
    });

    it('does not copy the same files twice; a changed file makes a new model', async () => {
      const kv = new MemoryKv();
      const store = makeStore(kv);
      await store.ingest('tiny', files());
      const writes = kv.writes;
      const again = await store.ingest('tiny', files());
      expect(again.reused).toBe(true);
      expect(again.record.id).toBe('m1');
      expect(kv.writes).toBe(writes);
      const touched = [source('model-00001-of-00002.safetensors', a, 2000), ...files().slice(1)];
      const other = await store.ingest('tiny', touched);
      expect(other.record.id).toBe('m2');
      expect((await store.listModels()).length).toBe(2);
    });

    it('delete removes every chunk and the record', async () => {
      const kv = new MemoryKv();
      const store = makeStore(kv);
      await store.ingest('one', files());
      await store.ingest('two', [source('x.bin', b)]);
      expect(kv.usedBytes()).toBeGreaterThan(4500);
      await store.deleteModel('m1');
      expect([...kv.map.keys()].some((k) => k.startsWith('model:m1'))).toBe(false);
      expect((await store.listModels()).map((m) => m.record.name)).toEqual(['two']);
      expect(await (await store.openFileSet('m2')).get('x.bin')!.read(0, 1000)).toEqual(b);
    });
  });

  describe('WeightStore storage limits', () => {
    it('refuses before writing anything when the model cannot fit, naming sizes and the no-copy mode', async () => {
      const kv = new MemoryKv();
      const storage = fixedStorageAccess(10_000, 8_000);
      const store = new WeightStore(kv, { chunkSize: 1000, storage });
      const err = await rejection(store.ingest('tiny', files()));
      expect(err.code).toBe('StorageFull');
      expect(err.message).toContain('tiny');
      expect(err.message).toContain('3.51 kB');
      expect(err.message).toContain('2.00 kB');
      expect(err.message).toContain('read from the dropped files');
      expect(kv.map.size).toBe(0);
      expect(storage.persistCalls).toBe(0);
    });

    it('a quota error mid-write names the file and chunk, keeps what is stored, and resume finishes later', async () => {
      const kv = new MemoryKv(2200);
      const store = makeStore(kv);
      const err = await rejection(store.ingest('tiny', files()));
      expect(err.code).toBe('StorageFull');
      expect(err.message).toContain('model-00001-of-00002.safetensors');
      expect(err.message).toContain('writing chunk 2');
      const [m] = await store.listModels();
      expect(m!.storedBytes).toBe(2000);
      expect(await chunkBytes(kv.map.get(keys.chunk('m1', 'model-00001-of-00002.safetensors', 1)))).toEqual(a.slice(1000, 2000));

      const roomy = new MemoryKv();
      for (const [k, v] of kv.map) roomy.map.set(k, v);
      const res = await makeStore(roomy).ingest('tiny', files());
      expect(res.resumed).toBe(true);
      expect(res.writtenBytes).toBe(1507);
    });

    it('a quota error mid-ingest leaves every earlier stored model listed, complete and readable', async () => {
      const kv = new MemoryKv(6000);
      const store = makeStore(kv);
      await store.ingest('first', [source('a.safetensors', a)]);
      const err = await rejection(store.ingest('second', [source('b.safetensors', randomBytes(5000, 7))]));
      expect([err.code, err.file]).toEqual(['StorageFull', 'b.safetensors']);
      expect(err.message).toMatch(/the browser's storage for this page is full .*other stored models are untouched/);
      const listed = await store.listModels();
      expect(listed.map((m) => [m.record.name, m.record.complete])).toEqual([['second', false], ['first', true]]);
      expect(await (await store.openFileSet('m1')).get('a.safetensors')!.read(0, 2500)).toEqual(a);
    });

    it('a chunk whose source file changed on disk since the drop (Chromium: InvalidBlob) is FileChanged naming the file', async () => {
      const kv = new MemoryKv();
      let n = 0;
      kv.beforeSet = () => {
        if (++n === 3) throw new DOMException('Failed to write blobs (InvalidBlob)', 'UnknownError');
      };
      const err = await rejection(makeStore(kv).ingest('tiny', files()));
      expect([err.code, err.file]).toEqual(['FileChanged', 'model-00001-of-00002.safetensors']);
      expect(err.message).toMatch(/changed on disk .*writing chunk 1.*1\.00 kB of 3\.51 kB already stored are kept/);
    });

    it('another IndexedDB failure is a StorageError, not a cancel', async () => {
      const kv = new MemoryKv();
      let n = 0;
      kv.beforeSet = () => {
        if (++n === 3) throw new DOMException('transaction aborted', 'AbortError');
      };
      const err = await rejection(makeStore(kv).ingest('tiny', files()));
      expect(err.code).toBe('StorageError');
      expect(err.message).toContain('writing chunk 1');
    });
  });

});

/** A file handle as a browser gives one for a drop: `file()` is what getFile() returns now (tests change it). */
function fakeHandle(name: string, file: () => File, permission: PermissionState = 'granted'): ReopenableFile & { asked: number } {
  let state = permission;
  const h = {
    kind: 'file' as const,
    name,
    asked: 0,
    getFile: async () => file(),
    queryPermission: async () => state,
    requestPermission: async () => {
      h.asked++;
      if (state === 'prompt') state = 'granted';
      return state;
    },
  };
  return h;
}

describe('resume after a reload from saved file handles (no new drop)', () => {
  const bytesOf: Record<string, Uint8Array<ArrayBuffer>> = { 'a.safetensors': a, 'b.safetensors': b };
  const withHandles = (permission: PermissionState = 'granted', changed: Record<string, Uint8Array<ArrayBuffer>> = {}) =>
    Object.entries(bytesOf).map(([name, bytes]) => {
      const file = () => new File([changed[name] ?? bytes], name, { lastModified: 1000 });
      return { ...source(name, bytes), handle: fakeHandle(name, file, permission) };
    });
  const make = (handles: MemoryHandleStore, kv = new MemoryKv()) => {
    let n = 0;
    return new WeightStore(kv, { chunkSize: 1000, storage: fixedStorageAccess(1e9), newId: () => `m${++n}`, handles });
  };
  async function interrupted(handles: MemoryHandleStore, sources: SourceFile[], kv = new MemoryKv()) {
    const store = make(handles, kv);
    const ac = new AbortController();
    const onIngest = (p: IngestProgress) => void (p.done >= 2000 && ac.abort());
    expect((await rejection(store.ingest('tiny', sources, { signal: ac.signal, onIngest }))).code).toBe('Cancelled');
    return { store, kv };
  }

  it('keeps the handles of an unfinished ingest, reopens them, resumes, and forgets them once complete', async () => {
    const handles = new MemoryHandleStore();
    const { store, kv } = await interrupted(handles, withHandles('prompt'));
    expect([...handles.map.get('m1')!].map((x) => x.name)).toEqual(['a.safetensors', 'b.safetensors']);
    // A "reload": a new store over the same database.
    const again = make(handles, kv);
    const [listed] = await again.listModels();
    expect(listed!.reopenable).toBe(true);
    const reopened = await again.reopenSources('m1');
    expect(reopened.map((f) => f.name)).toEqual(['a.safetensors', 'b.safetensors']);
    expect((reopened[0]!.handle as ReturnType<typeof fakeHandle>).asked).toBe(1);
    const res = await again.ingest('tiny', reopened);
    expect(res.resumed).toBe(true);
    expect(res.skippedBytes).toBe(2000);
    expect(await (await again.openFileSet('m1')).get('a.safetensors')!.read(0, 2500)).toEqual(a);
    expect(handles.map.has('m1')).toBe(false);
    expect((await again.listModels())[0]!.reopenable).toBe(false);
    expect((await store.listModels())[0]!.record.complete).toBe(true);
  });

  it('names the file that changed or that the browser will not let us read, and keeps the partial copy', async () => {
    const handles = new MemoryHandleStore();
    const { kv } = await interrupted(handles, withHandles());
    expect((await make(handles, kv).reopenSources('m1')).map((f) => f.size)).toEqual([2500, 1000]);
    // The saved handles now read a file with other bytes (the user edited it): refused, naming it.
    handles.map.set('m1', withHandles('granted', { 'b.safetensors': randomBytes(999, 9) }).map((f) => ({ name: f.name, handle: f.handle })));
    const err = await rejection(make(handles, kv).reopenSources('m1'));
    expect(err.code).toBe('FileChanged');
    expect(err.file).toBe('b.safetensors');
    handles.map.set('m1', withHandles('denied').map((f) => ({ name: f.name, handle: f.handle })));
    const denied = await rejection(make(handles, kv).reopenSources('m1'));
    expect(denied.code).toBe('PermissionDenied');
    expect(denied.file).toBe('a.safetensors');
    expect((await make(handles, kv).listModels())[0]!.storedBytes).toBe(2000);
  });

  it('without handles (a plain file input) nothing is saved, and deleting a model forgets its handles', async () => {
    const handles = new MemoryHandleStore();
    const { store } = await interrupted(handles, Object.entries(bytesOf).map(([n, x]) => source(n, x)));
    expect(handles.map.size).toBe(0);
    expect((await store.listModels())[0]!.reopenable).toBe(false);
    expect((await rejection(store.reopenSources('m1'))).code).toBe('MissingFile');
    const kept = new MemoryHandleStore();
    const other = await interrupted(kept, withHandles());
    expect(kept.map.has('m1')).toBe(true);
    await other.store.deleteModel('m1');
    expect(await other.store.listModels()).toEqual([]);
    expect(kept.map.has('m1')).toBe(false);
  });
});

describe('dropped file naming and direct reads', () => {
  const f = (name: string, text: string) => new File([text], name.split('/').pop()!, { lastModified: 5 });
  it('strips the dropped folder and keeps subfolders', () => {
    const names = toSourceFiles([
      { file: f('Mixtral/config.json', '{}'), path: 'Mixtral/config.json' },
      { file: f('Mixtral/original/x.bin', 'ab'), path: 'Mixtral/original/x.bin' },
    ]).map((s) => s.name);
    expect(names).toEqual(['config.json', 'original/x.bin']);
    expect(toSourceFiles([{ file: f('a.json', '1'), path: '' }, { file: f('b.json', '2'), path: 'b.json' }]).map((s) => s.name)).toEqual(['a.json', 'b.json']);
  });

  it('directFileSet reads the files themselves', async () => {
    const fs = directFileSet([source('w.bin', a)]);
    expect(await fs.get('w.bin')!.read(1234, 10)).toEqual(a.slice(1234, 1244));
  });
});
