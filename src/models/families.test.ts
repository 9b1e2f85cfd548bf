import { describe, expect, it } from 'vitest';
import { thrown } from '../../tests/errors.ts';
import {
  classifyTensor,
  detectFamily,
  expertCountPatch,
  expertCountProblems,
  expertTensorNames,
  FAMILIES,
  familyById,
  fusedExpertTensorNames,
  layerKinds,
  renameExpertTensor,
  routerTensorNames,
  routingOf,
  sharedExpertsOf,
} from './families.ts';

const mixtral = familyById('mixtral');
const qwen2 = familyById('qwen2_moe');
const v3 = familyById('deepseek_v3');
const arctic = familyById('arctic');
const granite = familyById('granitemoe');

describe('detectFamily', () => {
  it('picks by architecture, then by model_type', () => {
    expect(detectFamily({ architectures: ['Qwen3MoeForCausalLM'] }).id).toBe('qwen3_moe');
    expect(detectFamily({ model_type: 'mixtral' }).id).toBe('mixtral');
    expect(detectFamily({ architectures: ['SomethingElse'], model_type: 'olmoe' }).id).toBe('olmoe');
    expect(FAMILIES.map((f) => f.id).sort()).toEqual(
      ['arctic', 'deepseek_v2', 'deepseek_v3', 'granitemoe', 'mixtral', 'olmoe', 'phimoe', 'qwen2_moe', 'qwen3_moe'].sort(),
    );
  });

  it('names config.json, the architecture and the supported list for an unknown family', () => {
    const e = thrown(() => detectFamily({ architectures: ['LlamaForCausalLM'], model_type: 'llama' }));
    expect(e.code).toBe('UnsupportedFamily');
    expect(e.file).toBe('config.json');
    expect(e.message).toContain('LlamaForCausalLM');
    expect(e.message).toContain('MixtralForCausalLM (mixtral)');
    expect(e.message).toContain('DeepseekV3ForCausalLM (deepseek_v3)');
  });
});

describe('which layers are MoE', () => {
  it('Qwen: mlp_only_layers and decoder_sparse_step', () => {
    const cfg = { num_hidden_layers: 6, num_experts: 4, decoder_sparse_step: 2, mlp_only_layers: [3] };
    expect(layerKinds(qwen2, cfg)).toEqual({ moe: [1, 5], dense: [0, 2, 3, 4] });
  });
  it('DeepSeek: first_k_dense_replace and moe_layer_freq', () => {
    expect(layerKinds(v3, { num_hidden_layers: 6, n_routed_experts: 8, first_k_dense_replace: 1, moe_layer_freq: 2 })).toEqual({ moe: [2, 4], dense: [0, 1, 3, 5] });
  });
  it('Arctic: moe_layer_frequency', () => {
    expect(layerKinds(arctic, { num_hidden_layers: 4, num_local_experts: 4, moe_layer_frequency: 2 })).toEqual({ moe: [1, 3], dense: [0, 2] });
  });
  it('no MoE layers at all when the expert count is 0', () => {
    expect(layerKinds(mixtral, { num_hidden_layers: 2, num_local_experts: 0 }).moe).toEqual([]);
  });
  it('a missing count field is a named config error', () => {
    const e = thrown(() => layerKinds(mixtral, { num_hidden_layers: 2 }));
    expect(e.code).toBe('InvalidConfig');
    expect(e.message).toContain('num_local_experts');
  });
});

describe('routing and shared experts', () => {
  it('family defaults and config overrides', () => {
    expect(routingOf(mixtral, {})).toEqual({ scoring: 'softmax', normTopkProb: true, correctionBias: false });
    expect(routingOf(qwen2, { norm_topk_prob: true }).normTopkProb).toBe(true);
    expect(routingOf(qwen2, {}).normTopkProb).toBe(false);
    expect(routingOf(v3, { n_group: 8, topk_group: 4 })).toEqual({
      scoring: 'sigmoid',
      normTopkProb: true,
      correctionBias: true,
      groups: { nGroup: 8, topkGroup: 4 },
      routedScalingFactor: 2.5,
    });
    // DeepSeek-V2 groups only under group_limited_greedy.
    const v2 = familyById('deepseek_v2');
    expect(routingOf(v2, { n_group: 8, topk_group: 3, topk_method: 'greedy' }).groups).toBeUndefined();
    expect(routingOf(v2, { n_group: 8, topk_group: 3, topk_method: 'group_limited_greedy' }).groups).toEqual({ nGroup: 8, topkGroup: 3 });
  });
  it('shared expert widths', () => {
    expect(sharedExpertsOf(v3, { n_shared_experts: 2, moe_intermediate_size: 16 })).toEqual({ count: 2, intermediateSize: 32 });
    expect(sharedExpertsOf(qwen2, { shared_expert_intermediate_size: 24 })).toEqual({ count: 1, intermediateSize: 24 });
    expect(sharedExpertsOf(qwen2, { shared_expert_intermediate_size: 0 })).toBeNull();
    expect(sharedExpertsOf(mixtral, {})).toBeNull();
  });
  it('grouped-routing constraints on a pruned expert count', () => {
    const cfg = { n_routed_experts: 256, num_experts_per_tok: 8, n_group: 8, topk_group: 4 };
    expect(expertCountProblems(v3, cfg, 128)).toEqual([]);
    expect(expertCountProblems(v3, cfg, 100).join()).toContain('multiple of n_group=8');
    expect(expertCountProblems(v3, cfg, 8).join()).toContain('≥ 2 experts');
    expect(expertCountProblems(v3, { ...cfg, topk_group: 1 }, 32).join()).toContain('fewer than top-k=8');
    expect(expertCountProblems(mixtral, { num_local_experts: 8, num_experts_per_tok: 2 }, 1).join()).toContain('fewer than the 2');
  });
  it('writes the count field the checkpoint uses', () => {
    const q3 = familyById('qwen3_moe');
    expect(expertCountPatch(q3, { num_experts: 128 }, 64)).toEqual({ num_experts: 64 });
    expect(expertCountPatch(q3, { num_local_experts: 128 }, 64)).toEqual({ num_local_experts: 64 });
    expect(expertCountPatch(v3, { n_routed_experts: 256 }, 128)).toEqual({ n_routed_experts: 128 });
  });
});

describe('tensor roles', () => {
  const role = (f: typeof mixtral, name: string) => classifyTensor(f, name).role;
  it('per-expert Mixtral names and the v5 fused names under mlp. or block_sparse_moe.', () => {
    expect(role(mixtral, 'model.layers.3.block_sparse_moe.experts.7.w3.weight')).toEqual({ kind: 'expert', layer: 3, expert: 7, proj: 'up', part: 'weight' });
    expect(role(mixtral, 'model.layers.3.block_sparse_moe.experts.7.w2.weight')).toMatchObject({ proj: 'down' });
    expect(role(mixtral, 'model.layers.0.block_sparse_moe.gate.weight')).toEqual({ kind: 'router', layer: 0, part: 'weight' });
    expect(role(mixtral, 'model.layers.1.mlp.experts.gate_up_proj')).toEqual({ kind: 'fused_experts', layer: 1, proj: 'gate_up', part: 'weight' });
    expect(role(mixtral, 'model.layers.1.block_sparse_moe.experts.down_proj')).toEqual({ kind: 'fused_experts', layer: 1, proj: 'down', part: 'weight' });
    expect(role(mixtral, 'model.layers.1.mlp.gate.weight')).toEqual({ kind: 'router', layer: 1, part: 'weight' });
    expect(role(mixtral, 'model.layers.1.self_attn.q_proj.weight')).toEqual({ kind: 'attention', layer: 1, part: 'q_proj.weight' });
    expect(role(mixtral, 'model.layers.1.input_layernorm.weight')).toEqual({ kind: 'norm', layer: 1, part: 'input_layernorm.weight' });
    expect(role(mixtral, 'model.embed_tokens.weight')).toEqual({ kind: 'embedding' });
    expect(role(mixtral, 'lm_head.weight')).toEqual({ kind: 'lm_head' });
    expect(role(mixtral, 'model.norm.weight')).toEqual({ kind: 'final_norm' });
    expect(role(mixtral, 'model.layers.1.weird.thing')).toEqual({ kind: 'other', layer: 1, part: 'weird.thing' });
  });
  it('DeepSeek FP8 scales, correction bias, shared and dense MLPs', () => {
    expect(role(v3, 'model.layers.4.mlp.experts.12.gate_proj.weight_scale_inv')).toEqual({ kind: 'expert', layer: 4, expert: 12, proj: 'gate', part: 'scale_inv' });
    expect(role(v3, 'model.layers.4.mlp.experts.gate_up_proj_scale_inv')).toEqual({ kind: 'fused_experts', layer: 4, proj: 'gate_up', part: 'scale_inv' });
    expect(role(v3, 'model.layers.4.mlp.gate.e_score_correction_bias')).toEqual({ kind: 'router', layer: 4, part: 'e_score_correction_bias' });
    expect(role(v3, 'model.layers.4.mlp.shared_experts.down_proj.weight')).toEqual({ kind: 'shared_expert', layer: 4, part: 'down_proj.weight' });
    expect(role(v3, 'model.layers.0.mlp.gate_proj.weight')).toEqual({ kind: 'dense_mlp', layer: 0, part: 'gate_proj.weight' });
    expect(role(v3, 'model.layers.0.mlp.up_proj.weight_scale_inv')).toEqual({ kind: 'dense_mlp', layer: 0, part: 'up_proj.weight_scale_inv' });
  });
  it('Qwen2 shared expert gate, Arctic residual and dense MLP, Granite fused names', () => {
    expect(role(qwen2, 'model.layers.2.mlp.shared_expert_gate.weight')).toEqual({ kind: 'shared_expert', layer: 2, part: 'mlp.shared_expert_gate.weight' });
    expect(role(qwen2, 'model.layers.2.mlp.shared_expert.up_proj.weight')).toEqual({ kind: 'shared_expert', layer: 2, part: 'up_proj.weight' });
    expect(role(arctic, 'model.layers.1.residual_mlp.w2.weight')).toEqual({ kind: 'residual_mlp', layer: 1, part: 'w2.weight' });
    expect(role(arctic, 'model.layers.1.residual_layernorm.weight')).toEqual({ kind: 'norm', layer: 1, part: 'residual_layernorm.weight' });
    expect(role(arctic, 'model.layers.0.block_sparse_moe.mlp.w1.weight')).toEqual({ kind: 'dense_mlp', layer: 0, part: 'w1.weight' });
    expect(role(granite, 'model.layers.5.block_sparse_moe.input_linear.weight')).toEqual({ kind: 'fused_experts', layer: 5, proj: 'gate_up', part: 'weight' });
    expect(role(granite, 'model.layers.5.block_sparse_moe.router.layer.weight')).toEqual({ kind: 'router', layer: 5, part: 'weight' });
  });
});

describe('names for the pruning stage', () => {
  const perExpert = mixtral.namings[0]!;
  const qwenNaming = qwen2.namings[0]!;
  it('expert tensor names, renaming and router names', () => {
    expect(expertTensorNames(perExpert, 2, 5).map((t) => t.name)).toEqual([
      'model.layers.2.block_sparse_moe.experts.5.w1.weight',
      'model.layers.2.block_sparse_moe.experts.5.w3.weight',
      'model.layers.2.block_sparse_moe.experts.5.w2.weight',
    ]);
    expect(expertTensorNames(v3.namings[0]!, 1, 0, true).map((t) => t.name)).toContain('model.layers.1.mlp.experts.0.down_proj.weight_scale_inv');
    expect(renameExpertTensor(qwenNaming, 'model.layers.11.mlp.experts.42.down_proj.weight', 3)).toBe('model.layers.11.mlp.experts.3.down_proj.weight');
    expect(renameExpertTensor(qwenNaming, 'model.layers.1.mlp.experts.7.gate_proj.weight_scale_inv', 0)).toBe('model.layers.1.mlp.experts.0.gate_proj.weight_scale_inv');
    expect(thrown(() => renameExpertTensor(qwenNaming, 'model.layers.1.mlp.gate.weight', 0)).code).toBe('InvalidArgument');
    expect(routerTensorNames(v3, v3.namings[0]!, 3)).toEqual({ weight: 'model.layers.3.mlp.gate.weight', correctionBias: 'model.layers.3.mlp.gate.e_score_correction_bias' });
    expect(routerTensorNames(mixtral, perExpert, 0)).toEqual({ weight: 'model.layers.0.block_sparse_moe.gate.weight' });
    expect(fusedExpertTensorNames(granite.namings[0]!, 0).map((t) => t.name)).toEqual([
      'model.layers.0.block_sparse_moe.input_linear.weight',
      'model.layers.0.block_sparse_moe.output_linear.weight',
    ]);
  });
  it('every generated name classifies back to the role it stands for', () => {
    for (const f of FAMILIES)
      for (const n of f.namings) {
        if (n.perExpert)
          for (const t of expertTensorNames(n, 4, 9, true))
            expect(classifyTensor(f, t.name)).toMatchObject({ role: { kind: 'expert', layer: 4, expert: 9, proj: t.proj, part: t.part }, naming: n });
        if (n.fused)
          for (const t of fusedExpertTensorNames(n, 4, true))
            expect(classifyTensor(f, t.name)).toMatchObject({ role: { kind: 'fused_experts', layer: 4, proj: t.proj, part: t.part }, naming: n });
        expect(classifyTensor(f, routerTensorNames(f, n, 4).weight).role).toEqual({ kind: 'router', layer: 4, part: 'weight' });
      }
  });
});
