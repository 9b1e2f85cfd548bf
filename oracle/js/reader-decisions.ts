/**
 * Prints, as JSON, whether our safetensors reader accepts each .safetensors file in a folder:
 *   node_modules/.bin/tsx oracle/js/reader-decisions.ts <dir>
 *   → {"<file>": {"accepts": true, "code": null} | {"accepts": false, "code": "<ErrorCode>", "message": "..."}}
 * oracle/tests/test_safetensors_cases.py compares this with the reference (Rust) reader's decisions.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { NodeFileSource } from '../../src/cli/node-files.ts';
import { isMoePruneError } from '../../src/core/errors.ts';
import { openSafetensors } from '../../src/formats/safetensors/reader.ts';

interface Decision {
  accepts: boolean;
  code: string | null;
  message?: string;
}

async function decide(path: string, name: string): Promise<Decision> {
  try {
    await openSafetensors(await NodeFileSource.open(path, name));
    return { accepts: true, code: null };
  } catch (e) {
    // Anything but a MoePruneError is a reader bug (an unhandled case), reported as such rather than hidden.
    if (isMoePruneError(e)) return { accepts: false, code: e.code, message: e.message };
    return { accepts: false, code: 'UNEXPECTED_EXCEPTION', message: String(e) };
  }
}

async function main(): Promise<void> {
  const dir = process.argv[2];
  if (!dir) {
    process.stderr.write('usage: reader-decisions.ts <folder of .safetensors files>\n');
    process.exit(2);
  }
  const names = (await readdir(dir)).filter((n) => n.endsWith('.safetensors')).sort();
  const out: Record<string, Decision> = {};
  for (const n of names) out[n] = await decide(join(dir, n), n);
  process.stdout.write(JSON.stringify(out, null, 2) + '\n');
}

await main();
