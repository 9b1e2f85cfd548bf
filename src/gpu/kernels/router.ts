import { MoePruneError } from '../../core/errors.ts';
import type { GpuContext } from '../device.ts';
import { grid2d, submitDispatches, uniformParams, workgroupSize, type BufferView } from '../dispatch.ts';
import { f32Bits, needElems, needInt, outputBuffer, placeholder } from './kernel-args.ts';
import code from '../../../shaders/router.wgsl?raw';

/** Most experts (and groups) the kernel's per-token arrays hold. */
export const ROUTER_MAX_EXPERTS = 512;

/** Router settings; field names match the reference forward pass's RouterSpec, so one can be passed as is. */
export interface RouterConfig {
  readonly experts: number;
  readonly topK: number;
  readonly scoring: 'softmax' | 'sigmoid' | 'sparsemixer';
  readonly normTopkProb: boolean;
  readonly groups: { readonly nGroup: number; readonly topkGroup: number; readonly groupScore: 'max' | 'top2-sum' } | null;
  readonly routedScalingFactor: number;
  /** PhiMoE sparsemixer threshold. */
  readonly jitterEps: number;
}

export interface RouterArgs {
  /** f32 router logits [tokens, experts] from element logitsOffset, rows logitsStride apart (default experts). */
  readonly logits: BufferView;
  readonly tokens: number;
  readonly config: RouterConfig;
  /** f32 [experts] correction bias, added to the scores for the CHOICE only (DeepSeek-V3 e_score_correction_bias). */
  readonly correctionBias?: BufferView;
  /** Bit e set = expert e is removed by a pruning plan (logit −∞). ceil(experts/32) u32 words. */
  readonly removed?: BufferView;
  readonly logitsOffset?: number;
  readonly logitsStride?: number;
}

export interface RouterResult {
  /** u32 [tokens, topK], best first. */
  readonly ids: BufferView;
  /** f32 [tokens, topK]. */
  readonly weights: BufferView;
}

const SCORING = { softmax: 0, sigmoid: 1, sparsemixer: 2 } as const;

/** CPU reference of one token (f64), same rules as router.wgsl. `removed[e]` true = expert pruned. */
export function routerReference(
  logits: ArrayLike<number>, c: RouterConfig, bias?: ArrayLike<number>, removed?: ArrayLike<boolean>,
): { ids: number[]; weights: number[] } {
  const E = c.experts;
  const gone = (e: number): boolean => removed?.[e] === true;
  const argmax = (v: ArrayLike<number>, lo: number, hi: number, skip: Set<number>): number => {
    let best = -1;
    for (let e = lo; e < hi; e++) if (!skip.has(e) && (best < 0 || v[e]! > v[best]!)) best = e;
    return best;
  };
  if (c.scoring === 'sparsemixer') {
    const skip = new Set<number>();
    for (let e = 0; e < E; e++) if (gone(e)) skip.add(e);
    const ids: number[] = [];
    const weights: number[] = [];
    for (let r = 0; r < 2; r++) {
      const best = argmax(logits, 0, E, skip);
      const thr = logits[best]!;
      let s = 0;
      for (let e = 0; e < E; e++) {
        if (skip.has(e)) continue;
        const z = logits[e]!;
        const factor = Math.max(Math.abs(z), thr);
        if (factor > 0 && (thr - z) / factor > 2 * c.jitterEps) continue;
        s += Math.exp(z - thr);
      }
      skip.add(best);
      ids.push(best);
      weights.push(c.routedScalingFactor / s);
    }
    return { ids, weights };
  }
  let m = -Infinity;
  for (let e = 0; e < E; e++) if (!gone(e)) m = Math.max(m, logits[e]!);
  const score = Array.from({ length: E }, (_, e) => (gone(e) ? 0 : c.scoring === 'softmax' ? Math.exp(logits[e]! - m) : 1 / (1 + Math.exp(-logits[e]!))));
  if (c.scoring === 'softmax') {
    const sum = score.reduce((a, b) => a + b, 0);
    for (let e = 0; e < E; e++) score[e] = score[e]! / sum;
  }
  const choice = score.map((s, e) => (gone(e) ? -Infinity : s + (bias ? bias[e]! : 0)));
  if (c.groups && c.groups.nGroup > 1) {
    const per = E / c.groups.nGroup;
    const gs = Array.from({ length: c.groups.nGroup }, (_, g) => {
      const a = argmax(choice, g * per, g * per + per, new Set());
      if (c.groups!.groupScore === 'max' || per < 2) return choice[a]!;
      return choice[a]! + choice[argmax(choice, g * per, g * per + per, new Set([a]))]!;
    });
    const keep = new Set<number>();
    for (let r = 0; r < c.groups.topkGroup; r++) keep.add(argmax(gs, 0, gs.length, keep));
    for (let e = 0; e < E; e++)
      if (!keep.has(Math.floor(e / per))) {
        if (c.scoring === 'softmax') choice[e] = score[e] = 0;
        else choice[e] = -Infinity;
      }
  }
  const ids: number[] = [];
  const taken = new Set<number>();
  for (let r = 0; r < c.topK; r++) {
    const e = argmax(choice, 0, E, taken);
    taken.add(e);
    ids.push(e);
  }
  let f = c.routedScalingFactor;
  if (c.normTopkProb) f /= ids.reduce((a, e) => a + score[e]!, 0) + (c.scoring === 'sigmoid' ? 1e-20 : 0);
  return { ids, weights: ids.map((e) => score[e]! * f) };
}

/** Routes every token; returns new pooled buffers of expert ids and weights (release both when done). */
export async function router(ctx: GpuContext, a: RouterArgs): Promise<RouterResult> {
  const c = a.config;
  const what = `router (${c.scoring}, ${c.experts} experts, top-${c.topK})`;
  needInt(a.tokens, `${what}: tokens`);
  needInt(c.experts, `${what}: experts`, 1);
  needInt(c.topK, `${what}: topK`, 1);
  if (c.experts > ROUTER_MAX_EXPERTS) throw new MoePruneError('InvalidArgument', `${what}: more than ${ROUTER_MAX_EXPERTS} experts are not supported`);
  if (c.topK > c.experts) throw new MoePruneError('InvalidArgument', `${what}: top-k exceeds the expert count`);
  if (c.scoring === 'sparsemixer' && c.topK !== 2) throw new MoePruneError('InvalidArgument', `${what}: sparsemixer routes exactly 2 experts`);
  const g = c.groups && c.groups.nGroup > 1 ? c.groups : null;
  if (g && (c.experts % g.nGroup !== 0 || g.topkGroup < 1 || g.topkGroup > g.nGroup || g.nGroup > 32))
    throw new MoePruneError('InvalidArgument', `${what}: ${g.nGroup} groups / keep ${g.topkGroup} do not divide ${c.experts} experts (at most 32 groups)`);
  const off = a.logitsOffset ?? 0;
  const stride = a.logitsStride ?? c.experts;
  if (stride < c.experts) throw new MoePruneError('InvalidArgument', `${what}: logits stride ${stride} is below the expert count`);
  if (a.tokens > 0) needElems(a.logits, off + (a.tokens - 1) * stride + c.experts, `${what}: logits`);
  if (a.correctionBias) needElems(a.correctionBias, c.experts, `${what}: correction bias`);
  if (a.removed) needElems(a.removed, Math.ceil(c.experts / 32), `${what}: removed mask`);

  const ids = await outputBuffer(ctx, a.tokens * c.topK, 'router ids');
  const weights = await outputBuffer(ctx, a.tokens * c.topK, 'router weights');
  if (a.tokens === 0) return { ids, weights };
  const wg = workgroupSize(ctx, 64);
  const dummy = await placeholder(ctx);
  const u = await uniformParams(ctx, [
    a.tokens, c.experts, c.topK, g?.nGroup ?? 1, g?.topkGroup ?? 1, g?.groupScore === 'top2-sum' ? 1 : 0,
    c.normTopkProb ? 1 : 0, f32Bits(c.routedScalingFactor), f32Bits(c.jitterEps), off, stride,
  ]);
  try {
    const pipeline = await ctx.pipelines.get({
      name: 'router',
      code,
      entryPoint: 'main',
      constants: { SCORING: SCORING[c.scoring], HAS_BIAS: a.correctionBias ? 1 : 0, HAS_REMOVED: a.removed ? 1 : 0, WG: wg },
    });
    await submitDispatches(ctx, 'router', [
      { pipeline, bindings: [a.logits, ids, weights, u, a.correctionBias ?? dummy, a.removed ?? dummy], workgroups: grid2d(ctx, Math.ceil(a.tokens / wg)) },
    ]);
  } catch (e) {
    ctx.pool.release(ids.buffer);
    ctx.pool.release(weights.buffer);
    throw e;
  } finally {
    ctx.pool.release(u);
    ctx.pool.release(dummy.buffer);
  }
  return { ids, weights };
}
