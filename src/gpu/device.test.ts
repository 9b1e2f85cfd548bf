import { expect, it, vi } from 'vitest';
import { describeGpu } from '../../tests/gpu-harness.ts';
import type { MoePruneError } from '../core/errors.ts';
import { createDevice, describeAdapter, OPTIONAL_FEATURES, REQUESTED_LIMITS, withErrorScopes } from './device.ts';

/** A minimal stand-in GPU that records adapter requests and lets the test lose the device. */
function fakeGpu(answers: Array<'none' | 'adapter'>) {
  const requests: GPURequestAdapterOptions[] = [];
  let loseDevice!: (info: GPUDeviceLostInfo) => void;
  const listeners: Array<(ev: Event) => void> = [];
  const limits = Object.fromEntries(REQUESTED_LIMITS.map((k, i) => [k, 1000 + i]));
  let deviceDescriptor: GPUDeviceDescriptor | undefined;
  const device = {
    limits,
    features: new Set(['subgroups']),
    lost: new Promise<GPUDeviceLostInfo>((r) => (loseDevice = r)),
    addEventListener: (_: string, l: (ev: Event) => void) => listeners.push(l),
    destroy: () => loseDevice({ reason: 'destroyed', message: '' } as GPUDeviceLostInfo),
  };
  const adapter = {
    limits: { ...limits, maxTextureDimension1D: 1 },
    features: new Set(['subgroups', 'shader-f16', 'timestamp-query']),
    info: { vendor: 'acme', architecture: 'rocket', device: '', description: 'Acme Rocket', isFallbackAdapter: false },
    requestDevice: async (d: GPUDeviceDescriptor) => ((deviceDescriptor = d), device),
  };
  const gpu = {
    requestAdapter: async (o: GPURequestAdapterOptions) => {
      requests.push(o);
      return answers.shift() === 'adapter' ? adapter : null;
    },
  } as unknown as GPU;
  return { gpu, requests, loseDevice: (info: GPUDeviceLostInfo) => loseDevice(info), listeners, descriptor: () => deviceDescriptor };
}

it('tries high-performance, then any, then the fallback adapter', async () => {
  const f = fakeGpu(['none', 'none', 'adapter']);
  const ctx = await createDevice(f.gpu, { log: () => {} });
  expect(f.requests).toEqual([{ powerPreference: 'high-performance' }, {}, { forceFallbackAdapter: true }]);
  expect(ctx.adapter.label).toBe('Acme Rocket (acme rocket)');
});

it('requests the adapter own limits and only the optional features it has, never shader-f16', async () => {
  const f = fakeGpu(['adapter']);
  await createDevice(f.gpu, { log: () => {} });
  const d = f.descriptor()!;
  expect(d.requiredLimits).toEqual(Object.fromEntries(REQUESTED_LIMITS.map((k, i) => [k, 1000 + i])));
  expect(d.requiredFeatures).toEqual(['subgroups', 'timestamp-query']);
});

it('fails with GpuUnavailable when no adapter exists', async () => {
  await expect(createDevice(fakeGpu(['none', 'none', 'none']).gpu)).rejects.toMatchObject({ code: 'GpuUnavailable' });
});

it('delivers an unexpected device loss as GpuLost to subscribers, but not our own destroy', async () => {
  const f = fakeGpu(['adapter']);
  const ctx = await createDevice(f.gpu, { log: () => {} });
  const seen: MoePruneError[] = [];
  ctx.onLost((e) => seen.push(e));
  f.loseDevice({ reason: 'unknown', message: 'driver reset' } as GPUDeviceLostInfo);
  const err = await ctx.lost;
  expect(err.code).toBe('GpuLost');
  expect(err.message).toMatch(/Acme Rocket \(acme rocket\) was lost \(unknown: driver reset\).*retry/);
  expect(seen).toEqual([err]);
  expect(ctx.lostError).toBe(err);

  const g = fakeGpu(['adapter']);
  const ctx2 = await createDevice(g.gpu, { log: () => {} });
  const cb = vi.fn();
  ctx2.onLost(cb);
  ctx2.destroy();
  expect((await ctx2.lost).message).toMatch(/was closed/);
  expect(cb).not.toHaveBeenCalled();
});

it('logs uncaptured errors', async () => {
  const f = fakeGpu(['adapter']);
  const log = vi.fn();
  await createDevice(f.gpu, { log });
  f.listeners[0]!({ error: { message: 'boom' } } as unknown as Event);
  expect(log).toHaveBeenCalledWith(expect.stringMatching(/not caught.*\(acme rocket\): boom/));
});

describeGpu('device on the test adapter', (gpu) => {
  it('got the adapter limits (not the WebGPU defaults) and describes itself as plain JSON', () => {
    const ctx = gpu();
    const d = describeAdapter(ctx);
    expect(JSON.parse(JSON.stringify(d))).toEqual(d);
    expect(d.adapter.label.length).toBeGreaterThan(0);
    // WebGPU's default maxStorageBufferBindingSize is 128 MiB; every adapter we target offers more.
    expect(d.limits.maxStorageBufferBindingSize).toBeGreaterThan(128 << 20);
    expect(d.limits.maxComputeInvocationsPerWorkgroup).toBeGreaterThanOrEqual(256);
    for (const f of d.features) expect(OPTIONAL_FEATURES).toContain(f);
  });

  it('turns an oversized allocation into GpuOutOfMemory or GpuValidation, and bad WGSL into GpuValidation', async () => {
    const { device, pipelines } = gpu();
    const tooBig = withErrorScopes(
      device,
      () => {
        device.createBuffer({ size: 2 ** 40, usage: 0x0080 });
      },
      'allocating a test buffer',
    );
    await expect(tooBig).rejects.toMatchObject({ code: expect.stringMatching(/GpuOutOfMemory|GpuValidation/), message: expect.stringMatching(/^allocating a test buffer/) });
    await expect(
      pipelines.get({ name: 'broken', code: '@compute @workgroup_size(1) fn main() { let x: u32 = 1.5; }', entryPoint: 'main' }),
    ).rejects.toThrow(/shaders\/broken\.wgsl: cannot build the GPU kernel broken:main \(line 1/);
  });

  it('caches one pipeline per (shader, entry point, overrides)', async () => {
    const { pipelines } = gpu();
    const code = 'override K: u32 = 1u; @group(0) @binding(0) var<storage, read_write> o: array<u32>; @compute @workgroup_size(1) fn main() { o[0] = K; }';
    const before = pipelines.createdCount;
    const a = await pipelines.get({ name: 't', code, entryPoint: 'main', constants: { K: 2 } });
    const b = await pipelines.get({ name: 't', code, entryPoint: 'main', constants: { K: 2 } });
    const c = await pipelines.get({ name: 't', code, entryPoint: 'main', constants: { K: 3 } });
    expect(b).toBe(a);
    expect(c).not.toBe(a);
    expect(pipelines.createdCount - before).toBe(2);
  });
});
