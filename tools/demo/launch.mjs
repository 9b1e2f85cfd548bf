// Starts a demo measuring script under Node: WGSL `?raw` imports and TypeScript are taught to Node before the script
// loads, then its `main(args)` sets the exit code.
import { register } from 'node:module';
import { register as registerTsx } from 'tsx/esm/api';

export async function launch(script) {
  register(new URL('../../src/cli/wgsl-loader.mjs', import.meta.url));
  registerTsx();
  process.env.XDG_RUNTIME_DIR ??= '/tmp';
  const { main } = await import(script);
  process.exitCode = await main(process.argv.slice(2));
}
