import { join } from 'node:path';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { openNodeFileSet } from '../../cli/node-files.ts';
import { inspectCheckpoint } from '../../models/catalogue.ts';
import { perplexity, referenceNll } from '../../eval/perplexity.ts';
import { ConfigReader, readArchConfig, type RouterSpec } from '../../models/arch.ts';
import { causalAttention } from './attention.ts';
import { openReferenceModel, referenceForward } from './forward.ts';
import { layerNorm, linear, rmsNorm } from './ops.ts';
import { applyRope, parseRope, ropeFrequencies, ropeTables } from './rope.ts';
import { route, topK } from './router.ts';
import { overlayWeights, type WeightSource } from './weights.ts';

const REPO = join(import.meta.dirname, '..', '..', '..');
const close = (a: ArrayLike<number>, b: number[], eps = 1e-6) => {
  expect(a.length).toBe(b.length);
  b.forEach((v, i) => expect(Math.abs(a[i]! - v)).toBeLessThan(eps * Math.max(1, Math.abs(v))));
};

describe('norms and linear', () => {
  it('RMSNorm: x / sqrt(mean x² + eps) · w', () => {
    close(rmsNorm(new Float32Array([3, 4]), 2, new Float32Array([1, 2]), 0), [3 / Math.sqrt(12.5), 8 / Math.sqrt(12.5)]);
  });
  it('LayerNorm with bias (biased variance)', () => {
    const s = Math.sqrt(2 / 3);
    close(layerNorm(new Float32Array([1, 2, 3]), 3, new Float32Array([1, 1, 2]), new Float32Array([0, 0, 1]), 0), [-1 / s, 0, 2 / s + 1], 1e-5);
  });
  it('linear uses the [out, in] layout and adds the bias', () => {
    close(linear(new Float32Array([1, 2]), 1, 2, new Float32Array([1, 0, 3, -1]), 2, new Float32Array([0.5, 0])), [1.5, 1]);
  });
});

const cfg = (o: Record<string, unknown>) => new ConfigReader({ max_position_embeddings: 8192, ...o });

describe('rotary embeddings', () => {
  it('default: halves layout rotates (x_i, x_{i+d/2}) by pos·θ^(−2i/d)', () => {
    const r = parseRope(cfg({ rope_theta: 100 }), 4, false);
    close(ropeFrequencies(r, 4).invFreq, [1, 0.1]);
    const x = new Float32Array([1, 0, 0, 1]);
    applyRope(x, 1, 1, 4, 0, r, ropeTables(r, 2), [1]);
    close(x, [Math.cos(1), -Math.sin(0.1), Math.sin(1), Math.cos(0.1)]);
  });
  it('interleaved (DeepSeek) rotates adjacent pairs; linear scaling divides the frequencies', () => {
    const r = parseRope(cfg({ rope_scaling: { type: 'linear', factor: 2 }, rope_theta: 100 }), 2, true);
    const x = new Float32Array([1, 0]);
    applyRope(x, 1, 1, 2, 0, r, ropeTables(r, 2), [1]);
    close(x, [Math.cos(0.5), Math.sin(0.5)]);
  });
  it('yarn and dynamic NTK match transformers 5.18 inverse frequencies', () => {
    const yarn = parseRope(cfg({ rope_parameters: { rope_type: 'yarn', rope_theta: 10000, factor: 4, original_max_position_embeddings: 2048, beta_fast: 32, beta_slow: 1, mscale: 1, mscale_all_dim: 0.5 } }), 16, true);
    const y = ropeFrequencies(yarn, 10);
    close(y.invFreq, [1.0, 0.3162277638912201, 0.10000000149011612, 0.025693506002426147, 0.00624999962747097, 0.0013834965648129582, 0.0002500000118743628, 7.905694656074047e-5], 1e-6);
    expect(y.scale).toBeCloseTo(1.0648216253695715, 12);
    const dyn = parseRope(cfg({ max_position_embeddings: 64, rope_parameters: { rope_type: 'dynamic', rope_theta: 10000, factor: 2 } }), 8, false);
    close(ropeFrequencies(dyn, 100).invFreq, [1.0, 0.07778222113847733, 0.006050074007362127, 0.00047058824566192925], 1e-6);
  });
  it('DeepSeek yarn multiplies the softmax scale by mscale(factor, mscale_all_dim)²', () => {
    const a = readArchConfig({
      model_type: 'deepseek_v3', hidden_size: 32, num_hidden_layers: 1, vocab_size: 8, num_attention_heads: 2, n_routed_experts: 4, num_experts_per_tok: 2,
      moe_intermediate_size: 4, kv_lora_rank: 4, q_lora_rank: null, qk_nope_head_dim: 4, qk_rope_head_dim: 4, v_head_dim: 4, max_position_embeddings: 64,
      rope_scaling: { type: 'yarn', factor: 40, mscale: 1, mscale_all_dim: 1, original_max_position_embeddings: 4, beta_fast: 32, beta_slow: 1 }, rope_theta: 10000,
    });
    expect(a.attnScale).toBeCloseTo((1 / Math.sqrt(8)) * (0.1 * Math.log(40) + 1) ** 2, 12);
    expect(a.rope.interleaved).toBe(true);
  });
});

describe('causal attention', () => {
  it('softmax(q·k·scale) over earlier positions only, GQA sharing one KV head', () => {
    // 2 query heads share 1 KV head; head dim 1. Position 1 sees scores [0, ln 3] → weights [¼, ¾].
    const q = new Float32Array([1, 1, 1, 1]);
    const k = new Float32Array([0, Math.log(3)]);
    const v = new Float32Array([10, 20]);
    close(causalAttention({ windows: 1, tokens: 2 }, q, k, v, 2, 1, 1, 1, 1), [10, 10, 17.5, 17.5], 1e-6);
    close(causalAttention({ windows: 1, tokens: 2 }, q, k, v, 2, 1, 1, 1, 1, 1), [10, 10, 20, 20]); // sliding window 1
  });
  it('keeps windows of a batch apart', () => {
    const out = causalAttention({ windows: 2, tokens: 1 }, new Float32Array([1, 1]), new Float32Array([5, 0]), new Float32Array([3, 7]), 1, 1, 1, 1, 1);
    close(out, [3, 7]);
  });
});

const router = (o: Partial<RouterSpec>): RouterSpec => ({ experts: 4, topK: 2, scoring: 'softmax', normTopkProb: false, groups: null, routedScalingFactor: 1, correctionBias: false, jitterEps: 0, ...o });

describe('routers', () => {
  const logits = [-Infinity, 0, Math.log(2), Math.log(3)]; // softmax → [0, 1/6, 2/6, 3/6]
  it('softmax top-k, with and without renormalisation', () => {
    const plain = route(logits, router({}));
    expect(plain.experts).toEqual([3, 2]);
    close(plain.weights, [0.5, 1 / 3]);
    close(route(logits, router({ normTopkProb: true })).weights, [0.6, 0.4]);
  });
  it('removed experts are never chosen and drop out of the softmax', () => {
    const r = route(logits, router({}), { removed: new Set([3]) });
    expect(r.experts).toEqual([2, 1]);
    close(r.weights, [2 / 3, 1 / 3]);
  });
  it('DeepSeek-V2 group-limited greedy keeps the best group by its top expert, then scales', () => {
    const l = [0.1, 0.4, 0.3, 0.2].map(Math.log);
    const r = route(l, router({ groups: { nGroup: 2, topkGroup: 1, groupScore: 'max' }, routedScalingFactor: 2 }));
    expect(r.experts).toEqual([1, 0]);
    close(r.weights, [0.8, 0.2]);
  });
  it('DeepSeek-V3 sigmoid + correction bias: groups by top-2 sum, weights from unbiased scores', () => {
    const spec = router({ scoring: 'sigmoid', normTopkProb: true, groups: { nGroup: 2, topkGroup: 1, groupScore: 'top2-sum' }, routedScalingFactor: 2.5, correctionBias: true });
    const r = route([0, 0, 0, 0], spec, { correctionBias: new Float32Array([0, 0.1, 0.2, 0.3]) });
    expect(r.experts).toEqual([3, 2]);
    close(r.weights, [1.25, 1.25]);
  });
  it('PhiMoE sparsemixer: softmax within the 2ε threshold of the max, second round without the first', () => {
    const r = route([2, 1.99, 0, -1], router({ scoring: 'sparsemixer', jitterEps: 0.01 }));
    expect(r.experts).toEqual([0, 1]);
    close(r.weights, [1 / (1 + Math.exp(-0.01)), 1]);
  });
  it('top-k breaks exact ties towards the lower index', () => {
    expect(topK([1, 2, 2, 0], 2)).toEqual([1, 2]);
  });
});

describe('reference forward on a fixture checkpoint', async () => {
  const dir = join(REPO, 'fixtures', 'models', 'mixtral');
  const expected = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8')).reference as { prompt_ids: number[]; last_logits: number[]; mean_nll: number };
  const model = await openReferenceModel(await openNodeFileSet(dir));

  it('matches the transformers logits and loss recorded in expected.json', async () => {
    const res = await referenceForward(model, [expected.prompt_ids], { output: 'both' });
    const V = model.arch.vocab;
    close(res.logits!.subarray((expected.prompt_ids.length - 1) * V), expected.last_logits, 1e-4);
    const ppl = await perplexity([expected.prompt_ids, expected.prompt_ids], referenceNll(model), { batchSize: 1 });
    expect(ppl.meanNll).toBeCloseTo(expected.mean_nll, 4);
    expect(ppl.tokens).toBe(2 * (expected.prompt_ids.length - 1));
    expect(res.routing.map((r) => r.layer)).toEqual([0, 1]);
    expect(res.peakLayerWeightBytes).toBeLessThan(64 * 1024);
  });

  it('removing an expert on the fly equals the checkpoint pruned on disk, and it is never loaded', async () => {
    const removed = new Set([1]);
    const read: string[] = [];
    const spy = overlayWeights(model.weights, (name, v) => (read.push(name), v));
    const a = await referenceForward({ ...model, weights: spy }, [expected.prompt_ids], { removedExperts: () => removed });
    expect(read.some((n) => n.includes('experts.1.'))).toBe(false);
    for (const r of a.routing) expect(Array.from(r.experts)).not.toContain(1);
    // The same model pruned on disk: router row 1 deleted, experts 2, 3 renumbered to 1, 2, 3 experts in the config.
    const H = model.arch.hidden;
    const rename = (n: string) => n.replace(/experts\.(\d+)\./, (_, e: string) => `experts.${Number(e) >= 1 ? Number(e) + 1 : e}.`);
    const pruned: WeightSource = {
      has: (n) => model.weights.has(rename(n)),
      shape: (n) => model.weights.shape(rename(n)),
      read: async (n) => {
        const v = await model.weights.read(rename(n));
        return n.endsWith('gate.weight') ? Float32Array.from([...v.subarray(0, H), ...v.subarray(2 * H)]) : v;
      },
      readRows: (n, s0, c) => model.weights.readRows(rename(n), s0, c),
    };
    const arch = { ...model.arch, moe: { ...model.arch.moe, router: { ...model.arch.moe.router, experts: 3 } } };
    const seen: number[] = [];
    const b = await referenceForward({ arch, weights: pruned }, [expected.prompt_ids], {
      observer: { linearInput: (name, _x, rows) => name.includes('experts.2.w1') && seen.push(rows) },
    });
    close(a.logits!, Array.from(b.logits!), 1e-5);
    expect(seen.length).toBe(2); // expert 2 (old 3) runs once per MoE layer, on its routed tokens only
    expect(seen.every((n) => n > 0 && n <= expected.prompt_ids.length)).toBe(true);
  });

  it('rejects token ids outside the vocabulary and ragged windows', async () => {
    await expect(referenceForward(model, [[1, 500]])).rejects.toThrow(/outside the vocabulary/);
    await expect(referenceForward(model, [[1, 2], [1]])).rejects.toThrow(/same length/);
  });
});

describe('linear-input observer', () => {
  it('sees the input of every linear map of a DeepSeek-V3 checkpoint (MLA, dense, shared, routed)', async () => {
    const model = await openReferenceModel(await openNodeFileSet(join(REPO, 'fixtures', 'models', 'deepseek_v3')));
    const seen = new Map<string, number>();
    const res = await referenceForward(model, [[1, 17, 42, 5, 99, 23]], {
      output: 'nll',
      observer: { linearInput: (name, x, rows, inDim) => (expect(x.length).toBe(rows * inDim), seen.set(name, (seen.get(name) ?? 0) + rows)) },
    });
    const names = (model.weights as unknown as { names(): string[] }).names();
    const linears = names.filter((n) => n.endsWith('.weight') && model.weights.shape(n)!.length === 2 && !/embed_tokens|lm_head/.test(n));
    const routed = linears.filter((n) => /experts\.\d+\./.test(n));
    for (const n of linears.filter((n) => !routed.includes(n))) expect(seen.get(n), n).toBe(6);
    // Routed experts see only their tokens: per layer, gate_proj inputs add up to tokens × top-k.
    for (const r of res.routing) {
      const total = routed.filter((n) => n.startsWith(`model.layers.${r.layer}.`) && n.endsWith('gate_proj.weight')).reduce((a, n) => a + (seen.get(n) ?? 0), 0);
      expect(total).toBe(6 * r.topK);
    }
  });
});

describe('architecture table agrees with the model catalogue', () => {
  const dirs = readdirSync(join(REPO, 'fixtures', 'models')).filter((d) => existsSync(join(REPO, 'fixtures', 'models', d, 'config.json')));
  it.each(dirs)('%s: MoE layers, experts, top-k', async (d) => {
    const files = await openNodeFileSet(join(REPO, 'fixtures', 'models', d));
    const s = await inspectCheckpoint(files);
    const { arch } = await openReferenceModel(files);
    expect([...arch.moeLayers].sort((a, b) => a - b)).toEqual(s.moeLayers);
    expect(arch.moe.router.experts).toBe(s.expertsPerLayer);
    expect(arch.moe.router.topK).toBe(s.topK);
    expect(arch.moe.router.scoring).toBe(s.routing.scoring);
  });
});
