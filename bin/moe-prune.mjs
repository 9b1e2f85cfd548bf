#!/usr/bin/env node
// Entry point of the `moe-prune` CLI: runs the TypeScript core directly (through tsx), so the CLI, the page and
// the tests share one implementation. WGSL files are imported with Vite's `?raw` suffix; a loader hook makes
// Node understand that too.
import { register } from 'node:module';
import { existsSync } from 'node:fs';
import { register as registerTsx } from 'tsx/esm/api';

const wgslHook = new URL('../src/cli/wgsl-loader.mjs', import.meta.url);
if (existsSync(wgslHook)) register(wgslHook);
registerTsx();
process.env.XDG_RUNTIME_DIR ??= '/tmp';

const { main } = await import('../src/cli/main.ts');
// First Ctrl-C / SIGTERM cancels (the command removes its partial output); a second one exits at once.
const cancel = new AbortController();
for (const sig of ['SIGINT', 'SIGTERM'])
  process.on(sig, () => {
    if (cancel.signal.aborted) process.exit(130);
    cancel.abort();
  });
const code = await main(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, signal: cancel.signal });
process.exit(code);
