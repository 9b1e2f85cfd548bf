#!/usr/bin/env node
// End-to-end runner: builds the app once (vite build), serves it with `vite preview` on 127.0.0.1 at a free
// port, runs e2e/*.e2e.mjs with Node's test runner (one file at a time; each opens its own Chromium with a
// fresh profile), then stops the server. `--json FILE` writes {passed, failed, skipped}; extra arguments
// that end in .e2e.mjs select test files.
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const ART = join(REPO, 'e2e', '.artifacts');
const DIST = join(ART, 'dist');
const VITE = join(REPO, 'node_modules', 'vite', 'bin', 'vite.js');

const args = process.argv.slice(2);
const jsonAt = args.indexOf('--json');
const jsonOut = jsonAt >= 0 ? resolve(args[jsonAt + 1]) : null;
const picked = args.filter((a) => a.endsWith('.e2e.mjs'));
const files = picked.length ? picked.map((f) => resolve(f)) : readdirSync(join(REPO, 'e2e')).filter((f) => f.endsWith('.e2e.mjs')).sort().map((f) => join(REPO, 'e2e', f));

function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

async function waitForHttp(url, ms) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    try {
      const r = await fetch(url);
      if (r.ok) return;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 150));
  }
  throw new Error(`vite preview did not answer at ${url} within ${ms} ms`);
}

function writeJson(result) {
  if (!jsonOut) return;
  mkdirSync(dirname(jsonOut), { recursive: true });
  writeFileSync(jsonOut, JSON.stringify(result, null, 2) + '\n');
}

mkdirSync(ART, { recursive: true });
if (!process.env.E2E_SKIP_BUILD) {
  console.log('e2e: vite build');
  const b = spawnSync(process.execPath, [VITE, 'build', '--outDir', DIST, '--emptyOutDir', '--logLevel', 'warn'], { cwd: REPO, stdio: 'inherit' });
  if (b.status !== 0) {
    writeJson({ passed: 0, failed: 1, skipped: 0, error: 'vite build failed' });
    process.exit(1);
  }
}

const port = await freePort();
const base = `http://127.0.0.1:${port}`;
const server = spawn(process.execPath, [VITE, 'preview', '--outDir', DIST, '--host', '127.0.0.1', '--port', String(port), '--strictPort'], {
  cwd: REPO,
  stdio: ['ignore', 'pipe', 'pipe'],
  detached: false,
});
let serverLog = '';
server.stdout.on('data', (d) => (serverLog += d));
server.stderr.on('data', (d) => (serverLog += d));
const stopServer = () => {
  if (server.exitCode === null) server.kill('SIGTERM');
};
process.on('exit', stopServer);
process.on('SIGINT', () => process.exit(130));
process.on('SIGTERM', () => process.exit(143));

let code = 1;
try {
  await waitForHttp(base + '/', 30_000);
  console.log(`e2e: serving ${base}; running ${files.length} file(s)`);
  const tap = join(ART, 'results.tap');
  const t = spawnSync(
    process.execPath,
    ['--test', '--test-concurrency=1', '--test-reporter=spec', '--test-reporter-destination=stdout', '--test-reporter=tap', `--test-reporter-destination=${tap}`, ...files],
    { cwd: REPO, stdio: 'inherit', env: { ...process.env, E2E_BASE_URL: base, E2E_ARTIFACTS: ART } },
  );
  const text = readFileSync(tap, 'utf8');
  const num = (k) => Number((new RegExp(`^# ${k} (\\d+)$`, 'm').exec(text) ?? [])[1] ?? 0);
  const result = { passed: num('pass'), failed: num('fail') + num('cancelled'), skipped: num('skipped') + num('todo') };
  if (t.status !== 0 && result.failed === 0) result.failed = 1; // the runner itself failed
  writeJson(result);
  console.log(`e2e: ${result.passed} passed, ${result.failed} failed, ${result.skipped} skipped`);
  code = t.status === 0 && result.failed === 0 ? 0 : 1;
} catch (e) {
  console.error(String(e), serverLog);
  writeJson({ passed: 0, failed: 1, skipped: 0, error: String(e) });
} finally {
  stopServer();
}
process.exit(code);
