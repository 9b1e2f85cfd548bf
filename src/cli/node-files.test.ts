import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NodeFileSource, openNodeFileSet } from './node-files.ts';
import { rejection } from '../../tests/errors.ts';

let dir: string;
const bytes = Uint8Array.from({ length: 1000 }, (_, i) => (i * 7) & 0xff);

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'moe-prune-node-files-'));
  writeFileSync(join(dir, 'model.safetensors'), bytes);
  writeFileSync(join(dir, 'config.json'), '{"model_type":"mixtral"}');
  mkdirSync(join(dir, 'sub'));
  writeFileSync(join(dir, 'sub', 'tokenizer.json'), '{}');
  mkdirSync(join(dir, '.cache'));
  writeFileSync(join(dir, '.cache', 'lock'), 'x');
  symlinkSync(join(dir, 'config.json'), join(dir, 'linked.json'));
  mkdirSync(join(dir, 'single'));
  writeFileSync(join(dir, 'single', 'tiny.safetensors'), bytes.subarray(0, 16));
  writeFileSync(join(dir, 'single', 'tiny_config.json'), '{}');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('NodeFileSource', () => {
  it('reads exactly the requested range', async () => {
    const src = await NodeFileSource.open(join(dir, 'model.safetensors'));
    expect(src.size).toBe(1000);
    expect(src.name).toBe('model.safetensors');
    expect([...(await src.read(990, 10))]).toEqual([...bytes.subarray(990, 1000)]);
    expect([...(await src.read(3, 4))]).toEqual([...bytes.subarray(3, 7)]);
    expect((await src.read(1000, 0)).byteLength).toBe(0);
  });
  it('refuses ranges past the end, bad ranges, and aborted reads', async () => {
    const src = await NodeFileSource.open(join(dir, 'model.safetensors'));
    expect((await rejection(src.read(995, 10))).code).toBe('TruncatedFile');
    expect((await rejection(src.read(-1, 2))).code).toBe('InvalidArgument');
    const ac = new AbortController();
    ac.abort();
    expect((await rejection(src.read(0, 1, ac.signal))).code).toBe('Cancelled');
  });
  it('notices a file that shrank after it was measured', async () => {
    const p = join(dir, 'shrinks.bin');
    writeFileSync(p, bytes);
    const src = await NodeFileSource.open(p);
    writeFileSync(p, bytes.subarray(0, 100));
    const e = await rejection(src.read(50, 200));
    expect([e.code, e.file]).toEqual(['FileChanged', 'shrinks.bin']);
    expect(e.message).toMatch(/changed on disk while the job was using it \(\d+ → 100 bytes\)/);
  });
  it('reads close together share one descriptor, and a file replaced meanwhile (same size, new time) is refused', async () => {
    const p = join(dir, 'replaced.bin');
    writeFileSync(p, bytes);
    const src = await NodeFileSource.open(p);
    const parts = await Promise.all([src.read(0, 10), src.read(10, 10), src.read(990, 10)]);
    expect(parts.map((x) => [...x])).toEqual([[...bytes.subarray(0, 10)], [...bytes.subarray(10, 20)], [...bytes.subarray(990, 1000)]]);
    // Another file renamed over the path while this source's descriptor may still be open on the old one.
    const other = join(dir, 'replacement.bin');
    writeFileSync(other, bytes.map((x) => 255 - x));
    const later = new Date(Date.now() + 60_000);
    utimesSync(other, later, later);
    renameSync(other, p);
    const e = await rejection(src.read(0, 10));
    expect([e.code, e.file]).toEqual(['FileChanged', 'replaced.bin']);
    rmSync(p);
  });
  it('a missing file is MissingFile', async () => {
    expect((await rejection(NodeFileSource.open(join(dir, 'nope.bin')))).code).toBe('MissingFile');
  });
});

describe('openNodeFileSet', () => {
  it('a folder: every regular file, relative names, links followed, dot-folders skipped', async () => {
    const set = await openNodeFileSet(dir);
    expect(set.names().filter((n) => n !== 'shrinks.bin')).toEqual(['config.json', 'linked.json', 'model.safetensors', 'single/tiny.safetensors', 'single/tiny_config.json', 'sub/tokenizer.json']);
    expect(set.get('linked.json')?.size).toBe(24);
  });
  it('a .safetensors file: it plus config.json beside it, or <stem>_config.json as config.json', async () => {
    expect((await openNodeFileSet(join(dir, 'model.safetensors'))).names()).toEqual(['config.json', 'model.safetensors']);
    const single = await openNodeFileSet(join(dir, 'single', 'tiny.safetensors'));
    expect(single.names()).toEqual(['config.json', 'tiny.safetensors']);
    expect(single.get('config.json')?.size).toBe(2);
  });
  it('refuses other files and missing paths with the path named', async () => {
    const e = await rejection(openNodeFileSet(join(dir, 'config.json')));
    expect(e.code).toBe('InvalidArgument');
    expect(e.file).toBe(join(dir, 'config.json'));
    expect((await rejection(openNodeFileSet(join(dir, 'absent')))).code).toBe('MissingFile');
  });
});
