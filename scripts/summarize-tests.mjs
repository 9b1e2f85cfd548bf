// Adds up the results of every test layer and prints one closing line, "N passed, N failed".
// A layer whose result file is missing counts as a failure: a silent layer must not look green.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = process.argv[2] ?? '.test-results';
const rows = [];
const read = (f) => (existsSync(join(dir, f)) ? readFileSync(join(dir, f), 'utf8') : null);

const vit = read('vitest.json');
if (vit) {
  const j = JSON.parse(vit);
  rows.push(['unit', j.numPassedTests, j.numFailedTests, j.numPendingTests + (j.numTodoTests ?? 0)]);
} else rows.push(['unit', 0, 1, 0]);

const e2e = read('e2e.json');
if (e2e) {
  const j = JSON.parse(e2e);
  rows.push(['e2e', j.passed, j.failed, j.skipped ?? 0]);
} else rows.push(['e2e', 0, 1, 0]);

const xml = read('oracle.xml');
if (xml) {
  const m = /<testsuite[^>]*\btests="(\d+)"[^>]*>/.exec(xml);
  const attr = (name) => Number((new RegExp(`<testsuite[^>]*\\b${name}="(\\d+)"`).exec(xml) ?? [])[1] ?? 0);
  const tests = Number(m?.[1] ?? 0);
  const failed = attr('failures') + attr('errors');
  const skipped = attr('skipped');
  rows.push(['oracle', tests - failed - skipped, failed, skipped]);
} else rows.push(['oracle', 0, 1, 0]);

let p = 0, f = 0, s = 0;
for (const [layer, passed, failed, skipped] of rows) {
  console.log(`${layer.padEnd(7)} ${String(passed).padStart(5)} passed ${String(failed).padStart(4)} failed ${String(skipped).padStart(4)} skipped`);
  p += passed; f += failed; s += skipped;
}
if (p === 0) f += 1;
console.log(`${p} passed, ${f} failed` + (s ? `, ${s} skipped` : ''));
process.exit(f > 0 ? 1 : 0);
