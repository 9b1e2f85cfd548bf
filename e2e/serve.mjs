// Builds the app once and serves the build with `vite preview` on 127.0.0.1 at a free port.
import { spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const ARTIFACTS = join(REPO, 'e2e', '.artifacts');
export const DIST = join(ARTIFACTS, 'dist');
const VITE = join(REPO, 'node_modules', 'vite', 'bin', 'vite.js');

/** `vite build` into e2e/.artifacts/dist (not dist/, so a running `npm start` is not disturbed), or into `outDir`. */
export function buildApp(outDir = DIST) {
  const b = spawnSync(process.execPath, [VITE, 'build', '--outDir', outDir, '--emptyOutDir', '--logLevel', 'warn'], { cwd: REPO, stdio: 'inherit' });
  if (b.status !== 0) throw new Error('vite build failed');
}

export function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

async function waitForHttp(url, ms, server) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (server.exitCode !== null) throw new Error(`vite preview exited with code ${server.exitCode}`);
    try {
      const r = await fetch(url);
      if (r.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 150));
  }
  throw new Error(`vite preview did not answer at ${url} within ${ms} ms`);
}

/** Serves DIST (or `outDir`); resolves to { base, stop } once the server answers. */
export async function startPreview(outDir = DIST) {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const server = spawn(process.execPath, [VITE, 'preview', '--outDir', outDir, '--host', '127.0.0.1', '--port', String(port), '--strictPort'], {
    cwd: REPO,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  server.stdout.on('data', (d) => (log += d));
  server.stderr.on('data', (d) => (log += d));
  const stop = () => {
    if (server.exitCode === null && server.signalCode === null) server.kill('SIGTERM');
  };
  process.once('exit', stop);
  try {
    await waitForHttp(base + '/', 30_000, server);
  } catch (e) {
    stop();
    throw new Error(`${e.message}\n${log}`);
  }
  return { base, stop };
}
