import { existsSync } from 'node:fs';
import { expect } from 'vitest';
import { main, type CliIo } from '../src/cli/main.ts';

/** A CliIo that keeps what the command printed, for the CLI tests. */
export type CollectedIo = CliIo & { out: () => string; err: () => string };

export function collectIo(opts: { signal?: AbortSignal; onErr?: (line: string) => void } = {}): CollectedIo {
  let out = '';
  let err = '';
  return {
    stdout: { write: (s: string) => (out += s) },
    stderr: {
      write: (s: string) => {
        err += s;
        opts.onErr?.(s);
      },
    },
    ...(opts.signal && { signal: opts.signal }),
    out: () => out,
    err: () => err,
  };
}

/** Lines of stderr that are the refusal itself, not the adapter notice or a message's indented detail. */
const isNotice = (l: string): boolean =>
  l.startsWith('moe-prune: --cpu') || l.startsWith('moe-prune: using WebGPU adapter') || l.startsWith('moe-prune: software adapter') || l.startsWith('  ');

/**
 * `moe-prune <command> args` exits 2 with exactly one line on stderr and nothing on stdout; when `out` is given,
 * no output (nor its `.partial`) is left behind.
 */
export async function expectRefused(command: string, args: string[], message: RegExp, out?: string): Promise<void> {
  const io = collectIo();
  expect(await main([command, ...args], io)).toBe(2);
  const lines = io.err().trimEnd().split('\n').filter((l) => !isNotice(l));
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(message);
  expect(io.out()).toBe('');
  if (out) expect([existsSync(out), existsSync(`${out}.partial`)]).toEqual([false, false]);
}
