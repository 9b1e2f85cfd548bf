import { afterAll, beforeAll, describe } from 'vitest';
import { openNodeGpu, type NodeGpuContext } from '../src/cli/node-gpu.ts';

/**
 * One WebGPU context per test worker, shared by every GPU test file the worker runs. A missing adapter is a
 * test FAILURE, not a skip: a silently skipped kernel suite would hide a broken setup.
 */
const KEY = Symbol.for('moe-prune.test-gpu');
type Holder = { [KEY]?: Promise<NodeGpuContext> };

export function getTestGpu(): Promise<NodeGpuContext> {
  const holder = globalThis as Holder;
  holder[KEY] ??= openNodeGpu({ log: (m) => console.error(`[gpu] ${m}`) }).catch((e: unknown) => {
    delete holder[KEY]; // let the next file retry and report its own failure
    throw new Error(
      `GPU tests need a WebGPU adapter and none was found (${(e as Error).message}). ` +
        'On Debian install chromium so its SwiftShader driver is available; do not skip these tests.',
      { cause: e },
    );
  });
  return holder[KEY];
}

/**
 * `describe` whose tests get the shared context through `gpu()`. The context opens in beforeAll, so a
 * missing adapter fails the suite loudly. Buffers the suite leaves in the pool are returned in afterAll.
 */
export function describeGpu(name: string, body: (gpu: () => NodeGpuContext) => void): void {
  describe(name, () => {
    let ctx: NodeGpuContext | undefined;
    beforeAll(async () => {
      ctx = await getTestGpu();
    });
    afterAll(() => {
      ctx?.pool.trim();
    });
    body(() => {
      if (!ctx) throw new Error('GPU context not ready: getTestGpu() failed in beforeAll (see the first error)');
      return ctx;
    });
  });
}
