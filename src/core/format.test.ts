import { describe, expect, it } from 'vitest';
import { formatBytes, formatCount, formatCountRange } from './format.ts';

describe('formatCount', () => {
  it('uses B / M / k with the precision model cards use', () => {
    expect(formatCount(46_702_792_704)).toBe('46.70 B');
    expect(formatCount(1_234_567)).toBe('1.23 M');
    expect(formatCount(7_500)).toBe('7.5 k');
    expect(formatCount(999)).toBe('999');
  });
});

describe('formatBytes', () => {
  it('uses decimal units with three significant digits', () => {
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(1_536_000)).toBe('1.54 MB');
    expect(formatBytes(-25_000)).toBe('-25.0 kB');
  });
});

describe('formatCountRange', () => {
  it('one number when all counts agree, else smallest–largest', () => {
    expect(formatCountRange([4, 4])).toBe('4');
    expect(formatCountRange([5, 3, 4])).toBe('3–5');
    expect(formatCountRange(new Map([[1, 2], [3, 6]]).values(), '-')).toBe('2-6');
  });
});
