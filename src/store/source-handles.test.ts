import { describe, expect, it } from 'vitest';
import { rejection } from '../../tests/errors.ts';
import { MAX_RECENT, MemoryHandleStore, rememberRecent, reopenSources, type RecentCheckpoint, type ReopenableFile } from './source-handles.ts';

const handle = (name: string, bytes: string, lastModified = 7): ReopenableFile => ({ kind: 'file', name, getFile: async () => new File([bytes], name, { lastModified }) });
const entry = (id: string, openedAt: number, files: Array<[string, string]>): RecentCheckpoint => ({
  id,
  name: `ckpt-${id}`,
  files: files.map(([name, bytes]) => ({ name, size: bytes.length, lastModified: 7 })),
  sources: files.map(([name, bytes]) => ({ name, handle: handle(name, bytes) })),
  summary: null,
  openedAt,
});

describe('checkpoints read in place, remembered for reopening after a reload', () => {
  it('keeps the newest first, replaces an entry of the very same files, and keeps at most MAX_RECENT', async () => {
    const store = new MemoryHandleStore();
    await rememberRecent(store, entry('a', 1, [['config.json', '{}']]));
    await rememberRecent(store, entry('b', 2, [['config.json', '{"x":1}']]));
    let list = await rememberRecent(store, entry('c', 3, [['config.json', '{}']]));
    expect(list.map((r) => r.id)).toEqual(['c', 'b']);
    for (let i = 0; i < MAX_RECENT + 2; i++) list = await rememberRecent(store, entry(`n${i}`, 10 + i, [[`f${i}.json`, 'x']]));
    expect(list).toHaveLength(MAX_RECENT);
    expect(list[0]!.id).toBe(`n${MAX_RECENT + 1}`);
    expect((await store.listRecent()).map((r) => r.id)).toEqual(list.map((r) => r.id));
  });

  it('reopens the files through their handles, and names a file that is gone', async () => {
    const r = entry('a', 1, [['config.json', '{}'], ['model.safetensors', 'abcd']]);
    const files = await reopenSources(r.sources, r.files);
    expect(files.map((f) => [f.name, f.size])).toEqual([['config.json', 2], ['model.safetensors', 4]]);
    const gone: ReopenableFile = { kind: 'file', name: 'model.safetensors', getFile: () => Promise.reject(new DOMException('gone', 'NotFoundError')) };
    const err = await rejection(reopenSources([r.sources[0]!, { name: 'model.safetensors', handle: gone }], r.files));
    expect(err.code).toBe('MissingFile');
    expect(err.file).toBe('model.safetensors');
    expect(err.message).toMatch(/moved or deleted/);
  });

  it('asks once for a dropped folder, not once per file, and names a folder the user refuses', async () => {
    let state: PermissionState = 'prompt';
    let asked = 0;
    const perm = { queryPermission: async (): Promise<PermissionState> => state, requestPermission: async (): Promise<PermissionState> => (asked++, (state = 'granted')) };
    const root = { kind: 'directory' as const, name: 'Mixtral', ...perm };
    // Files inside a granted folder are granted too (the browser checks their ancestors).
    const inFolder = (name: string, bytes: string) => ({ name, handle: { ...handle(name, bytes), ...perm }, root });
    const sources = [inFolder('config.json', '{}'), inFolder('a.safetensors', 'ab'), inFolder('b.safetensors', 'cd')];
    const files = sources.map(({ name }) => ({ name, size: 2, lastModified: 7 }));
    expect((await reopenSources(sources, files)).map((f) => f.root?.name)).toEqual(['Mixtral', 'Mixtral', 'Mixtral']);
    expect(asked).toBe(1);
    state = 'prompt';
    const refusing = { kind: 'directory' as const, name: 'Mixtral', queryPermission: async () => 'prompt' as const, requestPermission: async () => 'denied' as const };
    const err = await rejection(reopenSources([{ ...sources[0]!, root: refusing }], files.slice(0, 1)));
    expect(err.code).toBe('PermissionDenied');
    expect(err.file).toBe('Mixtral');
  });
});
