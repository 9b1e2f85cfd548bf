import { describe, expect, it } from 'vitest';
import { collectDropped, droppedHandle, hasPicker, pickWithHandles, type HandleLike } from './drop.ts';

const file = (name: string, text: string): HandleLike => ({ kind: 'file', name, getFile: async () => new File([text], name, { lastModified: 3 }) });
const dir = (name: string, children: HandleLike[]): HandleLike => ({
  kind: 'directory',
  name,
  async *values() {
    yield* children;
  },
});

const checkpoint = dir('Mixtral', [file('config.json', '{}'), file('.DS_Store', 'x'), dir('original', [file('w.bin', 'ab')])]);

describe('files with handles: drops, pickers', () => {
  it('walks a dropped folder handle, keeps each file handle, and skips hidden files', async () => {
    const picked = await collectDropped([droppedHandle(checkpoint)]);
    expect(picked.map((p) => p.path)).toEqual(['Mixtral/config.json', 'Mixtral/original/w.bin']);
    expect(picked.every((p) => p.handle?.kind === 'file')).toBe(true);
    expect(picked.every((p) => p.root === checkpoint)).toBe(true);
    expect(await picked[1]!.handle!.getFile().then((f) => f.size)).toBe(2);
  });

  it('falls back to the entry, then the plain file, when the browser gives no handle', async () => {
    const plain = new File(['1'], 'a.json');
    const picked = await collectDropped([{ handle: Promise.resolve(null), entry: null, file: plain }, { handle: Promise.reject(new Error('no')), entry: null, file: plain }]);
    expect(picked.map((p) => [p.path, p.handle])).toEqual([
      ['a.json', undefined],
      ['a.json', undefined],
    ]);
  });

  it('uses the folder or file picker where the browser has one; a dismissed picker gives nothing; none means the file input', async () => {
    const w = {
      showDirectoryPicker: async () => checkpoint,
      showOpenFilePicker: async () => [file('config.json', '{}'), file('model.safetensors', 'abc')],
    };
    expect((await pickWithHandles('folder', w))!.map((p) => p.path)).toEqual(['Mixtral/config.json', 'Mixtral/original/w.bin']);
    expect((await pickWithHandles('files', w))!.map((p) => [p.path, p.handle?.name, p.root])).toEqual([
      ['config.json', 'config.json', undefined],
      ['model.safetensors', 'model.safetensors', undefined],
    ]);
    const dismissed = { showDirectoryPicker: () => Promise.reject(new DOMException('The user aborted a request.', 'AbortError')) };
    expect(await pickWithHandles('folder', dismissed)).toEqual([]);
    const denied = { showDirectoryPicker: () => Promise.reject(new DOMException('blocked', 'SecurityError')) };
    await expect(pickWithHandles('folder', denied)).rejects.toThrow(/blocked/);
    expect(hasPicker('files', {})).toBe(false);
    expect(await pickWithHandles('files', {})).toBeNull();
  });
});
