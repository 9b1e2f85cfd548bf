import { MoePruneError } from '../../core/errors.ts';
import type { GpuContext } from '../device.ts';
import { grid2d, submitDispatches, uniformParams, workgroupSize, type BufferView } from '../dispatch.ts';
import code from '../../../shaders/copy.wgsl?raw';

/** Elements per invocation: 8 ran about 2x faster than 1 on SwiftShader and stays coalesced on GPUs. */
const ITEMS = 8;

/** CPU reference. */
export function copyReference(src: Uint32Array): Uint32Array {
  return src.slice();
}

/** Copies `words` u32 words from `src` to `dst` with a compute kernel (the benchmarks' bandwidth baseline). */
export async function copyWords(ctx: GpuContext, src: BufferView, dst: BufferView, words: number): Promise<void> {
  if (words * 4 > src.byteLength || words * 4 > dst.byteLength)
    throw new MoePruneError('InvalidArgument', `copy of ${words} words does not fit buffers of ${src.byteLength} and ${dst.byteLength} bytes`);
  if (words === 0) return;
  const wg = workgroupSize(ctx);
  const pipeline = await ctx.pipelines.get({ name: 'copy', code, entryPoint: 'main', constants: { WG: wg, ITEMS } });
  const u = await uniformParams(ctx, [words]);
  try {
    await submitDispatches(ctx, 'copy', [{ pipeline, bindings: [src, dst, u], workgroups: grid2d(ctx, Math.ceil(words / (wg * ITEMS))) }]);
  } finally {
    ctx.pool.release(u);
  }
}
