import { describe, expect, it } from 'vitest';
import { MoePruneError } from '../core/errors.ts';
import { meanF32, meanInDtype } from './mean.ts';

const u16le = (...xs: number[]): Uint8Array => new Uint8Array(new Uint16Array(xs).buffer);
const f32le = (...xs: number[]): Uint8Array => new Uint8Array(new Float32Array(xs).buffer);
const asU16 = (b: Uint8Array): number[] => [...new Uint16Array(b.buffer, b.byteOffset, b.byteLength / 2)];
const asF32 = (b: Uint8Array): number[] => [...new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4)];

function codeOf(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    return e instanceof MoePruneError ? e.code : String(e);
  }
  return undefined;
}

describe('meanInDtype', () => {
  it('BF16: a mean exactly between two bf16 values rounds to the even one', () => {
    // 0x3F80 = 1, 0x3F81 = 1 + 2^-7, 0x3F82 = 1 + 2^-6: both means are ties.
    const out = meanInDtype('BF16', [u16le(0x3f80, 0x3f81), u16le(0x3f81, 0x3f82)]);
    expect(asU16(out).map((h) => h.toString(16))).toEqual(['3f80', '3f82']);
  });

  it('F16: 2 members tie to even; 3 members round to nearest', () => {
    // 1 and 1 + 2^-10 tie → 0x3C00. (1 + 2 + 4) / 3 = 2.333… → 2 × (1 + 171/1024) = 0x40AB.
    expect(asU16(meanInDtype('F16', [u16le(0x3c00), u16le(0x3c01)]))).toEqual([0x3c00]);
    expect(asU16(meanInDtype('F16', [u16le(0x3c00), u16le(0x4000), u16le(0x4400)]))).toEqual([0x40ab]);
  });

  it('F32: sums in f32 in member order, then × 1/n', () => {
    const t = 2 ** -24; // half an f32 ulp of 1: 1 + t rounds back to 1 (tie to even), t + t does not.
    expect(asF32(meanInDtype('F32', [f32le(1.5, -2), f32le(-0.5, 3)]))).toEqual([0.5, 0.5]);
    expect(asF32(meanInDtype('F32', [f32le(1), f32le(t), f32le(t)]))).toEqual([Math.fround(1 / 3)]);
    expect(asF32(meanInDtype('F32', [f32le(t), f32le(t), f32le(1)]))).toEqual([Math.fround((1 + 2 * t) / 3)]);
    expect(Math.fround(1 / 3)).not.toBe(Math.fround((1 + 2 * t) / 3));
  });

  it('refuses FP8 (needs requantising), mismatched sizes and no members', () => {
    expect(codeOf(() => meanInDtype('F8_E4M3', [new Uint8Array([0x38]), new Uint8Array([0x40])]))).toBe('UnsupportedDtype');
    expect(codeOf(() => meanInDtype('BF16', [u16le(1, 2), u16le(1)]))).toBe('InvalidPlan');
    expect(codeOf(() => meanInDtype('BF16', []))).toBe('InvalidPlan');
  });
});

describe('meanF32', () => {
  it('keeps -0, leaves its inputs unchanged, and matches meanInDtype on F32', () => {
    const a = new Float32Array([-0, 2, 7]);
    const b = new Float32Array([-0, 4, 0.1]);
    const m = meanF32([a, b]);
    expect(Object.is(m[0], -0)).toBe(true);
    expect([...m.subarray(1)]).toEqual([3, Math.fround(Math.fround(7 + Math.fround(0.1)) * 0.5)]);
    expect([...a]).toEqual([-0, 2, 7]);
    expect([...m]).toEqual(asF32(meanInDtype('F32', [f32le(...a), f32le(...b)])));
  });
});
