/**
 * What the demo measuring scripts share: the demo files, and one results JSON under docs/results/ whose rendering is
 * a README table between two marker comments (the unit tests read the table back with the same `tableBetween`).
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TextInput } from '../../src/pipeline/job.ts';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const DEMO = join(ROOT, 'public/demo');

/** A text file of public/demo/ as the job reads text. */
export async function demoText(name: string): Promise<TextInput> {
  return { name, bytes: new Uint8Array(await readFile(join(DEMO, name))) };
}

/** The README block from `start` through `end` (markers included); a missing marker is an error, not an empty table. */
export function tableBetween(readme: string, start: string, end: string): string {
  const a = readme.indexOf(start);
  const b = readme.indexOf(end);
  if (a < 0 || b < a) throw new Error(`README.md has no table between ${start} and ${end}`);
  return readme.slice(a, b + end.length);
}

/** Writes `results` to docs/results/<file> and puts `table` (its rendering, markers included) in the README's place. */
export async function writeResultsAndTable(file: string, results: unknown, start: string, end: string, table: string): Promise<void> {
  await writeFile(join(ROOT, 'docs/results', file), `${JSON.stringify(results, null, 2)}\n`);
  const readmePath = join(ROOT, 'README.md');
  const readme = await readFile(readmePath, 'utf8');
  await writeFile(readmePath, readme.replace(tableBetween(readme, start, end), () => table));
}
