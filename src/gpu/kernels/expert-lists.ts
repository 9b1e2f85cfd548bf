import { MoePruneError } from '../../core/errors.ts';
import type { GpuContext } from '../device.ts';
import { submitDispatches, uniformParams, workgroupSize, type BufferView } from '../dispatch.ts';
import { readBuffer } from '../pool.ts';
import { needElems, needInt, outputBuffer } from './kernel-args.ts';
import code from '../../../shaders/expert_lists.wgsl?raw';

/** Tokens per invocation in the count/fill passes. */
const BLOCK = 32;

export interface ExpertLists {
  /** u32 [experts + 1]: expert e owns entries offsets[e] .. offsets[e + 1]. */
  readonly offsets: BufferView;
  /** u32 [tokens · k]: token rows, ascending within each expert. */
  readonly tokens: BufferView;
  /** f32 [tokens · k]: the router weight of each entry. */
  readonly weights: BufferView;
}

/** CPU reference: the same lists from top-k ids/weights [tokens, k]. */
export function expertListsReference(ids: ArrayLike<number>, weights: ArrayLike<number>, tokens: number, k: number, experts: number): {
  offsets: Uint32Array; tokens: Uint32Array; weights: Float32Array;
} {
  const per: Array<Array<[number, number]>> = Array.from({ length: experts }, () => []);
  for (let t = 0; t < tokens; t++) for (let j = 0; j < k; j++) per[ids[t * k + j]!]!.push([t, weights[t * k + j]!]);
  const offsets = new Uint32Array(experts + 1);
  const toks = new Uint32Array(tokens * k);
  const ws = new Float32Array(tokens * k);
  let n = 0;
  per.forEach((list, e) => {
    for (const [t, w] of list) {
      toks[n] = t;
      ws[n++] = w;
    }
    offsets[e + 1] = n;
  });
  return { offsets, tokens: toks, weights: ws };
}

/**
 * Builds every expert's token list on the GPU from the router output (ids must be < experts: the router
 * guarantees it). Returns new pooled buffers; release them with releaseExpertLists.
 */
export async function buildExpertLists(ctx: GpuContext, ids: BufferView, weights: BufferView, tokens: number, k: number, experts: number): Promise<ExpertLists> {
  const what = `expert lists (${tokens} tokens, top-${k}, ${experts} experts)`;
  needInt(tokens, `${what}: tokens`);
  needInt(k, `${what}: k`, 1);
  needInt(experts, `${what}: experts`, 1);
  needElems(ids, tokens * k, `${what}: ids`);
  needElems(weights, tokens * k, `${what}: weights`);
  const blocks = Math.ceil(tokens / BLOCK);
  const wg = workgroupSize(ctx, 64);
  if (Math.ceil(Math.max(blocks, experts) / wg) > ctx.limits.maxComputeWorkgroupsPerDimension)
    throw new MoePruneError('InvalidArgument', `${what}: too many tokens for one call; split them`);
  const offsets = await outputBuffer(ctx, experts + 1, 'expert offsets');
  const list = await outputBuffer(ctx, tokens * k, 'expert tokens');
  const listW = await outputBuffer(ctx, tokens * k, 'expert weights');
  const counts = await outputBuffer(ctx, Math.max(1, blocks) * experts, 'expert block counts');
  const u = await uniformParams(ctx, [tokens, k, experts, blocks]);
  try {
    const get = (entryPoint: string) => ctx.pipelines.get({ name: 'expert_lists', code, entryPoint, constants: entryPoint === 'prefix' ? {} : { WG: wg, BLOCK } });
    const [count, scan, prefix, fill] = await Promise.all([get('count'), get('scan'), get('prefix'), get('fill')]);
    const all = [ids, weights, counts, offsets, list, listW, u];
    const only = (...keep: number[]) => all.map((b, i) => (keep.includes(i) ? b : undefined));
    await submitDispatches(ctx, 'expert lists', [
      ...(blocks > 0 ? [{ pipeline: count, bindings: only(0, 2, 6), workgroups: [Math.ceil(blocks / wg)] as [number] }] : []),
      { pipeline: scan, bindings: only(2, 3, 6), workgroups: [Math.ceil(experts / wg)] },
      { pipeline: prefix, bindings: only(3, 6), workgroups: [1] },
      ...(blocks > 0 ? [{ pipeline: fill, bindings: all, workgroups: [Math.ceil(blocks / wg)] as [number] }] : []),
    ]);
  } catch (e) {
    for (const b of [offsets, list, listW]) ctx.pool.release(b.buffer);
    throw e;
  } finally {
    ctx.pool.release(counts.buffer);
    ctx.pool.release(u);
  }
  return { offsets, tokens: list, weights: listW };
}

/** Reads the offsets back (experts + 1 numbers): counts per expert, and the dispatch sizes of expert matmuls. */
export async function readExpertOffsets(ctx: GpuContext, lists: ExpertLists, experts: number): Promise<Uint32Array> {
  const b = await readBuffer(ctx, lists.offsets.buffer, (experts + 1) * 4);
  return new Uint32Array(b.buffer, b.byteOffset, experts + 1);
}

export function releaseExpertLists(ctx: GpuContext, lists: ExpertLists): void {
  for (const b of [lists.offsets, lists.tokens, lists.weights]) ctx.pool.release(b.buffer);
}
