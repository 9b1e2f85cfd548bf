import { MoePruneError } from '../../core/errors.ts';
import type { GpuContext } from '../device.ts';
import { grid2d, submitDispatches, uniformParams, workgroupSize, type BufferView } from '../dispatch.ts';
import { needElems, needInt, outputBuffer } from './kernel-args.ts';
import code from '../../../shaders/nll.wgsl?raw';

/** Target id meaning "no next token here": its NLL is 0 and it must not be counted. */
export const NO_TARGET = 0xffffffff;

/** CPU reference (f64): logsumexp(row) − row[target]. */
export function nllReference(logits: Float32Array, rows: number, vocab: number, targets: ArrayLike<number>): Float64Array {
  const out = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    if (targets[r] === NO_TARGET) continue;
    const row = logits.subarray(r * vocab, r * vocab + vocab);
    let m = -Infinity;
    for (const z of row) m = Math.max(m, z);
    let s = 0;
    for (const z of row) s += Math.exp(z - m);
    out[r] = m + Math.log(s) - row[targets[r]!]!;
  }
  return out;
}

/**
 * Per-row negative log-likelihood of `targets` (u32 [rows], each < vocab or NO_TARGET) under f32 logits
 * [rows, vocab] (rows `stride` elements apart from element `offset`). Returns a new pooled f32 [rows] buffer;
 * perplexity = exp(mean of the counted rows).
 */
export async function nll(ctx: GpuContext, logits: BufferView, targets: BufferView, rows: number, vocab: number, layout: { offset?: number; stride?: number } = {}): Promise<BufferView> {
  const what = `nll [${rows}, ${vocab}]`;
  needInt(rows, `${what}: rows`);
  needInt(vocab, `${what}: vocab`, 1);
  const off = layout.offset ?? 0;
  const stride = layout.stride ?? vocab;
  if (stride < vocab) throw new MoePruneError('InvalidArgument', `${what}: row stride ${stride} is below the vocabulary size`);
  if (rows > 0) needElems(logits, off + (rows - 1) * stride + vocab, `${what}: logits`);
  needElems(targets, rows, `${what}: targets`);
  const out = await outputBuffer(ctx, rows, 'nll');
  if (rows === 0) return out;
  const wg = workgroupSize(ctx, 64);
  const u = await uniformParams(ctx, [rows, vocab, off, stride]);
  try {
    const pipeline = await ctx.pipelines.get({ name: 'nll', code, entryPoint: 'main', constants: { WG: wg } });
    await submitDispatches(ctx, 'nll', [{ pipeline, bindings: [logits, targets, out, u], workgroups: grid2d(ctx, rows) }]);
  } catch (e) {
    ctx.pool.release(out.buffer);
    throw e;
  } finally {
    ctx.pool.release(u);
  }
  return out;
}
