import { expect, it } from 'vitest';
import { describeGpu } from '../../../tests/gpu-harness.ts';
import { expectClose, readF32, uploadF32, values } from './kernel-test-data.ts';
import { rope, ropeReference } from './rope.ts';

function tables(positions: number, half: number): { cos: Float32Array; sin: Float32Array } {
  const cos = new Float32Array(positions * half);
  const sin = new Float32Array(positions * half);
  for (let p = 0; p < positions; p++)
    for (let i = 0; i < half; i++) {
      const a = p * 10000 ** (-i / half);
      cos[p * half + i] = Math.cos(a);
      sin[p * half + i] = Math.sin(a);
    }
  return { cos, sin };
}

describeGpu('rope kernel', (gpu) => {
  // T = 37 tokens as windows of 13 (+ a partial one): table of 13 positions.
  for (const c of [
    { name: 'halves, full head 40', heads: 3, headStride: 40, rotaryDim: 40, rotaryOffset: 0, interleaved: false },
    { name: 'interleaved, MLA rope part 16 after nope 24', heads: 2, headStride: 40, rotaryDim: 16, rotaryOffset: 24, interleaved: true },
    { name: 'halves, partial rotary 12 of 24', heads: 5, headStride: 24, rotaryDim: 12, rotaryOffset: 0, interleaved: false },
  ]) {
    it(`${c.name} matches the reference`, async () => {
      const ctx = gpu();
      const T = 37;
      const positions = 13;
      const xOffset = 3;
      const tab = tables(positions, c.rotaryDim / 2);
      const x = values(xOffset + T * c.heads * c.headStride, 41);
      const [xv, cv, sv] = [await uploadF32(ctx, x), await uploadF32(ctx, tab.cos), await uploadF32(ctx, tab.sin)];
      const args = { tokens: T, positions, xOffset, ...c };
      await rope(ctx, { x: xv, cos: cv, sin: sv, ...args });
      const want = x.slice();
      ropeReference(want, { ...args, ...tab });
      const got = await readF32(ctx, xv, x.length);
      expectClose(got, want, 1e-6);
      // Position 0 is the identity; a later token really rotates (and untouched values stay bit-equal).
      expect(got[xOffset + c.rotaryOffset]).toBe(x[xOffset + c.rotaryOffset]);
      const t5 = xOffset + 5 * c.heads * c.headStride + c.rotaryOffset;
      expect(Math.abs(got[t5]! - x[t5]!)).toBeGreaterThan(1e-4);
      if (c.rotaryOffset > 0) expect(got[t5 - 1]).toBe(x[t5 - 1]);
      for (const v of [xv, cv, sv]) ctx.pool.release(v.buffer);
    });
  }
});
