import { MoePruneError } from '../core/errors.ts';
import { assertAlive, withErrorScopes, type GpuContext } from './device.ts';
import { UNIFORM_USAGE } from './pool.ts';

/** A buffer and how many of its bytes a kernel may see (pooled buffers can be larger than their tensor). */
export interface BufferView {
  readonly buffer: GPUBuffer;
  readonly byteLength: number;
}

function isView(b: GPUBuffer | BufferView): b is BufferView {
  return 'buffer' in b;
}

/** Bytes a binding of this view needs: storage bindings must be a multiple of 4 bytes. */
export function bindingBytes(v: BufferView): number {
  return Math.max(4, Math.ceil(v.byteLength / 4) * 4);
}

/**
 * Largest power-of-two 1-D workgroup size not above `want` that the device allows. Power of two because
 * the reduction kernels halve it.
 */
export function workgroupSize(ctx: GpuContext, want = 256): number {
  const cap = Math.min(want, ctx.limits.maxComputeInvocationsPerWorkgroup, ctx.limits.maxComputeWorkgroupSizeX);
  return 2 ** Math.floor(Math.log2(Math.max(1, cap)));
}

/**
 * Spreads `workgroups` over x and y so neither exceeds maxComputeWorkgroupsPerDimension (65535 by default);
 * kernels rebuild the linear index as `gid.x + gid.y * num_workgroups.x * WG` and bounds-check it.
 */
export function grid2d(ctx: GpuContext, workgroups: number): [number, number] {
  const max = ctx.limits.maxComputeWorkgroupsPerDimension;
  if (workgroups <= max) return [Math.max(1, workgroups), 1];
  const y = Math.ceil(workgroups / max);
  if (y > max) throw new MoePruneError('InvalidArgument', `a dispatch of ${workgroups} workgroups is too large for this GPU`);
  return [Math.ceil(workgroups / y), y];
}

/** Writes u32 parameters into a pooled uniform buffer (16-byte multiple, as uniform structs need). */
export async function uniformParams(ctx: GpuContext, values: readonly number[]): Promise<GPUBuffer> {
  const words = new Uint32Array(Math.ceil(Math.max(values.length, 1) / 4) * 4);
  values.forEach((v, i) => {
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new MoePruneError('InvalidArgument', `kernel parameter ${i} = ${v} is not a u32`);
    words[i] = v;
  });
  const buf = await ctx.pool.acquire(words.byteLength, UNIFORM_USAGE, 'params');
  ctx.device.queue.writeBuffer(buf, 0, words);
  return buf;
}

export interface Dispatch {
  readonly pipeline: GPUComputePipeline;
  /**
   * Binding i of group 0: a whole buffer (uniforms) or a view bound with its own size. `undefined` skips a
   * binding number the entry point does not use (auto layouts only contain the used ones).
   */
  readonly bindings: ReadonlyArray<GPUBuffer | BufferView | undefined>;
  readonly workgroups: readonly [number, number?, number?];
}

/**
 * Encodes the dispatches in one compute pass and submits them. Bind-group validation errors (binding too
 * large, wrong usage) become GpuValidation errors naming `label`.
 */
export async function submitDispatches(ctx: GpuContext, label: string, dispatches: readonly Dispatch[]): Promise<void> {
  assertAlive(ctx);
  await withErrorScopes(ctx.device, () => {
    const enc = ctx.device.createCommandEncoder({ label });
    const pass = enc.beginComputePass({ label });
    for (const d of dispatches) {
      const bindGroup = ctx.device.createBindGroup({
        label,
        layout: d.pipeline.getBindGroupLayout(0),
        entries: d.bindings.flatMap((b, binding): GPUBindGroupEntry[] => {
          if (b === undefined) return [];
          return [isView(b) ? { binding, resource: { buffer: b.buffer, offset: 0, size: bindingBytes(b) } } : { binding, resource: { buffer: b } }];
        }),
      });
      pass.setPipeline(d.pipeline);
      pass.setBindGroup(0, bindGroup);
      pass.dispatchWorkgroups(d.workgroups[0], d.workgroups[1] ?? 1, d.workgroups[2] ?? 1);
    }
    pass.end();
    ctx.device.queue.submit([enc.finish()]);
  }, `GPU kernel ${label}`);
}
