#!/usr/bin/env node
// End-to-end runner: builds the app once (vite build), serves it with `vite preview` on 127.0.0.1 at a free
// port, runs e2e/*.e2e.mjs with Node's test runner (one file at a time; each opens its own Chromium with a
// fresh profile), then stops the server. `--json FILE` writes {passed, failed, skipped}; arguments ending in
// .e2e.mjs select test files; E2E_SKIP_BUILD=1 reuses the last build.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { ARTIFACTS, buildApp, REPO, startPreview } from './serve.mjs';

const args = process.argv.slice(2);
const jsonAt = args.indexOf('--json');
const jsonOut = jsonAt >= 0 ? resolve(args[jsonAt + 1]) : null;
const picked = args.filter((a) => a.endsWith('.e2e.mjs'));
const files = picked.length
  ? picked.map((f) => resolve(f))
  : readdirSync(join(REPO, 'e2e'))
      .filter((f) => f.endsWith('.e2e.mjs'))
      .sort()
      .map((f) => join(REPO, 'e2e', f));

function writeJson(result) {
  if (!jsonOut) return;
  mkdirSync(dirname(jsonOut), { recursive: true });
  writeFileSync(jsonOut, JSON.stringify(result, null, 2) + '\n');
}

process.on('SIGINT', () => process.exit(130));
process.on('SIGTERM', () => process.exit(143));

let code = 1;
let server;
try {
  mkdirSync(ARTIFACTS, { recursive: true });
  // Exports from an earlier run must not stand in for this run's (the Python oracle loads them).
  for (const d of readdirSync(ARTIFACTS)) if (d.startsWith('export-')) rmSync(join(ARTIFACTS, d), { recursive: true, force: true });
  if (!process.env.E2E_SKIP_BUILD) {
    console.log('e2e: vite build');
    buildApp();
  }
  server = await startPreview();
  console.log(`e2e: serving ${server.base}; running ${files.length} file(s)`);
  const tap = join(ARTIFACTS, 'results.tap');
  const t = spawnSync(
    process.execPath,
    ['--test', '--test-concurrency=1', '--test-reporter=spec', '--test-reporter-destination=stdout', '--test-reporter=tap', `--test-reporter-destination=${tap}`, ...files],
    { cwd: REPO, stdio: 'inherit', env: { ...process.env, E2E_BASE_URL: server.base, E2E_ARTIFACTS: ARTIFACTS } },
  );
  const text = readFileSync(tap, 'utf8');
  const num = (k) => Number((new RegExp(`^# ${k} (\\d+)$`, 'm').exec(text) ?? [])[1] ?? 0);
  const result = { passed: num('pass'), failed: num('fail') + num('cancelled'), skipped: num('skipped') + num('todo') };
  if (t.status !== 0 && result.failed === 0) result.failed = 1; // the test runner itself failed
  writeJson(result);
  console.log(`e2e: ${result.passed} passed, ${result.failed} failed, ${result.skipped} skipped`);
  code = t.status === 0 && result.failed === 0 ? 0 : 1;
} catch (e) {
  console.error(`e2e: ${e.message ?? e}`);
  writeJson({ passed: 0, failed: 1, skipped: 0, error: String(e.message ?? e) });
} finally {
  server?.stop();
}
process.exit(code);
