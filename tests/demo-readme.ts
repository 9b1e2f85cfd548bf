/** Test helper for the README tables the demo scripts write (tools/demo/*-table.ts): files of the repo, and the check
 * that the README holds exactly the rendering of the committed results, so no number in it is typed by hand. */
import { readFileSync } from 'node:fs';
import { expect } from 'vitest';
import { tableBetween } from '../tools/demo/readme-table.ts';

export const read = (p: string): string => readFileSync(new URL(`../${p}`, import.meta.url), 'utf8');

/** docs/results/<file>, after checking that the README's table between the markers is `render` of it. */
export function resultsRenderedInReadme<T>(file: string, start: string, end: string, render: (results: T) => string): T {
  const results = JSON.parse(read(`docs/results/${file}`)) as T;
  expect(tableBetween(read('README.md'), start, end)).toBe(render(results));
  return results;
}
