/**
 * For each exported checkpoint folder: whether our strict safetensors reader accepts every shard, and the
 * catalogue's view of the folder (or the error it raised). One process for many folders keeps the oracle fast.
 *   node_modules/.bin/tsx oracle/js/check-exports.ts <dir> [<dir> ...]
 *   → {"<dir>": {"shards": {"<file>": {"accepts": bool, "code": ...}}, "summary": {...} | null, "error": null | "..."}}
 * Used by oracle/tests/test_expert_prune_export.py.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { openNodeFileSet, NodeFileSource } from '../../src/cli/node-files.ts';
import { isMoePruneError } from '../../src/core/errors.ts';
import { openSafetensors } from '../../src/formats/safetensors/reader.ts';
import { inspectCheckpoint } from '../../src/models/catalogue.ts';
import type { CheckpointSummary } from '../../src/models/types.ts';

interface Decision {
  accepts: boolean;
  code: string | null;
  message?: string;
}

interface FolderCheck {
  shards: Record<string, Decision>;
  summary: CheckpointSummary | null;
  error: string | null;
}

const describe = (e: unknown): { code: string; message: string } =>
  isMoePruneError(e) ? { code: e.code, message: e.message } : { code: 'UNEXPECTED_EXCEPTION', message: String(e) };

async function checkFolder(dir: string): Promise<FolderCheck> {
  const shards: Record<string, Decision> = {};
  for (const n of (await readdir(dir)).filter((f) => f.endsWith('.safetensors')).sort()) {
    try {
      await openSafetensors(await NodeFileSource.open(join(dir, n), n));
      shards[n] = { accepts: true, code: null };
    } catch (e) {
      shards[n] = { accepts: false, ...describe(e) };
    }
  }
  try {
    return { shards, summary: await inspectCheckpoint(await openNodeFileSet(dir)), error: null };
  } catch (e) {
    return { shards, summary: null, error: describe(e).message };
  }
}

const dirs = process.argv.slice(2);
if (dirs.length === 0) {
  process.stderr.write('usage: check-exports.ts <checkpoint folder> [...]\n');
  process.exit(2);
}
const out: Record<string, FolderCheck> = {};
for (const d of dirs) out[d] = await checkFolder(d);
process.stdout.write(JSON.stringify(out) + '\n');
