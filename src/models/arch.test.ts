import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { routingOf, detectFamily } from './families.ts';
import { readArchConfig } from './arch.ts';

const config = (name: string): Record<string, unknown> =>
  JSON.parse(readFileSync(new URL(`../../fixtures/models/${name}/config.json`, import.meta.url), 'utf8')) as Record<string, unknown>;

describe('readArchConfig takes the MoE structure from the family table', () => {
  it('follows the naming the tensors use: transformers v5 fused Mixtral experts live under mlp', () => {
    const c = config('mixtral');
    expect(readArchConfig(c).names.moeBlock).toBe('block_sparse_moe');
    const fusedNames = ['model.layers.0.mlp.gate.weight', 'model.layers.0.mlp.experts.gate_up_proj', 'model.layers.0.mlp.experts.down_proj'];
    expect(readArchConfig(c, 'config.json', fusedNames).names.moeBlock).toBe('mlp');
  });

  it('agrees with the catalogue on routing for every fixture family, including the quirks', () => {
    for (const name of ['mixtral', 'qwen2_moe', 'qwen3_moe', 'olmoe', 'phimoe', 'deepseek_v2', 'deepseek_v3', 'arctic']) {
      const c = config(name);
      const arch = readArchConfig(c);
      expect(arch.moe.router.normTopkProb, name).toBe(routingOf(detectFamily(c), c).normTopkProb);
    }
    // DeepSeek-V2 never renormalises in transformers, even when the config says norm_topk_prob: true.
    const v2 = { ...config('deepseek_v2'), norm_topk_prob: true };
    expect(readArchConfig(v2).moe.router.normTopkProb).toBe(false);
    expect(routingOf(detectFamily(v2), v2).normTopkProb).toBe(false);
    // Arctic renormalises only when more than one expert is chosen.
    const a1 = { ...config('arctic'), num_experts_per_tok: 1 };
    expect(readArchConfig(a1).moe.router.normTopkProb).toBe(false);
    expect(routingOf(detectFamily(a1), a1).normTopkProb).toBe(false);
  });

  it('reads the dense MLP width only for families whose table has dense layers', () => {
    // Mixtral's intermediate_size is the expert width; it has no dense MLP.
    expect(readArchConfig(config('mixtral')).denseIntermediate).toBe(0);
    const q = config('qwen2_moe');
    expect(readArchConfig(q).denseIntermediate).toBe(q.intermediate_size);
    expect(q.intermediate_size).toBeGreaterThan(0);
  });
});

describe('every family in the adapter table has a forward pass, or says it has none', () => {
  it('covers the table', async () => {
    const { FAMILIES } = await import('./families.ts');
    for (const f of FAMILIES) {
      if (f.id === 'granitemoe') {
        // Catalogue and expert pruning only, documented in docs/1-load-and-inspect.md.
        const c = JSON.parse(readFileSync(new URL('../../fixtures/reference/model-metadata/granitemoe_granite-3.1-1b-a400m-instruct/config.json', import.meta.url), 'utf8'));
        expect(() => readArchConfig(c)).toThrow(/Granite-MoE has no forward pass yet/);
      } else expect(readArchConfig(config(f.id)).family).toBe(f.id);
    }
  });
});
