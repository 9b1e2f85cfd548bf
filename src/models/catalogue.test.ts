import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { NodeFileSource, openNodeFileSet } from '../cli/node-files.ts';
import { MapFileSet, MemorySource, type FileSet } from '../formats/bytes.ts';
import { openSafetensors } from '../formats/safetensors/reader.ts';
import { buildHeader } from '../formats/safetensors/writer.ts';
import { assertComplete, catalogueCheckpoint, catalogueFromIndex, inspectCheckpoint } from './catalogue.ts';
import { rejection, thrown } from '../../tests/errors.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
// Real configs and indexes and third-party tiny checkpoints, copied into the repo (fixtures/reference/README.md).
const METADATA = join(ROOT, 'fixtures/reference/model-metadata');
const ATENIA = join(ROOT, 'fixtures/reference/atenia-tiny-random');
const MODELS = join(ROOT, 'fixtures/models');

async function ateniaSet(stem: string, config: string): Promise<FileSet> {
  return new MapFileSet([await NodeFileSource.open(join(ATENIA, `${stem}.safetensors`)), await NodeFileSource.open(join(ATENIA, `${config}_config.json`), 'config.json')]);
}

/** A fixture folder in memory, so a test can replace or drop files. */
function loadDir(dir: string): Map<string, Uint8Array> {
  const files = new Map<string, Uint8Array>();
  for (const n of readdirSync(dir)) files.set(n, new Uint8Array(readFileSync(join(dir, n))));
  return files;
}

function toSet(files: Map<string, Uint8Array>): FileSet {
  return new MapFileSet([...files].map(([n, b]) => new MemorySource(n, b)));
}

function memorySet(dir: string, edit: (files: Map<string, Uint8Array>) => void): FileSet {
  const files = loadDir(dir);
  edit(files);
  return toSet(files);
}

const json = (b: Uint8Array): unknown => JSON.parse(new TextDecoder().decode(b));
const bytesOf = (v: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(v));

/** A shard with the given tensors (zero data), as the official writer lays it out. */
function shardBytes(tensors: Array<{ name: string; dtype: 'F32' | 'BF16'; shape: number[] }>): Uint8Array {
  const h = buildHeader(tensors, { format: 'pt' });
  const out = new Uint8Array(h.bytes.byteLength + h.dataBytes);
  out.set(h.bytes);
  return out;
}

async function rewriteShard(files: Map<string, Uint8Array>, shard: string, edit: (names: Array<{ name: string; dtype: 'F32' | 'BF16'; shape: number[] }>) => void): Promise<void> {
  const st = await openSafetensors(new MemorySource(shard, files.get(shard)!));
  const list = [...st.tensors.values()].map((t) => ({ name: t.name, dtype: t.dtype as 'F32' | 'BF16', shape: [...t.shape] }));
  edit(list);
  files.set(shard, shardBytes(list));
}

describe('Atenia tiny random fixtures (single files)', () => {
  it('per-expert Mixtral: structure, parameters and bytes', async () => {
    const s = await inspectCheckpoint(await ateniaSet('mixtral_classic', 'mixtral_classic'));
    expect(s).toMatchObject({
      family: 'mixtral',
      layers: 2,
      moeLayers: [0, 1],
      denseLayers: [],
      expertsPerLayer: 4,
      topK: 2,
      layout: 'per-expert',
      hiddenSize: 32,
      expertIntermediateSize: 64,
      vocabSize: 48,
      dtypes: { F32: 41 },
      expertCountField: 'num_local_experts',
      missingTensors: [],
      extraTensors: [],
      quantization: null,
      bytesOnDisk: 247832,
    });
    // transformers' MixtralForCausalLM(config).num_parameters() for this config is 60832.
    expect(s.params).toEqual({ total: 60832, routedExperts: 2 * 4 * 3 * 64 * 32, perExpert: 3 * 64 * 32 });
    expect(s.tensorBytes).toBe(60832 * 4);
  });

  it('v5 fused Mixtral and Qwen2-MoE with a shared expert', async () => {
    const m = await catalogueCheckpoint(await ateniaSet('full_mixtral', 'mixtral_tiny'));
    expect(m.summary.layout).toBe('fused');
    expect(m.naming.id).toBe('mlp.experts.gate_up_proj');
    expect(m.moeLayers.map((l) => [l.layer, l.experts, l.routerTensor])).toEqual([
      [0, 4, 'model.layers.0.mlp.gate.weight'],
      [1, 4, 'model.layers.1.mlp.gate.weight'],
    ]);
    expect(m.tensors.get('model.layers.1.mlp.experts.gate_up_proj')?.role).toEqual({ kind: 'fused_experts', layer: 1, proj: 'gate_up', part: 'weight' });

    const q = await inspectCheckpoint(await ateniaSet('qwen_moe_tiny', 'qwen_moe_tiny'));
    expect(q).toMatchObject({ family: 'qwen2_moe', layout: 'fused', sharedExperts: { count: 1, intermediateSize: 24 }, expertCountField: 'num_experts', missingTensors: [] });
    expect(q.params.total).toBe(26720); // transformers Qwen2MoeForCausalLM num_parameters()
  });

  it('DeepSeek-V2 with a dense first layer', async () => {
    const s = await inspectCheckpoint(await ateniaSet('deepseek_v2lite_mla0', 'deepseek_v2lite_mla0'));
    expect(s).toMatchObject({ family: 'deepseek_v2', moeLayers: [1, 2], denseLayers: [0], routing: { scoring: 'softmax', normTopkProb: false, routedScalingFactor: 1 } });
    expect(s.params.total).toBe(14152);
    expect(s.missingTensors).toEqual([]);
  });

  it('a single .safetensors path picks up <stem>_config.json as config.json', async () => {
    const files = await openNodeFileSet(join(ATENIA, 'gqa_mixtral.safetensors'));
    expect(files.names()).toEqual(['config.json', 'gqa_mixtral.safetensors']);
    expect((await inspectCheckpoint(files)).params.total).toBe(58784);
  });
});

describe('real index files (names only)', () => {
  const read = (dir: string, f: string): unknown => JSON.parse(readFileSync(join(METADATA, dir, f), 'utf8'));

  it('WizardLM-2-8x22B: 56 layers × 8 per-expert Mixtral experts over 59 shards', () => {
    const dir = 'mixtral-8x22b_WizardLM-2-8x22B';
    const c = catalogueFromIndex(read(dir, 'config.json'), read(dir, 'model.safetensors.index.json'));
    expect(c).toMatchObject({ family: 'mixtral', layers: 56, layout: 'per-expert', expertsPerLayer: 8, tensorCount: 1739, missingTensors: [], extraTensors: [] });
    expect(c.moeLayers).toHaveLength(56);
    expect(c.expertsFound).toEqual(new Array(56).fill(8));
    expect(c.shards).toHaveLength(59);
  });

  it('Granite 3.1 1B: 24 layers × 32 fused experts, tied lm_head', () => {
    const dir = 'granitemoe_granite-3.1-1b-a400m-instruct';
    const c = catalogueFromIndex(read(dir, 'config.json'), read(dir, 'model.safetensors.index.json'));
    expect(c).toMatchObject({ family: 'granitemoe', layers: 24, layout: 'fused', naming: 'block_sparse_moe.input_linear', expertsPerLayer: 32, topK: 8, missingTensors: [], extraTensors: [] });
    expect(c.moeLayers).toEqual([...Array(24).keys()]);
  });

  it('Qwen3-30B-A3B config: 48 MoE layers of 128 experts; an index missing one expert is reported', () => {
    const config = read('qwen3-moe_Qwen3-30B-A3B', 'config.json') as Record<string, unknown>;
    const weightMap: Record<string, string> = {};
    for (let l = 0; l < 48; l++) {
      weightMap[`model.layers.${l}.mlp.gate.weight`] = 'a.safetensors';
      for (const n of ['input_layernorm.weight', 'post_attention_layernorm.weight', 'self_attn.o_proj.weight']) weightMap[`model.layers.${l}.${n}`] = 'a.safetensors';
      for (let e = 0; e < 128; e++)
        for (const p of ['gate_proj', 'up_proj', 'down_proj']) if (!(l === 7 && e === 99 && p === 'up_proj')) weightMap[`model.layers.${l}.mlp.experts.${e}.${p}.weight`] = 'a.safetensors';
    }
    for (const n of ['model.embed_tokens.weight', 'model.norm.weight', 'lm_head.weight']) weightMap[n] = 'a.safetensors';
    weightMap['model.layers.3.mlp.experts.128.up_proj.weight'] = 'a.safetensors';
    const c = catalogueFromIndex(config, { metadata: {}, weight_map: weightMap });
    expect(c).toMatchObject({ family: 'qwen3_moe', layers: 48, expertsPerLayer: 128, topK: 8, expertCountField: 'num_experts', routing: { normTopkProb: true } });
    expect(c.moeLayers).toHaveLength(48);
    expect(c.missingTensors).toEqual(['model.layers.7.mlp.experts.99.up_proj.weight']);
    expect(c.extraTensors).toEqual(['model.layers.3.mlp.experts.128.up_proj.weight']);
  });
});

describe('transformers-made fixtures agree with expected.json', () => {
  const names = existsSync(MODELS) ? readdirSync(MODELS).filter((d) => existsSync(join(MODELS, d, 'expected.json'))) : [];
  it('fixtures/models holds fixtures', () => {
    expect(names.length).toBeGreaterThan(0);
  });
  for (const name of names) {
    it(name, async () => {
      const e = JSON.parse(readFileSync(join(MODELS, name, 'expected.json'), 'utf8')) as Record<string, unknown>;
      const s = await inspectCheckpoint(await openNodeFileSet(join(MODELS, name)));
      expect(s.modelType).toBe(e['model_type']);
      expect(s.layout).toBe(e['expert_layout']);
      expect(s.layers).toBe(e['num_layers']);
      expect(s.moeLayers).toEqual(e['moe_layers']);
      expect(s.denseLayers).toEqual(e['dense_layers']);
      expect(s.expertCountField).toBe(e['expert_count_field']);
      expect(s.expertsPerLayer).toBe(e['num_experts']);
      expect(s.topK).toBe(e['top_k']);
      expect(s.hiddenSize).toBe(e['hidden_size']);
      expect(s.expertIntermediateSize).toBe(e['expert_intermediate_size']);
      expect(s.shards).toEqual(e['shards']);
      expect(s.tensorBytes).toBe(e['index_total_size']);
      expect(Object.values(s.dtypes).reduce((a, b) => a + b, 0)).toBe(e['num_tensors']);
      expect(s.params.total).toBe(e['transformers_param_count'] ?? e['param_count_from_tensors']);
      expect(s.params.routedExperts).toBe(e['routed_expert_params']);
      expect(s.params.perExpert).toBe(e['routed_expert_params_per_expert']);
      expect(s.missingTensors).toEqual([]);
      expect(s.extraTensors).toEqual([]);
      if (String(e['dtype']).startsWith('fp8')) expect(s.quantization).toBe('fp8 e4m3, 128x128 block scales');
    });
  }
});

describe('broken checkpoints', () => {
  const mixtralDir = join(MODELS, 'mixtral');
  const index = 'model.safetensors.index.json';

  it('no config.json → MissingFile naming it', async () => {
    const e = await rejection(inspectCheckpoint(memorySet(mixtralDir, (f) => f.delete('config.json'))));
    expect([e.code, e.file]).toEqual(['MissingFile', 'config.json']);
  });

  it('a shard named by the index is absent → MissingFile naming the shard', async () => {
    const e = await rejection(inspectCheckpoint(memorySet(mixtralDir, (f) => f.delete('model-00002-of-00003.safetensors'))));
    expect([e.code, e.file]).toEqual(['MissingFile', 'model-00002-of-00003.safetensors']);
    expect(e.message).toContain(index);
  });

  it('the index maps a tensor to a shard that lacks it → MissingTensor naming shard and tensor', async () => {
    const files = loadDir(mixtralDir);
    const idx = json(files.get(index)!) as { weight_map: Record<string, string> };
    const [name, shard] = Object.entries(idx.weight_map).find(([, s]) => s === 'model-00001-of-00003.safetensors')!;
    idx.weight_map[name] = 'model-00003-of-00003.safetensors';
    files.set(index, bytesOf(idx));
    const e = await rejection(inspectCheckpoint(toSet(files)));
    expect([e.code, e.file]).toEqual(['MissingTensor', 'model-00003-of-00003.safetensors']);
    expect(e.message).toContain(name);
    expect(e.message).toContain(`it is in ${shard}`);
  });

  it('a missing expert is reported, an extra expert and a tensor outside the index too', async () => {
    const files = loadDir(mixtralDir);
    const idx = json(files.get(index)!) as { weight_map: Record<string, string> };
    const victim = 'model.layers.1.block_sparse_moe.experts.2.w3.weight';
    const shard = idx.weight_map[victim]!;
    await rewriteShard(files, shard, (list) => {
      const i = list.findIndex((t) => t.name === victim);
      const [t] = list.splice(i, 1);
      list.push({ ...t!, name: 'model.layers.1.block_sparse_moe.experts.4.w3.weight' });
    });
    delete idx.weight_map[victim];
    files.set(index, bytesOf(idx));
    const s = await inspectCheckpoint(toSet(files));
    expect(s.missingTensors).toEqual([victim]);
    expect(s.extraTensors).toEqual(['model.layers.1.block_sparse_moe.experts.4.w3.weight']);
    expect(thrown(() => assertComplete(s)).message).toContain(victim);
  });

  it('DeepSeek-V3 MTP layers after num_hidden_layers are neither extra nor counted; layers beyond them are extra', async () => {
    const files = loadDir(join(MODELS, 'deepseek_v3'));
    const idx = json(files.get(index)!) as { weight_map: Record<string, string> };
    const shard = 'model-00003-of-00003.safetensors';
    const added = ['model.layers.3.eh_proj.weight', 'model.layers.3.mlp.experts.0.gate_proj.weight', 'model.layers.4.mlp.experts.0.gate_proj.weight'];
    await rewriteShard(files, shard, (list) => {
      for (const name of added) list.push({ name, dtype: 'F32', shape: [16, 32] });
    });
    for (const name of added) idx.weight_map[name] = shard;
    files.set(index, bytesOf(idx));
    const s = await inspectCheckpoint(toSet(files));
    expect(s.params.total).toBe(67416);
    expect(s.params.routedExperts).toBe(24576);
    expect(s.missingTensors).toEqual([]);
    expect(s.extraTensors).toEqual(['model.layers.4.mlp.experts.0.gate_proj.weight']);
  });

  it('a fused expert tensor whose expert count contradicts the config → InvalidShape', async () => {
    const files = loadDir(join(MODELS, 'qwen3_moe-fused'));
    const cfg = json(files.get('config.json')!) as Record<string, unknown>;
    cfg['num_local_experts'] = 6;
    files.set('config.json', bytesOf(cfg));
    const e = await rejection(inspectCheckpoint(toSet(files)));
    expect(e.code).toBe('InvalidShape');
    expect(e.message).toMatch(/"model\.layers\.\d+\.mlp\.(experts\.gate_up_proj|experts\.down_proj|gate\.weight)" has shape \[8, \d+(, \d+)?\] but config\.json implies \[6, /);
  });

  it('an unsupported architecture names config.json and the supported list', async () => {
    const e = await rejection(
      inspectCheckpoint(
        memorySet(mixtralDir, (f) => {
          f.set('config.json', bytesOf({ architectures: ['GptOssForCausalLM'], model_type: 'gpt_oss' }));
        }),
      ),
    );
    expect([e.code, e.file]).toEqual(['UnsupportedFamily', 'config.json']);
    expect(e.message).toContain('GptOssForCausalLM');
    expect(e.message).toContain('Qwen3MoeForCausalLM');
  });
});
