import { MoePruneError } from '../../core/errors.ts';
import type { GpuContext } from '../device.ts';
import { grid2d, submitDispatches, uniformParams, workgroupSize, type BufferView, type Dispatch } from '../dispatch.ts';
import type { GpuTensor } from '../tensor.ts';
import { needElems, needInt, weightDtypeCode } from './kernel-args.ts';
import kernel from '../../../shaders/embed.wgsl?raw';
import widen from '../../../shaders/lib/widen.wgsl?raw';

/** The kernel reads stored-dtype tensors through the shared helpers of lib/widen.wgsl (appended, so line numbers hold). */
const code = `${kernel}\n${widen}`;

/** CPU reference: rows of an f32 table [vocab, dim] gathered by id. */
export function embedReference(table: Float32Array, dim: number, ids: ArrayLike<number>): Float32Array {
  const out = new Float32Array(ids.length * dim);
  for (let t = 0; t < ids.length; t++) out.set(table.subarray(ids[t]! * dim, ids[t]! * dim + dim), t * dim);
  return out;
}

/**
 * out [tokens, dim] (f32) = table[ids] for an embedding table [vocab, dim] in its stored dtype, any number of
 * parts (one dispatch per part). Ids must be < vocab: the tokenizer guarantees it; ids past the table are
 * rejected up front only when `idsOnCpu` is given.
 */
export async function embed(ctx: GpuContext, table: GpuTensor, ids: BufferView, tokens: number, out: BufferView, idsOnCpu?: ArrayLike<number>): Promise<void> {
  const what = `embedding ${table.dtype}${JSON.stringify(table.shape)}`;
  if (table.shape.length !== 2) throw new MoePruneError('InvalidShape', `${what}: the table must be 2-D [vocab, dim]`);
  const [vocab, dim] = table.shape as [number, number];
  const dtype = weightDtypeCode(table.dtype, what);
  needInt(tokens, `${what}: tokens`);
  needElems(ids, tokens, `${what}: ids`);
  needElems(out, tokens * dim, `${what}: out`);
  if (idsOnCpu) for (let t = 0; t < tokens; t++) if (!(idsOnCpu[t]! < vocab)) throw new MoePruneError('InvalidArgument', `${what}: token id ${idsOnCpu[t]} is outside the vocabulary`);
  if (tokens === 0 || dim === 0) return;
  const wg = workgroupSize(ctx);
  const pipeline = await ctx.pipelines.get({ name: 'embed', code, entryPoint: 'main', constants: { DTYPE: dtype, WG: wg } });
  const params: GPUBuffer[] = [];
  try {
    const dispatches: Dispatch[] = [];
    for (const part of table.parts) {
      if (part.rows === 0) continue;
      const u = await uniformParams(ctx, [tokens, dim, part.rowStart, part.rows]);
      params.push(u);
      dispatches.push({ pipeline, bindings: [part, ids, out, u], workgroups: grid2d(ctx, Math.ceil((tokens * dim) / wg)) });
    }
    await submitDispatches(ctx, 'embed', dispatches);
  } finally {
    for (const u of params) ctx.pool.release(u);
  }
}
