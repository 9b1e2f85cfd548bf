import { describe, expect, it } from 'vitest';
import { rejection } from '../../tests/errors.ts';
import { StageTwoWork, type WorkFolder } from './work-folder.ts';

/** A folder in memory; `failOn` makes one write throw (a crash mid-save). */
class MemFolder implements WorkFolder {
  readonly where = 'mem';
  readonly files = new Map<string, Uint8Array>();
  failOn: string | null = null;
  async read(name: string) {
    return this.files.get(name)?.slice() ?? null;
  }
  async write(name: string, data: Uint8Array) {
    if (name === this.failOn) throw new Error('crash');
    this.files.set(name, data.slice());
  }
  async remove(name: string) {
    this.files.delete(name);
  }
  async list() {
    return [...this.files.keys()];
  }
}

const layer = (l: number) => ({
  layer: l,
  masks: new Map([[`model.layers.${l}.mlp.w`, Uint32Array.of(l, 0xffffffff, 7)]]),
  zeros: { expert: 10 + l },
  ratio: 0.5,
  unrouted: l === 1 ? ['model.layers.1.mlp.experts.3'] : [],
  ms: 1,
});
const about = { model: 'm', layers: 3, settings: 'wanda' };

describe('stage-2 work format over any folder backend', () => {
  it('saves layer by layer, reloads what was saved, and knows when the run is complete', async () => {
    const f = new MemFolder();
    expect(await StageTwoWork.peek(f)).toBeNull();
    const w = await StageTwoWork.open(f, 'fp', { about });
    expect(await w.load()).toBeNull();
    await w.saveLayer(layer(0), Float32Array.of(1, 2));
    await w.saveLayer(layer(1), Float32Array.of(3, 4));
    expect([...f.files.keys()].sort()).toEqual(['hidden-1.f32', 'job.json', 'masks-0.bin', 'masks-1.bin']);
    expect(await StageTwoWork.peek(f)).toEqual({ fingerprint: 'fp', about, layers: 2, complete: false });
    const again = await StageTwoWork.open(f, 'fp');
    expect(again.savedLayers).toBe(2);
    const saved = (await again.load())!;
    expect([...saved.hidden!]).toEqual([3, 4]);
    expect(saved.layers.map((l) => [...l.masks.get(`model.layers.${l.layer}.mlp.w`)!])).toEqual([
      [0, 0xffffffff, 7],
      [1, 0xffffffff, 7],
    ]);
    expect(saved.layers[1]!.unrouted).toEqual(['model.layers.1.mlp.experts.3']);
    await again.saveLayer(layer(2), Float32Array.of(5, 6));
    expect((await StageTwoWork.peek(f))!.complete).toBe(true);
  });

  it('an empty job.json (its first write cut short) is no job', async () => {
    const f = new MemFolder();
    f.files.set('job.json', new Uint8Array(0));
    expect(await StageTwoWork.peek(f)).toBeNull();
  });

  it('a save cut short before job.json leaves the last complete state', async () => {
    const f = new MemFolder();
    const w = await StageTwoWork.open(f, 'fp', { about });
    await w.saveLayer(layer(0), Float32Array.of(1, 2));
    f.failOn = 'job.json';
    await expect(w.saveLayer(layer(1), Float32Array.of(3, 4))).rejects.toThrow('crash');
    const saved = (await (await StageTwoWork.open(f, 'fp')).load())!;
    expect(saved.layers.map((l) => l.layer)).toEqual([0]);
    expect([...saved.hidden!]).toEqual([1, 2]);
  });

  it('another job, a folder of other files and a job missing its files are refused by name; clear empties the folder', async () => {
    const f = new MemFolder();
    await (await StageTwoWork.open(f, 'fp')).saveLayer(layer(0), Float32Array.of(1));
    const other = await rejection(StageTwoWork.open(f, 'other', { hint: 'start over' }));
    expect(other.message).toMatch(/holds a different job .*; start over \[InvalidArgument\]$/);
    expect(other.file).toBe('mem');
    f.files.delete('masks-0.bin');
    expect((await rejection((await StageTwoWork.open(f, 'fp')).load())).message).toMatch(/names masks-0\.bin, which is gone/);
    await StageTwoWork.clear(f);
    expect(f.files.size).toBe(0);
    f.files.set('notes.txt', new Uint8Array(1));
    expect((await rejection(StageTwoWork.open(f, 'fp'))).message).toMatch(/holds no moe-prune job \(notes\.txt\)/);
  });
});
