/**
 * A shape-true synthetic Mixtral-8x7B checkpoint for the scale benchmark: the real layer shapes (hidden 4096,
 * intermediate 14336, 8 experts routed top-2, 32 query / 8 key-value heads, vocabulary 32000), the real config
 * fields, bf16, one shard per decoder layer (the embeddings ride in the first shard, the final norm and lm_head
 * in the last) and a model.safetensors.index.json. Two layers make 6.33 GB; values are seeded pseudo-random bf16.
 *
 * Written streaming, 8 MiB at a time, so generating it needs no more memory than one piece. It is bulk data:
 * generated on demand into a git-ignored folder (.bench-data/ by default), never committed.
 */
import { constants } from 'node:fs';
import { copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { formatShardIndex, INDEX_FILE } from '../src/formats/safetensors/index-file.ts';
import { writeBf16Shards, type PlannedTensor } from './bf16-shards.ts';

export const SCALE_DIR = '.bench-data/scale-mixtral';

/** Mixtral-8x7B-v0.1's config.json with fewer layers. */
export function scaleConfig(layers: number): Record<string, unknown> {
  return {
    architectures: ['MixtralForCausalLM'],
    attention_dropout: 0.0,
    bos_token_id: 1,
    eos_token_id: 2,
    hidden_act: 'silu',
    hidden_size: 4096,
    initializer_range: 0.02,
    intermediate_size: 14336,
    max_position_embeddings: 32768,
    model_type: 'mixtral',
    num_attention_heads: 32,
    num_experts_per_tok: 2,
    num_hidden_layers: layers,
    num_key_value_heads: 8,
    num_local_experts: 8,
    output_router_logits: false,
    rms_norm_eps: 1e-5,
    rope_theta: 1e6,
    router_aux_loss_coef: 0.02,
    sliding_window: null,
    tie_word_embeddings: false,
    torch_dtype: 'bfloat16',
    transformers_version: '4.36.0.dev0',
    use_cache: true,
    vocab_size: 32000,
  };
}

/** Tensors per shard: shard i holds decoder layer i. */
export function scaleTensors(layers: number): PlannedTensor[][] {
  const H = 4096;
  const I = 14336;
  const KV = 8 * (H / 32);
  const V = 32000;
  const t = (name: string, shape: number[]): PlannedTensor => ({ name, shape, byteLength: shape.reduce((a, b) => a * b, 1) * 2 });
  const shards: PlannedTensor[][] = [];
  for (let l = 0; l < layers; l++) {
    const p = `model.layers.${l}.`;
    const s: PlannedTensor[] = [
      t(`${p}input_layernorm.weight`, [H]),
      t(`${p}post_attention_layernorm.weight`, [H]),
      t(`${p}self_attn.q_proj.weight`, [H, H]),
      t(`${p}self_attn.k_proj.weight`, [KV, H]),
      t(`${p}self_attn.v_proj.weight`, [KV, H]),
      t(`${p}self_attn.o_proj.weight`, [H, H]),
      t(`${p}block_sparse_moe.gate.weight`, [8, H]),
    ];
    for (let e = 0; e < 8; e++)
      s.push(t(`${p}block_sparse_moe.experts.${e}.w1.weight`, [I, H]), t(`${p}block_sparse_moe.experts.${e}.w3.weight`, [I, H]), t(`${p}block_sparse_moe.experts.${e}.w2.weight`, [H, I]));
    if (l === 0) s.push(t('model.embed_tokens.weight', [V, H]));
    if (l === layers - 1) s.push(t('model.norm.weight', [H]), t('lm_head.weight', [V, H]));
    shards.push(s);
  }
  return shards;
}

export function scaleBytes(layers: number): number {
  return scaleTensors(layers)
    .flat()
    .reduce((s, t) => s + t.byteLength, 0);
}

const PIECE = 8 << 20;

/**
 * Pseudo-random bf16 values, two per xorshift32 draw: random sign, 7 random mantissa bits and a random exponent
 * in 2^-11..2^-8 (|x| < 0.008, the order of trained weights; never NaN, Inf or subnormal).
 */
function randomPiece(state: Uint32Array, bytes: number): Uint8Array {
  const words = new Uint32Array(bytes / 4);
  let s = state[0]!;
  for (let i = 0; i < words.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    words[i] = ((s & 0x81ff81ff) | 0x3a003a00) >>> 0;
  }
  state[0] = s;
  return new Uint8Array(words.buffer);
}

export interface ScaleCheckpoint {
  readonly dir: string;
  readonly layers: number;
  readonly bytes: number;
  /** Whether this call wrote it (false: an earlier complete one was reused). */
  readonly generated: boolean;
  readonly generateMs: number;
}

/**
 * Beside the folder (inside it, the CLI would take it for a checkpoint file and copy it into exports): marks a
 * finished generation; a folder without it (interrupted, other shape or seed) is written again.
 */
const doneFile = (dir: string): string => `${dir.replace(/\/+$/, '')}.complete.json`;

/**
 * Stage 2 calibrates on text, so the checkpoint needs a tokenizer: the demo model's byte-level BPE
 * (public/demo/model/tokenizer.json, 4096 ids, trained on the Austen novels by tools/demo). Its ids fit Mixtral's
 * 32000-row embedding, and with random weights only the ids matter.
 */
const TOKENIZER = new URL('../public/demo/model/tokenizer.json', import.meta.url);

export async function ensureScaleCheckpoint(dir = SCALE_DIR, layers = 2, seed = 1, onShard?: (name: string) => void): Promise<ScaleCheckpoint> {
  const bytes = scaleBytes(layers);
  const want = JSON.stringify({ layers, seed, bytes });
  const have = await readFile(doneFile(dir), 'utf8').catch(() => null);
  if (have === want) {
    // A checkpoint written before the tokenizer was added gets it now.
    await copyFile(TOKENIZER, join(dir, 'tokenizer.json'), constants.COPYFILE_EXCL).catch(() => undefined);
    return { dir, layers, bytes, generated: false, generateMs: 0 };
  }
  const t0 = performance.now();
  await rm(doneFile(dir), { force: true });
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const state = new Uint32Array([seed >>> 0 || 1]);
  const weightMap = await writeBf16Shards(dir, scaleTensors(layers), async function* (t) {
    for (let off = 0; off < t.byteLength; off += PIECE) yield randomPiece(state, Math.min(PIECE, t.byteLength - off));
  }, onShard);
  await writeFile(join(dir, INDEX_FILE), formatShardIndex(weightMap, bytes));
  await writeFile(join(dir, 'config.json'), JSON.stringify(scaleConfig(layers), null, 2) + '\n');
  await copyFile(TOKENIZER, join(dir, 'tokenizer.json'));
  await writeFile(doneFile(dir), want);
  return { dir, layers, bytes, generated: true, generateMs: performance.now() - t0 };
}
