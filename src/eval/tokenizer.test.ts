import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createTokenizer } from './tokenizer.ts';

// Expected ids come from Python `tokenizers` (oracle/make_eval_fixtures.py); no Python is needed here.
const REPO = join(import.meta.dirname, '..', '..');
const readJsonFile = (p: string): unknown => JSON.parse(readFileSync(join(REPO, p), 'utf8'));
interface Case { tokenizer: string; text_key: string; ids: number[]; raw_ids: number[]; raw_ids_no_special: number[]; auto_ids: number[] }
const expected = readJsonFile('fixtures/eval/tokenizer-expected.json') as { texts: Record<string, string>; cases: Case[] };
const load = (dir: string) => createTokenizer(readJsonFile(`${dir}/tokenizer.json`), readJsonFile(`${dir}/tokenizer_config.json`));

describe('checkpoint tokenizer', () => {
  for (const c of expected.cases)
    it(`${c.tokenizer} on "${c.text_key}" gives the ids of Python tokenizers`, () => {
      const tok = load(c.tokenizer);
      const text = expected.texts[c.text_key]!;
      expect(tok.encode(text)).toEqual(c.ids);
      expect(tok.encode(text, { addSpecialTokens: false })).toEqual(c.raw_ids_no_special);
    });

  it('uses the tokenizer.json template when the config states no flags (BOS <s> = 1 first)', () => {
    const tok = load('fixtures/models/mixtral');
    expect(tok.flags.addBos).toBeNull();
    expect(tok.encode('the small model')[0]).toBe(1);
    expect(tok.specialTokenCounts()).toEqual({ before: 1, after: 0 });
  });

  it('lets explicit tokenizer_config flags override the post-processor (no BOS, EOS appended)', () => {
    const tok = load('fixtures/eval/bytelevel-eos-tokenizer');
    const ids = tok.encode('It is a truth.');
    expect(ids[0]).not.toBe(0);
    expect(ids.at(-1)).toBe(1);
    expect(tok.specialTokenCounts()).toEqual({ before: 0, after: 1 });
  });

  it('rejects a file that is not a tokenizer', () => {
    expect(() => createTokenizer({ version: '1.0' }, null)).toThrow(/not a tokenizers JSON file/);
  });
});
