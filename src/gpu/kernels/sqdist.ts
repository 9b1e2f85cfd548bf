import { MoePruneError } from '../../core/errors.ts';
import type { GpuContext } from '../device.ts';
import { submitDispatches, uniformParams, type BufferView } from '../dispatch.ts';
import { STORAGE_USAGE } from '../pool.ts';
import type { GpuTensor } from '../tensor.ts';
import code from '../../../shaders/sqdist.wgsl?raw';

/** CPU reference: out[i*n + j] = Σ_k (x[i,k] - x[j,k])². */
export function sqdistReference(x: Float32Array, n: number, d: number): Float32Array {
  const out = new Float32Array(n * n);
  for (let i = 0; i < n; i++)
    for (let j = i + 1; j < n; j++) {
      let s = 0;
      for (let k = 0; k < d; k++) {
        const diff = x[i * d + k]! - x[j * d + k]!;
        s += diff * diff;
      }
      out[i * n + j] = s;
      out[j * n + i] = s;
    }
  return out;
}

/** Threads per workgroup side; each thread owns a 4x4 output block. */
const SIDE = 8;

/**
 * Pairwise squared L2 distances between the rows of an F32 matrix [n, d] held in one part (router rows:
 * n ≤ 256, d ≤ 8192 is 8 MiB). Returns a new pooled buffer view of n×n f32, row-major.
 */
export async function sqdist(ctx: GpuContext, x: GpuTensor): Promise<BufferView> {
  if (x.dtype !== 'F32' || x.shape.length !== 2) throw new MoePruneError('InvalidArgument', `sqdist needs an F32 [n, d] matrix, got ${x.dtype}${JSON.stringify(x.shape)}`);
  if (x.parts.length !== 1) throw new MoePruneError('InvalidArgument', `sqdist needs the matrix in one GPU part, it has ${x.parts.length}`);
  const [n, d] = x.shape as [number, number];
  if (n < 1 || d < 1) throw new MoePruneError('InvalidShape', `sqdist needs n ≥ 1 and d ≥ 1, got [${n}, ${d}]`);
  const byteLength = n * n * 4;
  const out = await ctx.pool.acquire(byteLength, STORAGE_USAGE, 'sqdist');
  // Real hidden sizes are multiples of 4 and take the vec4 path; odd test shapes take the scalar one.
  const entryPoint = d % 4 === 0 ? 'main_vec4' : 'main';
  const pipeline = await ctx.pipelines.get({ name: 'sqdist', code, entryPoint, constants: { WG: SIDE } });
  const u = await uniformParams(ctx, [n, d, 0]);
  const groups = Math.ceil(Math.ceil(n / 4) / SIDE);
  try {
    await submitDispatches(ctx, 'sqdist', [{ pipeline, bindings: [x.parts[0]!, { buffer: out, byteLength }, u], workgroups: [groups, groups] }]);
  } catch (e) {
    ctx.pool.release(out);
    throw e;
  } finally {
    ctx.pool.release(u);
  }
  return { buffer: out, byteLength };
}
