import { expect, it } from 'vitest';
import { describeGpu } from '../../../tests/gpu-harness.ts';
import { expectClose, readF32, uploadF32, values } from './kernel-test-data.ts';
import { NO_TARGET, nll, nllReference } from './nll.ts';

describeGpu('nll kernel', (gpu) => {
  it('log-softmax NLL of targets over a vocab of 1001 (T=37, large logits, one row without target)', async () => {
    const ctx = gpu();
    const [T, V] = [37, 1001];
    const logits = values(T * V, 91, 8);
    logits[5] = 80; // a dominant logit: exp without the max shift would overflow
    const targets = Uint32Array.from({ length: T }, (_, t) => (t * 97 + 3) % V);
    targets[0] = 5;
    targets[T - 1] = NO_TARGET;
    const [lv, tv] = [await uploadF32(ctx, logits), await uploadF32(ctx, targets)];
    const out = await nll(ctx, lv, tv, T, V);
    const got = await readF32(ctx, out, T);
    const want = nllReference(logits, T, V, targets);
    expectClose(got, want, 1e-5);
    expect(got[0]).toBeLessThan(1e-3);
    expect(got[1]).toBeGreaterThan(1);
    expect(got[T - 1]).toBe(0);
    for (const b of [lv, tv, out]) ctx.pool.release(b.buffer);
  });
});
