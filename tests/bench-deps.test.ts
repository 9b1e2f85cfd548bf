import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { REPO_ROOT } from './source-scan.ts';

// `npm run bench` and `npm test` on a fresh machine: scripts/ensure-chromium.sh installs Debian's chromium as root or
// names the command to run, and bin/bench.mjs calls it before any benchmark. Run against a PATH of fakes (a fake
// `id`, `apt-get` and `chromium`), so nothing is installed and the real machine's chromium is not seen.

const BASH = execFileSync('bash', ['-c', 'command -v bash'], { encoding: 'utf8' }).trim();
let bin: string;

/** An executable script in the fake PATH. */
function fake(name: string, body: string): void {
  const p = join(bin, name);
  writeFileSync(p, `#!${BASH}\n${body}\n`);
  chmodSync(p, 0o755);
}

function run(cmd: string, args: string[], env: Record<string, string> = {}): { status: number | null; stderr: string } {
  const r = spawnSync(cmd, args, { cwd: REPO_ROOT, encoding: 'utf8', env: { PATH: bin, HOME: bin, ...env }, timeout: 60_000 });
  return { status: r.status, stderr: r.stderr };
}
const ensure = (env?: Record<string, string>) => run(BASH, ['scripts/ensure-chromium.sh'], env);

beforeEach(() => {
  bin = mkdtempSync(join(tmpdir(), 'moe-prune-fakebin-'));
  symlinkSync(BASH, join(bin, 'bash'));
  fake('id', 'echo 1000'); // not root unless a test says so
});
afterEach(() => rmSync(bin, { recursive: true, force: true }));

describe('ensure-chromium.sh', () => {
  it('does nothing when chromium is there', () => {
    fake('chromium', 'exit 0');
    fake('apt-get', 'echo called >> "$HOME/apt.log"');
    expect(ensure()).toEqual({ status: 0, stderr: '' });
    expect(existsSync(join(bin, 'apt.log'))).toBe(false);
  });

  it('as root, installs Debian’s chromium with apt-get', () => {
    fake('id', 'echo 0');
    symlinkSync(execFileSync(BASH, ['-c', 'command -v chmod'], { encoding: 'utf8' }).trim(), join(bin, 'chmod'));
    // The fake apt-get records its arguments and, on install, puts a chromium on the PATH as the package would.
    fake('apt-get', `echo "$@" >> "$HOME/apt.log"; if [ "$1" = install ]; then printf '#!${BASH}\\nexit 0\\n' > "$HOME/chromium"; chmod +x "$HOME/chromium"; fi`);
    const r = ensure();
    expect(r.status).toBe(0);
    expect(r.stderr).toBe('installing chromium (Debian package) ...\n');
    expect(readFileSync(join(bin, 'apt.log'), 'utf8')).toBe('update -qq\ninstall -y -qq chromium\n');
  });

  it('not root: names the command to run, in one line, and fails', () => {
    fake('apt-get', 'echo "should not run" >&2; exit 9');
    const r = ensure();
    expect(r.status).toBe(1);
    expect(r.stderr).toBe("chromium is missing: run 'sudo apt-get install chromium' (Debian; other systems: install Chromium and set CHROMIUM_PATH) and try again\n");
  });

  it('CHROMIUM_PATH names the Chromium to use, and is checked', () => {
    fake('my-chromium', 'exit 0');
    expect(ensure({ CHROMIUM_PATH: join(bin, 'my-chromium') }).status).toBe(0);
    const r = ensure({ CHROMIUM_PATH: join(bin, 'nope') });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('is not an executable file');
  });
});

describe('npm run bench on a machine without chromium', () => {
  it('stops before any benchmark and says what it needs', () => {
    const r = run(process.execPath, ['bin/bench.mjs']);
    expect(r.status).toBe(1);
    expect(r.stderr.trimEnd().split('\n')).toEqual([
      "chromium is missing: run 'sudo apt-get install chromium' (Debian; other systems: install Chromium and set CHROMIUM_PATH) and try again",
      'npm run bench: needs Chromium (above); on a machine with a GPU driver, `npm run bench -- --no-browser` runs the Node benchmarks without it',
    ]);
  });
});
