import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { openNodeFileSet } from '../cli/node-files.ts';
import { MoePruneError } from '../core/errors.ts';
import { catalogueCheckpoint, type Catalogue } from '../models/catalogue.ts';
import { planPrunedTensors, type LayerKeep, type OutputTensor, type TensorPlan } from './tensor-plan.ts';

const MODELS = fileURLToPath(new URL('../../fixtures/models', import.meta.url));
const open = async (name: string): Promise<Catalogue> => catalogueCheckpoint(await openNodeFileSet(join(MODELS, name)));

const byName = (p: TensorPlan): Map<string, OutputTensor> => new Map(p.tensors.map((t) => [t.name, t]));
const keep = (layer: number, kept: number[], merges: LayerKeep['merges'] = []): LayerKeep => ({ layer, kept, merges });

function expectInvalidPlan(f: () => unknown, message: RegExp): void {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(MoePruneError);
    expect((e as MoePruneError).code).toBe('InvalidPlan');
    expect((e as MoePruneError).message).toMatch(message);
    return;
  }
  throw new Error('expected an InvalidPlan error');
}

describe('planPrunedTensors: per-expert layout (mixtral, F32, 4 experts, H=32, I=16)', () => {
  let cat: Catalogue;
  beforeAll(async () => {
    cat = await open('mixtral');
  });
  const E = 'model.layers.0.block_sparse_moe.experts';
  const ROUTER = 'model.layers.0.block_sparse_moe.gate.weight';

  it('drops removed experts, renumbers the kept ones in order, copies them whole', () => {
    const plan = planPrunedTensors(cat, [keep(0, [1, 3])]);
    const t = byName(plan);
    for (const w of ['w1', 'w2', 'w3']) {
      expect(t.get(`${E}.0.${w}.weight`)!.pieces).toEqual([{ kind: 'copy', range: { tensor: `${E}.1.${w}.weight`, offset: 0, length: 2048 } }]);
      expect(t.get(`${E}.1.${w}.weight`)!.pieces).toEqual([{ kind: 'copy', range: { tensor: `${E}.3.${w}.weight`, offset: 0, length: 2048 } }]);
      expect(t.has(`${E}.2.${w}.weight`) || t.has(`${E}.3.${w}.weight`)).toBe(false);
    }
    expect(t.get(`${E}.1.w2.weight`)!.shape).toEqual([32, 16]);
    // Output tensors stay in the shard their source was in.
    expect(t.get(`${E}.1.w1.weight`)!.shard).toBe(cat.tensors.get(`${E}.3.w1.weight`)!.file);
    expect(plan.expertsPerLayer.get(0)).toBe(2);
    expect(plan.expertsPerLayer.get(1)).toBe(4); // a layer without a plan keeps every expert
  });

  it('slices router rows (128 bytes per F32 row of 32) and copies every other tensor whole', () => {
    const plan = planPrunedTensors(cat, [keep(0, [1, 3])]);
    const r = byName(plan).get(ROUTER)!;
    expect(r.shape).toEqual([2, 32]);
    expect(r.byteLength).toBe(256);
    expect(r.pieces).toEqual([
      { kind: 'copy', range: { tensor: ROUTER, offset: 128, length: 128 }, origin: 1 },
      { kind: 'copy', range: { tensor: ROUTER, offset: 384, length: 128 }, origin: 3 },
    ]);
    const other = byName(plan).get('model.layers.1.block_sparse_moe.gate.weight')!;
    expect(other.shape).toEqual([4, 32]);
    expect(other.pieces).toEqual([{ kind: 'copy', range: { tensor: other.name, offset: 0, length: 512 } }]);
    const emb = byName(plan).get('model.embed_tokens.weight')!;
    expect(emb.pieces).toEqual([{ kind: 'copy', range: { tensor: emb.name, offset: 0, length: 128 * 32 * 4 } }]);
    expect(plan.tensors.length).toBe(cat.tensors.size - 2 * 3);
  });

  it('params and bytes: each removed expert takes 1536 params / 6144 bytes and its 32-wide router row', () => {
    const s = cat.summary;
    const plan = planPrunedTensors(cat, [keep(0, [1, 3]), keep(1, [0, 1, 2])]);
    const removed = 3;
    expect(plan.params).toBe(s.params.total - removed * (1536 + 32));
    expect(plan.bytes).toBe(s.tensorBytes - removed * (1536 + 32) * 4);
    expect(plan.params).toBe(plan.tensors.reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1), 0));
  });

  it('a merged slot is the mean of its members: the renamed member tensors and their router rows', () => {
    const plan = planPrunedTensors(cat, [keep(0, [0, 2], [{ slot: 1, members: [1, 2, 3] }])]);
    const t = byName(plan);
    expect(t.get(`${E}.1.w3.weight`)!.pieces).toEqual([
      {
        kind: 'mean',
        dtype: 'F32',
        ranges: [1, 2, 3].map((e) => ({ tensor: `${E}.${e}.w3.weight`, offset: 0, length: 2048 })),
      },
    ]);
    expect(t.get(`${E}.0.w3.weight`)!.pieces[0]!.kind).toBe('copy');
    expect(t.get(ROUTER)!.pieces).toEqual([
      { kind: 'copy', range: { tensor: ROUTER, offset: 0, length: 128 }, origin: 0 },
      // The merged slot's row stands for its kept expert (2): stage-2 masks are keyed by it.
      { kind: 'mean', dtype: 'F32', ranges: [1, 2, 3].map((e) => ({ tensor: ROUTER, offset: e * 128, length: 128 })), origin: 2 },
    ]);
  });

  it('refuses bad plans with InvalidPlan', () => {
    expectInvalidPlan(() => planPrunedTensors(cat, [keep(5, [0, 1])]), /layer 5 is not a MoE layer/);
    expectInvalidPlan(() => planPrunedTensors(cat, [keep(0, [2, 1])]), /distinct, ascending and < 4/);
    expectInvalidPlan(() => planPrunedTensors(cat, [keep(0, [1, 1])]), /distinct, ascending/);
    expectInvalidPlan(() => planPrunedTensors(cat, [keep(0, [0, 4])]), /< 4/);
    expectInvalidPlan(() => planPrunedTensors(cat, [keep(0, [-1, 2])]), /< 4/);
    expectInvalidPlan(() => planPrunedTensors(cat, [keep(0, [])]), /layer 0: kept experts/);
    expectInvalidPlan(() => planPrunedTensors(cat, [keep(0, [0, 1], [{ slot: 2, members: [2, 3] }])]), /merge slot 2 out of range/);
  });
});

describe('planPrunedTensors: fused layout (qwen3_moe-fused, 8 experts)', () => {
  let cat: Catalogue;
  beforeAll(async () => {
    cat = await open('qwen3_moe-fused');
  });
  const P = 'model.layers.1.mlp.experts';

  it('keeps fused tensors fused, with rows of dim 0 sliced', () => {
    const plan = planPrunedTensors(cat, [keep(1, [0, 5, 7])]);
    const t = byName(plan);
    const gu = t.get(`${P}.gate_up_proj`)!;
    expect(cat.tensors.get(`${P}.gate_up_proj`)!.shape).toEqual([8, 32, 32]);
    expect(gu.shape).toEqual([3, 32, 32]);
    const row = 32 * 32 * 4;
    expect(gu.pieces).toEqual([0, 5, 7].map((e) => ({ kind: 'copy', range: { tensor: `${P}.gate_up_proj`, offset: e * row, length: row }, origin: e })));
    const down = t.get(`${P}.down_proj`)!;
    expect(down.shape).toEqual([3, 32, 16]);
    expect(down.byteLength).toBe(3 * 32 * 16 * 4);
    expect([...t.keys()].some((n) => /experts\.\d/.test(n))).toBe(false);
    expect(t.get('model.layers.0.mlp.experts.gate_up_proj')!.shape).toEqual([8, 32, 32]);
  });

  it('averages fused rows for a merged slot', () => {
    const plan = planPrunedTensors(cat, [keep(1, [0, 5, 7], [{ slot: 2, members: [6, 7] }])]);
    const down = byName(plan).get(`${P}.down_proj`)!;
    const row = 32 * 16 * 4;
    expect(down.pieces[2]).toEqual({ kind: 'mean', dtype: 'F32', ranges: [6, 7].map((e) => ({ tensor: `${P}.down_proj`, offset: e * row, length: row })), origin: 7 });
  });
});

describe('planPrunedTensors: DeepSeek-V3 correction bias and FP8 scales', () => {
  it('slices e_score_correction_bias with the router rows and does not count it as a parameter', async () => {
    const cat = await open('deepseek_v3');
    const plan = planPrunedTensors(cat, [keep(1, [1, 2, 4, 6]), keep(2, [0, 1, 6, 7])]);
    const bias = byName(plan).get('model.layers.1.mlp.gate.e_score_correction_bias')!;
    expect(bias.dtype).toBe('F32');
    expect(bias.shape).toEqual([4]);
    expect(bias.isParam).toBe(false);
    expect(bias.pieces).toEqual([1, 2, 4, 6].map((e) => ({ kind: 'copy', range: { tensor: bias.name, offset: e * 4, length: 4 }, origin: e })));
    expect(byName(plan).get('model.layers.1.mlp.gate.weight')!.shape).toEqual([4, 32]);
    // Shared experts are never touched.
    const shared = byName(plan).get('model.layers.1.mlp.shared_experts.down_proj.weight')!;
    expect(shared.pieces[0]).toEqual({ kind: 'copy', range: { tensor: shared.name, offset: 0, length: shared.byteLength } });
  });

  it('FP8: weights and their block scales travel together, scales are not parameters', async () => {
    const cat = await open('deepseek_v3-fp8');
    const plan = planPrunedTensors(cat, [keep(1, [1, 2, 4, 6])]);
    const t = byName(plan);
    const w = t.get('model.layers.1.mlp.experts.3.up_proj.weight')!;
    const s = t.get('model.layers.1.mlp.experts.3.up_proj.weight_scale_inv')!;
    expect([w.dtype, w.isParam, s.dtype, s.isParam]).toEqual(['F8_E4M3', true, 'F32', false]);
    expect(w.pieces).toEqual([{ kind: 'copy', range: { tensor: 'model.layers.1.mlp.experts.6.up_proj.weight', offset: 0, length: w.byteLength } }]);
    expect(s.pieces).toEqual([{ kind: 'copy', range: { tensor: 'model.layers.1.mlp.experts.6.up_proj.weight_scale_inv', offset: 0, length: 4 } }]);
    expect(t.has('model.layers.1.mlp.experts.4.up_proj.weight_scale_inv')).toBe(false);
  });

  it('FP8: averaging experts is refused when planning, before anything is written', async () => {
    const cat = await open('deepseek_v3-fp8');
    expectInvalidPlan(() => planPrunedTensors(cat, [keep(1, [0, 2, 4, 6], [{ slot: 0, members: [0, 1] }])]), /cannot average experts stored as F8_E4M3/);
  });
});
