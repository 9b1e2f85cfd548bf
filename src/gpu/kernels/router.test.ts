import { expect, it } from 'vitest';
import { describeGpu } from '../../../tests/gpu-harness.ts';
import { route } from '../../forward/reference/router.ts';
import { expectClose, readF32, readU32, uploadF32, values } from './kernel-test-data.ts';
import { router, routerReference, type RouterConfig } from './router.ts';

const base = { normTopkProb: false, groups: null, routedScalingFactor: 1, jitterEps: 0.01 } as const;
const cases: Array<{ name: string; c: RouterConfig; bias?: boolean; removed?: number[] }> = [
  { name: 'softmax top-2 renormalised (Mixtral), expert 3 removed', c: { ...base, experts: 7, topK: 2, scoring: 'softmax', normTopkProb: true }, removed: [3] },
  { name: 'softmax grouped max, 4 groups keep 2, top-3, ×2.5 (DeepSeek-V2)', c: { ...base, experts: 8, topK: 3, scoring: 'softmax', groups: { nGroup: 4, topkGroup: 2, groupScore: 'max' }, routedScalingFactor: 2.5 } },
  { name: 'sigmoid + correction bias, groups by top-2 sum, renormalised, ×2.5 (DeepSeek-V3)', c: { ...base, experts: 16, topK: 4, scoring: 'sigmoid', normTopkProb: true, groups: { nGroup: 4, topkGroup: 2, groupScore: 'top2-sum' }, routedScalingFactor: 2.5 }, bias: true },
  { name: 'sparsemixer top-2 (PhiMoE), expert 0 removed', c: { ...base, experts: 7, topK: 2, scoring: 'sparsemixer', jitterEps: 0.05 }, removed: [0] },
];

describeGpu('router kernel', (gpu) => {
  for (const tc of cases) {
    it(tc.name, async () => {
      const ctx = gpu();
      const T = 37;
      const E = tc.c.experts;
      const stride = E + 2;
      const logits = values(1 + T * stride, 61, 2);
      // Token 0: exact ties between experts 4 and 5 must go to 4 (unless grouping decides otherwise).
      logits[1 + 4] = logits[1 + 5] = 5;
      const bias = tc.bias ? values(E, 62, 0.3) : undefined;
      const removed = new Uint32Array(Math.ceil(E / 32));
      for (const e of tc.removed ?? []) removed[e >> 5]! |= 1 << (e & 31);
      const [lv, bv, rv] = [await uploadF32(ctx, logits), bias ? await uploadF32(ctx, bias) : undefined, await uploadF32(ctx, removed)];
      const res = await router(ctx, {
        logits: lv, tokens: T, config: tc.c, logitsOffset: 1, logitsStride: stride,
        ...(bv ? { correctionBias: bv } : {}), ...(tc.removed ? { removed: rv } : {}),
      });
      const ids = await readU32(ctx, res.ids, T * tc.c.topK);
      const w = await readF32(ctx, res.weights, T * tc.c.topK);
      const wantIds: number[] = [];
      const wantW: number[] = [];
      const isRemoved = Array.from({ length: E }, (_, e) => (tc.removed ?? []).includes(e));
      for (let t = 0; t < T; t++) {
        const row = logits.subarray(1 + t * stride, 1 + t * stride + E);
        const r = routerReference(row, tc.c, bias, isRemoved);
        wantIds.push(...r.ids);
        wantW.push(...r.weights);
        // Same choices and weights as the reference forward pass's router.
        const spec = { ...tc.c, correctionBias: !!bias };
        const other = route(row, spec, { ...(bias ? { correctionBias: bias } : {}), ...(tc.removed ? { removed: new Set(tc.removed) } : {}) });
        expect(other.experts).toEqual(r.ids);
        expectClose(other.weights, r.weights, 1e-9);
      }
      expect([...ids]).toEqual(wantIds);
      expectClose(w, wantW, 1e-5);
      for (const e of tc.removed ?? []) expect(ids.includes(e)).toBe(false);
      if (tc.c.scoring === 'softmax' && !tc.c.groups) expect(ids[0]).toBe(4);
      for (const b of [lv, rv, res.ids, res.weights, ...(bv ? [bv] : [])]) ctx.pool.release(b.buffer);
    });
  }
});
