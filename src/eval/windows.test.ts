import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createTokenizer } from './tokenizer.ts';
import { makeWindows, mulberry32, parseCalibrationText, tokenizePrefix, windowsFromTokens } from './windows.ts';

const REPO = join(import.meta.dirname, '..', '..');
const readJsonFile = (p: string): unknown => JSON.parse(readFileSync(join(REPO, p), 'utf8'));
const dir = 'fixtures/eval/bytelevel-tokenizer';
const tok = createTokenizer(readJsonFile(`${dir}/tokenizer.json`), readJsonFile(`${dir}/tokenizer_config.json`));
const texts = (readJsonFile('fixtures/eval/tokenizer-expected.json') as { texts: Record<string, string> }).texts;
const arr = (w: Int32Array[]) => w.map((x) => Array.from(x));

describe('calibration windows', () => {
  it('takes the first N non-overlapping windows by default', () => {
    const w = windowsFromTokens([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], { count: 3, length: 3 });
    expect(arr(w.windows)).toEqual([[0, 1, 2], [3, 4, 5], [6, 7, 8]]);
    expect(w.sampling).toBe('first');
    expect(windowsFromTokens([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], { count: 5, length: 3 }).windows).toHaveLength(3);
  });

  it('mulberry32 gives the documented sequence (values from an independent Python port)', () => {
    const r = mulberry32(42);
    expect([r(), r(), r()]).toEqual([0.6011037519201636, 0.44829055899754167, 0.8524657934904099]);
    const z = mulberry32(0);
    expect([z(), z()]).toEqual([0.26642920868471265, 0.0003297457005828619]);
  });

  it('draws seeded random windows as start = floor(u·(T−L+1))', () => {
    const tokens = Array.from({ length: 100 }, (_, i) => i);
    const w = windowsFromTokens(tokens, { count: 3, length: 10, sampling: 'random', seed: 42 });
    expect(w.windows.map((x) => x[0])).toEqual([54, 40, 77]); // floor(0.6011·91), floor(0.4483·91), floor(0.8525·91)
    expect(arr(w.windows)[0]).toEqual(Array.from({ length: 10 }, (_, i) => 54 + i));
    expect(arr(windowsFromTokens(tokens, { count: 3, length: 10, sampling: 'random', seed: 42 }).windows)).toEqual(arr(w.windows));
    expect(w.seed).toBe(42);
  });

  it('reads JSONL "text" fields and plain text', () => {
    expect(parseCalibrationText('{"text": "a b"}\n{"text": "c", "id": 2}\n', 'cal.jsonl')).toEqual(['a b', 'c']);
    expect(parseCalibrationText('Chapter 1\n{not json}\n', 'book.txt')).toEqual(['Chapter 1\n{not json}\n']);
    expect(() => parseCalibrationText('{"text": 1}\n', 'x.jsonl')).toThrow(/line 1 has no string "text" field/);
    expect(() => parseCalibrationText('{"text": "a"}\n{oops}\n', 'x.jsonl')).toThrow(/line 2 is not valid JSON/);
  });

  it('tokenizes only a prefix, with the same leading tokens as the whole text', () => {
    const text = texts['pride-opening']!;
    const full = tok.encode(text);
    expect(tokenizePrefix(tok, text, 300, 400)).toEqual(full.slice(0, 300));
    const w = makeWindows(tok, [text], { count: 4, length: 64 });
    expect(arr(w.windows)).toEqual([0, 1, 2, 3].map((i) => full.slice(i * 64, i * 64 + 64)));
    expect(w.windows[0]![0]).toBe(0); // BOS of the document
  });

  it('concatenates documents, each with its own special tokens', () => {
    const w = makeWindows(tok, ['It is a truth.', 'My dear Mr. Bennet.'], { count: 1, length: 8 });
    const a = tok.encode('It is a truth.');
    const b = tok.encode('My dear Mr. Bennet.');
    expect(Array.from(w.windows[0]!)).toEqual([...a, ...b].slice(0, 8));
    expect(() => makeWindows(tok, ['short'], { count: 1, length: 64 })).toThrow(/fewer than one window of 64/);
  });
});
