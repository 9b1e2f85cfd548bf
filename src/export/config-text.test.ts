import { describe, expect, it } from 'vitest';
import { MoePruneError } from '../core/errors.ts';
import { appendTopLevelMember, patchTopLevelValues } from './config-text.ts';

const CONFIG = `{
  "note": "\\"num_local_experts\\": 99 in a string",
  "router_jitter_noise": 0.0,
  "text_config": { "num_local_experts": 8, "list": [1, {"num_local_experts": 8}] },
  "num_local_experts" :  8,
  "rope_theta": 1e6
}
`;

describe('patchTopLevelValues', () => {
  it('changes only the top-level value, keeping every other byte (0.0 stays 0.0)', () => {
    const out = patchTopLevelValues(CONFIG, { num_local_experts: 5 });
    expect(out).toBe(CONFIG.replace('"num_local_experts" :  8', '"num_local_experts" :  5'));
    expect(out).toContain('"router_jitter_noise": 0.0,');
    const j = JSON.parse(out) as { num_local_experts: number; text_config: { num_local_experts: number } };
    expect([j.num_local_experts, j.text_config.num_local_experts]).toEqual([5, 8]);
  });

  it('patches several keys and numbers in any JSON number syntax, and strings', () => {
    expect(patchTopLevelValues('{"a":-1.5e+3,"b":[0],"c":7}', { a: 2, c: 3 })).toBe('{"a":2,"b":[0],"c":3}');
    expect(patchTopLevelValues('{"t": "mix\\"tral", "n": 1}', { t: 'x_y' })).toBe('{"t": "x_y", "n": 1}');
  });

  it('refuses a missing key or a non-number value with InvalidConfig naming the file', () => {
    for (const [text, re] of [
      ['{"x": {"n": 1}}', /no top-level "n"/],
      ['{"n": "4"}', /"n" is not a number/],
      ['{"n": 4}', /"n" is not a string/],
    ] as const) {
      try {
        patchTopLevelValues(text, { n: re.source.includes('string') ? 's' : 2 });
        throw new Error('expected a throw');
      } catch (e) {
        expect(e).toBeInstanceOf(MoePruneError);
        expect((e as MoePruneError).code).toBe('InvalidConfig');
        expect((e as MoePruneError).message).toMatch(re);
        expect((e as MoePruneError).message).toMatch(/^config\.json: /);
      }
    }
  });
});

describe('appendTopLevelMember', () => {
  it('adds a member after the last one with the same indentation, keeping every other byte', () => {
    const out = appendTopLevelMember(CONFIG, 'moe_prune_experts_per_layer', { '1': 6, '3': 4 });
    expect(out).toBe(CONFIG.replace('"rope_theta": 1e6\n}', '"rope_theta": 1e6,\n  "moe_prune_experts_per_layer": {"1":6,"3":4}\n}'));
    expect(JSON.parse(out).moe_prune_experts_per_layer).toEqual({ '1': 6, '3': 4 });
    expect(appendTopLevelMember('{"a":1}', 'b', [1])).toBe('{"a":1, "b": [1]}');
    expect(appendTopLevelMember('{}', 'b', 2)).toBe('{"b": 2}');
  });

  it('refuses a key that is already there', () => {
    expect(() => appendTopLevelMember(CONFIG, 'rope_theta', 1)).toThrow(/already has a top-level "rope_theta"/);
  });
});
