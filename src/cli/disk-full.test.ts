// The disk filling up during an export: writes into the output's .partial folder fail with ENOSPC once a byte budget
// is spent (node:fs/promises is wrapped from the test side; the product's writer is the one the CLI uses).
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { main } from './main.ts';
import { collectIo } from '../../tests/cli-io.ts';

const disk = vi.hoisted(() => ({ left: Number.POSITIVE_INFINITY, failures: 0 }));

vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs/promises')>();
  const open = async (...args: Parameters<typeof real.open>): Promise<FileHandle> => {
    const fh = await real.open(...args);
    if (!String(args[0]).includes('.partial') || args[1] !== 'w') return fh;
    const write = fh.write.bind(fh) as (b: Uint8Array, off: number, len: number, pos: number) => Promise<{ bytesWritten: number; buffer: Uint8Array }>;
    // A full disk takes what fits, then refuses: the shard is cut mid-way, as on a real device.
    Object.assign(fh, {
      write: async (b: Uint8Array, off: number, len: number, pos: number) => {
        if (disk.left <= 0) {
          disk.failures++;
          throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28, syscall: 'write' });
        }
        const n = Math.min(len, disk.left);
        disk.left -= n;
        return write(b, off, n, pos);
      },
    });
    return fh;
  };
  return { ...real, open, default: { ...real, open } };
});

const MIXTRAL = fileURLToPath(new URL('../../fixtures/models/mixtral', import.meta.url));
const TMP = mkdtempSync(join(tmpdir(), 'moe-prune-disk-full-'));
afterAll(() => rmSync(TMP, { recursive: true, force: true }));
afterEach(() => {
  disk.left = Number.POSITIVE_INFINITY;
  disk.failures = 0;
});

const snapshot = (dir: string): Record<string, string> =>
  Object.fromEntries(readdirSync(dir).sort().map((n) => [n, readFileSync(join(dir, n)).toString('base64')]));

describe('the disk full during export', () => {
  it('stops with the shard named, removes the unfinished files, and a finished export replaced with --force stays whole', async () => {
    const out = join(TMP, 'pruned');
    const first = collectIo();
    expect(await main(['prune', MIXTRAL, '--out', out, '--experts-per-layer', '3', '--cpu', '--quiet'], first), first.err()).toBe(0);
    const before = snapshot(out);

    // Room for the first shard and part of the second.
    disk.left = 30_000;
    const io = collectIo();
    expect(await main(['prune', MIXTRAL, '--out', out, '--experts-per-layer', '2', '--cpu', '--quiet', '--force'], io)).toBe(2);
    expect(disk.failures).toBe(1);
    const line = io.err().trimEnd().split('\n').at(-1)!;
    expect(line).toMatch(new RegExp(`^${out}/model-0000[12]-of-00003\\.safetensors: the disk is full \\(while writing this file\\); the unfinished export is removed and ${out} is left as it was: free space and run again \\[StorageFull\\]$`));
    expect(io.out()).toBe('');
    expect(existsSync(`${out}.partial`)).toBe(false);
    expect(snapshot(out)).toEqual(before);
  });

  it('a new output folder never appears when the disk fills up, even in its last file', async () => {
    const out = join(TMP, 'fresh');
    const full = collectIo();
    expect(await main(['prune', MIXTRAL, '--out', join(TMP, 'measure'), '--experts-per-layer', '3', '--cpu', '--quiet'], full)).toBe(0);
    const total = readdirSync(join(TMP, 'measure')).reduce((s, n) => s + readFileSync(join(TMP, 'measure', n)).byteLength, 0);
    // One byte short of everything (the marker file is not written through open()).
    disk.left = total - 1;
    const io = collectIo();
    expect(await main(['prune', MIXTRAL, '--out', out, '--experts-per-layer', '3', '--cpu', '--quiet'], io)).toBe(2);
    expect(io.err()).toMatch(/the disk is full/);
    expect([existsSync(out), existsSync(`${out}.partial`)]).toEqual([false, false]);
  });
});
