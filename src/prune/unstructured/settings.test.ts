import { describe, expect, it } from 'vitest';
import { thrown } from '../../../tests/errors.ts';
import { lodPercent, owlRatios } from './owl.ts';
import { checkUnstructuredSettings, parseNm, UNSTRUCTURED_DEFAULTS, unstructuredRatio } from './settings.ts';

describe('stage-2 settings', () => {
  it('splits a total target the STUN way: s_e + (1 − s_e)·s_u = S, and refuses S below the expert share', () => {
    expect(unstructuredRatio(0.5, 0)).toBe(0.5);
    const su = unstructuredRatio(0.4, 0.2);
    expect(su).toBeCloseTo(0.25, 12);
    expect(0.2 + 0.8 * su).toBeCloseTo(0.4, 12);
    expect(unstructuredRatio(0.25, 0.25)).toBe(0);
    const e = thrown(() => unstructuredRatio(0.2, 0.25));
    expect(e.message).toMatch(/below what expert pruning alone removes \(0\.2500/);
    expect(thrown(() => unstructuredRatio(1, 0)).message).toMatch(/\[0, 1\)/);
  });

  it('parses N:M patterns and refuses malformed ones', () => {
    expect(parseNm('2:4')).toEqual({ n: 2, m: 4 });
    expect(parseNm(' 4:8 ')).toEqual({ n: 4, m: 8 });
    for (const bad of ['4:4', '0:4', '2-4', '5:3', 'a:b']) expect(thrown(() => parseNm(bad)).message).toMatch(/1 ≤ n < m/);
  });

  it('refuses contradicting settings before any work', () => {
    const base = { ...UNSTRUCTURED_DEFAULTS, sparsity: 0.5 };
    expect(() => checkUnstructuredSettings(base)).not.toThrow();
    expect(thrown(() => checkUnstructuredSettings({ ...base, nm: { n: 2, m: 4 } })).message).toMatch(/either --sparsity or --nm/);
    expect(thrown(() => checkUnstructuredSettings({ ...base, sparsity: null })).message).toMatch(/give a total sparsity/);
    expect(thrown(() => checkUnstructuredSettings({ ...base, method: 'owl', sparsity: null, nm: { n: 2, m: 4 } })).message).toMatch(/OWL/);
  });
});

describe('OWL layer ratios', () => {
  it('spread around the target by outlier density, mean preserved, lower sparsity for more outliers', () => {
    const lod = [1, 3, 2, 5];
    const s = owlRatios(lod, 0.5, 0.08);
    // r = (LOD − 1)/4 · 0.16 = [0, 0.08, 0.04, 0.16]; mean 0.07; s = 0.5 − (r − 0.07)
    expect(s.map((v) => +v.toFixed(10))).toEqual([0.57, 0.49, 0.53, 0.41]);
    expect(s.reduce((a, b) => a + b) / s.length).toBeCloseTo(0.5, 12);
    expect(s[3]).toBeLessThan(s[0]!);
  });

  it('equal densities give the target everywhere; ratios at or below 0 become 0.01', () => {
    expect(owlRatios([2, 2, 2], 0.3, 0.08)).toEqual([0.3, 0.3, 0.3]);
    expect(owlRatios([0, 10], 0.05, 0.2)).toEqual([0.25, 0.01]);
    expect(owlRatios([], 0.5, 0.1)).toEqual([]);
    expect(lodPercent(3, 12)).toBe(25);
    expect(lodPercent(0, 0)).toBe(0);
  });
});
