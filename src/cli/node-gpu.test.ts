import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';
import { describeAdapter } from '../gpu/device.ts';
import { closeNodeGpu, openNodeGpu } from './node-gpu.ts';

const run = promisify(execFile);
const repoRoot = resolve(import.meta.dirname, '../..');

/** Runs an ES module snippet in a fresh node with the tsx and WGSL hooks, as bin/moe-prune.mjs will. */
async function node(body: string): Promise<{ stdout: string; stderr: string }> {
  const script = `
    import { register } from 'node:module';
    import { pathToFileURL } from 'node:url';
    const root = pathToFileURL(process.cwd() + '/');
    register('./src/cli/wgsl-loader.mjs', root);
    const { register: registerTsx } = await import('tsx/esm/api');
    registerTsx();
    const { openNodeGpu, closeNodeGpu } = await import(new URL('./src/cli/node-gpu.ts', root).href);
    ${body}`;
  const env = { ...process.env };
  delete env.VK_ICD_FILENAMES;
  delete env.VK_DRIVER_FILES;
  return run(process.execPath, ['--input-type=module', '-e', script], { cwd: repoRoot, env, timeout: 60_000 });
}

it('opens an adapter in-process, says which one, and closes it', async () => {
  const ctx = await openNodeGpu({ log: () => {} });
  expect(['driver', 'swiftshader']).toContain(ctx.backend);
  expect(ctx.adapter.label.length).toBeGreaterThan(0);
  expect(describeAdapter(ctx).limits.maxBufferSize).toBeGreaterThan(0);
  closeNodeGpu(ctx);
  expect((await ctx.lost).message).toMatch(/closed/);
  expect(() => closeNodeGpu(ctx)).not.toThrow();
});

it('a fresh node process finds an adapter without VK_ICD_FILENAMES, runs a WGSL kernel via the loader hook, and exits', async () => {
  const { stdout } = await node(`
    const { uploadTensor, readTensorF32 } = await import(new URL('./src/gpu/tensor.ts', root).href);
    const { unpack } = await import(new URL('./src/gpu/kernels/unpack.ts', root).href);
    const ctx = await openNodeGpu();
    const bf16 = new Uint8Array(new Uint16Array([0x3fc0, 0xc000, 0x4040]).buffer); // 1.5, -2, 3
    const out = await readTensorF32(ctx, await unpack(ctx, await uploadTensor(ctx, bf16, 'BF16', [3])));
    console.log(JSON.stringify({ backend: ctx.backend, label: ctx.adapter.label, out: [...out] }));
    closeNodeGpu(ctx);`);
  const res = JSON.parse(stdout.trim().split('\n').at(-1)!) as { backend: string; label: string; out: number[] };
  expect(res.out).toEqual([1.5, -2, 3]);
  expect(res.label.length).toBeGreaterThan(0);
});

it('fails with GpuUnavailable naming what to install when no driver and no SwiftShader exist', async () => {
  const { stdout } = await node(`
    try {
      await openNodeGpu({ forceSoftware: true, icdCandidates: ['/nonexistent/vk_swiftshader_icd.json'] });
      console.log('opened');
    } catch (e) { console.log(e.code + ' ' + e.message); }`);
  expect(stdout).toMatch(/^GpuUnavailable no WebGPU adapter found for Node: install a GPU driver.*apt-get install chromium/m);
});
