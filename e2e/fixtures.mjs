// Test checkpoints on disk and the small readers the tests use to know what the page should show.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');

export function fixtureDir(name) {
  return join(REPO, 'fixtures', 'models', name);
}

/** Checkpoint files of a fixture (what a user would drop), without the test oracle's expected.json. */
export function fixtureFiles(name) {
  const dir = fixtureDir(name);
  return readdirSync(dir)
    .filter((f) => f !== 'expected.json' && statSync(join(dir, f)).isFile())
    .sort()
    .map((f) => join(dir, f));
}

export function expected(name) {
  return JSON.parse(readFileSync(join(fixtureDir(name), 'expected.json'), 'utf8'));
}

/** Bytes of one tensor read straight from the .safetensors file on disk (u64 header length, JSON header, data). */
export function tensorBytesOnDisk(name, tensor) {
  const dir = fixtureDir(name);
  const index = JSON.parse(readFileSync(join(dir, 'model.safetensors.index.json'), 'utf8'));
  const shard = index.weight_map[tensor];
  if (!shard) throw new Error(`${tensor} is not in the ${name} weight map`);
  const buf = readFileSync(join(dir, shard));
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
  const [b, e] = header[tensor].data_offsets;
  return buf.subarray(8 + n + b, 8 + n + e);
}
