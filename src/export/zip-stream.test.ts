import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 as zlibCrc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { crc32, ZipWriter } from './zip-stream.ts';

/** Python's zipfile is the independent reader: it checks every CRC-32 and returns each member's size and SHA-256. */
const READ_ZIP = `
import hashlib, json, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    bad = z.testzip()
    out = {"bad": bad, "members": [[i.filename, i.file_size, i.compress_type, hashlib.sha256(z.read(i)).hexdigest()] for i in z.infolist()]}
print(json.dumps(out))
`;

function pythonRead(bytes: Uint8Array): { bad: string | null; members: Array<[string, number, number, string]> } {
  const dir = mkdtempSync(join(tmpdir(), 'zip-stream-'));
  try {
    const file = join(dir, 'a.zip');
    writeFileSync(file, bytes);
    const r = spawnSync('python3', ['-c', READ_ZIP, file], { encoding: 'utf8' });
    if (r.error) throw new Error(`python3 is needed for this test (the independent ZIP reader): ${r.error.message}`);
    expect(r.status, r.stderr).toBe(0);
    return JSON.parse(r.stdout) as ReturnType<typeof pythonRead>;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Collects the archive in memory (tests only: the page streams it to a download). */
function memorySink(): { sink: { write(b: Uint8Array): Promise<void> }; bytes(): Uint8Array } {
  const parts: Uint8Array[] = [];
  return {
    sink: { write: async (b) => void parts.push(b.slice()) },
    bytes: () => Buffer.concat(parts),
  };
}

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

describe('crc32', () => {
  it('equals zlib over random data, also when continued piece by piece', () => {
    const data = randomBytes(100_003);
    expect(crc32(data)).toBe(zlibCrc32(data));
    expect(crc32(data.subarray(77), crc32(data.subarray(0, 77)))).toBe(zlibCrc32(data));
    expect(crc32(new Uint8Array(0))).toBe(0);
  });
});

describe('ZipWriter', () => {
  it('writes a stored ZIP64 archive that Python reads back byte for byte', async () => {
    const files: Array<[string, Uint8Array[]]> = [
      ['model-pruned-2/config.json', [new TextEncoder().encode('{"a": 1}\n')]],
      ['model-pruned-2/model-00001-of-00002.safetensors', [randomBytes(70_000), randomBytes(1), randomBytes(33_333)]],
      ['model-pruned-2/empty.txt', []],
      ['model-pruned-2/dossier-é-ü.json', [randomBytes(10)]],
    ];
    const m = memorySink();
    const zip = new ZipWriter(m.sink, new Date(2024, 4, 17, 13, 45, 30));
    for (const [name, pieces] of files) {
      const sink = await zip.add(name);
      for (const p of pieces) await sink.write(p);
      await sink.close();
    }
    expect(zip.files.map((f) => f.name)).toEqual(files.map(([n]) => n));
    await zip.finish();
    const bytes = m.bytes();
    expect(zip.bytes).toBe(bytes.length);
    const read = pythonRead(bytes);
    expect(read.bad).toBeNull();
    expect(read.members).toEqual(
      files.map(([name, pieces]) => {
        const whole = Buffer.concat(pieces);
        return [name, whole.length, 0, sha(whole)];
      }),
    );
    expect(zip.files.map((f) => f.bytes)).toEqual(files.map(([, p]) => p.reduce((s, x) => s + x.length, 0)));
  });

  it('an archive cut off before finish() is not a readable archive', async () => {
    const m = memorySink();
    const zip = new ZipWriter(m.sink);
    const s = await zip.add('x/a.bin');
    await s.write(randomBytes(1000));
    await s.close();
    const dir = mkdtempSync(join(tmpdir(), 'zip-stream-'));
    try {
      writeFileSync(join(dir, 'cut.zip'), m.bytes());
      const r = spawnSync('python3', ['-c', 'import sys, zipfile; zipfile.ZipFile(sys.argv[1])', join(dir, 'cut.zip')], { encoding: 'utf8' });
      expect(r.status).not.toBe(0);
      expect(r.stderr).toMatch(/BadZipFile/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses overlapping entries, duplicate names and paths that climb out', async () => {
    const zip = new ZipWriter(memorySink().sink);
    const a = await zip.add('d/a');
    await expect(zip.add('d/b')).rejects.toThrow(/still open/);
    await a.close();
    await expect(zip.add('d/a')).rejects.toThrow(/already holds/);
    await expect(zip.add('../x')).rejects.toThrow(/relative/);
    await expect(zip.add('/x')).rejects.toThrow(/relative/);
    await zip.finish();
    await expect(zip.add('d/c')).rejects.toThrow(/finished/);
  });
});
