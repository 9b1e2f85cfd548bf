/**
 * Synthetic checkpoints for benchmarks, written with our own safetensors writer (no Python needed):
 * a Mixtral-shaped model of random bf16 values, sharded like a Hub checkpoint.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { f32ToBf16 } from '../src/formats/dtype.ts';
import { formatShardIndex, planShards } from '../src/formats/safetensors/index-file.ts';
import { writeBf16Shards } from './bf16-shards.ts';

export interface SyntheticShape {
  readonly layers: number;
  readonly experts: number;
  readonly hidden: number;
  readonly intermediate: number;
  readonly vocab: number;
  readonly topK: number;
  readonly shardBytes: number;
}

/** Deterministic xorshift so runs are comparable. */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 4294967296 - 0.5;
  };
}

export async function writeSyntheticMixtral(dir: string, s: SyntheticShape, seed = 1): Promise<{ bytes: number }> {
  await mkdir(dir, { recursive: true });
  const H = s.hidden;
  const I = s.intermediate;
  const tensors: Array<{ name: string; shape: number[]; byteLength: number }> = [];
  const add = (name: string, shape: number[]) => tensors.push({ name, shape, byteLength: shape.reduce((a, b) => a * b, 1) * 2 });
  add('model.embed_tokens.weight', [s.vocab, H]);
  for (let l = 0; l < s.layers; l++) {
    const p = `model.layers.${l}.`;
    add(`${p}input_layernorm.weight`, [H]);
    add(`${p}post_attention_layernorm.weight`, [H]);
    for (const w of ['q', 'k', 'v', 'o']) add(`${p}self_attn.${w}_proj.weight`, [H, H]);
    add(`${p}block_sparse_moe.gate.weight`, [s.experts, H]);
    for (let e = 0; e < s.experts; e++) {
      add(`${p}block_sparse_moe.experts.${e}.w1.weight`, [I, H]);
      add(`${p}block_sparse_moe.experts.${e}.w3.weight`, [I, H]);
      add(`${p}block_sparse_moe.experts.${e}.w2.weight`, [H, I]);
    }
  }
  add('model.norm.weight', [H]);
  add('lm_head.weight', [s.vocab, H]);
  const shards = planShards(tensors, s.shardBytes);
  const r = rng(seed);
  const weightMap = await writeBf16Shards(dir, shards, async function* (t) {
    const n = t.byteLength / 2;
    const piece = 1 << 20;
    for (let off = 0; off < n; off += piece) {
      const m = Math.min(piece, n - off);
      const out = new Uint16Array(m);
      for (let k = 0; k < m; k++) out[k] = f32ToBf16(r() * 0.1);
      yield new Uint8Array(out.buffer);
    }
  });
  const total = shards.flat().reduce((a, t) => a + t.byteLength, 0);
  await writeFile(join(dir, 'model.safetensors.index.json'), formatShardIndex(weightMap, total));
  const config = {
    architectures: ['MixtralForCausalLM'], model_type: 'mixtral', hidden_size: H, intermediate_size: I, num_hidden_layers: s.layers,
    num_attention_heads: 4, num_key_value_heads: 4, num_local_experts: s.experts, num_experts_per_tok: s.topK, vocab_size: s.vocab,
    rms_norm_eps: 1e-5, tie_word_embeddings: false, torch_dtype: 'bfloat16',
  };
  await writeFile(join(dir, 'config.json'), JSON.stringify(config, null, 2));
  return { bytes: total };
}
