import { describe, expect, it } from 'vitest';
import { formatBytes, formatCount } from './format.ts';

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
