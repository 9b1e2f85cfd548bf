// A checkpoint generated at test time (never committed): the mixtral fixture re-sharded one tensor per file, with
// the embedding and the LM head widened to `vocab` rows so each is larger than the export's 8 MiB I/O piece.
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fixtureDir } from './fixtures.mjs';

const BIG = new Set(['model.embed_tokens.weight', 'lm_head.weight']);
const WIDTH = { F32: 4, BF16: 2, F16: 2 };

function readShard(path) {
  const buf = readFileSync(path);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
  const out = [];
  for (const [name, t] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const [b, e] = t.data_offsets;
    out.push({ name, dtype: t.dtype, shape: t.shape, bytes: buf.subarray(8 + n + b, 8 + n + e) });
  }
  return out;
}

function writeShard(path, t) {
  let header = Buffer.from(JSON.stringify({ __metadata__: { format: 'pt' }, [t.name]: { dtype: t.dtype, shape: t.shape, data_offsets: [0, t.bytes.length] } }));
  header = Buffer.concat([header, Buffer.alloc((8 - (header.length % 8)) % 8, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(header.length));
  writeFileSync(path, Buffer.concat([len, header, t.bytes]));
}

/** Deterministic small values (no NaN or Inf), as the dtype's bytes. */
function pseudoRandom(dtype, count, seed) {
  const f = new Float32Array(count);
  let s = seed >>> 0;
  for (let i = 0; i < count; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    f[i] = (s / 2 ** 32 - 0.5) * 0.1;
  }
  if (dtype === 'F32') return Buffer.from(f.buffer);
  if (dtype === 'BF16') {
    const u = new Uint32Array(f.buffer);
    const out = Buffer.alloc(count * 2);
    for (let i = 0; i < count; i++) out.writeUInt16LE(u[i] >>> 16, 2 * i);
    return out;
  }
  throw new Error(`no generator for ${dtype}`);
}

/** Writes the checkpoint into `dir`; returns { files, shards, tensorBytes: Map(name → Buffer), bigBytes }. */
export function writeManyShardCheckpoint(dir, { source = 'mixtral', vocab = 70_000 } = {}) {
  const src = fixtureDir(source);
  const index = JSON.parse(readFileSync(join(src, 'model.safetensors.index.json'), 'utf8'));
  const config = JSON.parse(readFileSync(join(src, 'config.json'), 'utf8'));
  const tensors = [...new Set(Object.values(index.weight_map))].flatMap((s) => readShard(join(src, s))).sort((a, b) => (a.name < b.name ? -1 : 1));
  for (const t of tensors) {
    if (!BIG.has(t.name)) continue;
    t.shape = [vocab, t.shape[1]];
    t.bytes = pseudoRandom(t.dtype, vocab * t.shape[1], t.name.length);
  }
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const n = tensors.length;
  const pad = (i) => String(i).padStart(5, '0');
  const weightMap = {};
  tensors.forEach((t, i) => {
    const shard = `model-${pad(i + 1)}-of-${pad(n)}.safetensors`;
    writeShard(join(dir, shard), t);
    weightMap[t.name] = shard;
  });
  const total = tensors.reduce((s, t) => s + t.bytes.length, 0);
  writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2) + '\n');
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...config, vocab_size: vocab }, null, 2) + '\n');
  for (const f of ['tokenizer.json', 'tokenizer_config.json', 'generation_config.json']) copyFileSync(join(src, f), join(dir, f));
  const bigBytes = Math.min(...tensors.filter((t) => BIG.has(t.name)).map((t) => t.bytes.length));
  if (bigBytes <= 8 * 1024 * 1024) throw new Error(`vocab ${vocab} leaves the big tensors at ${bigBytes} bytes, not above 8 MiB (width ${WIDTH[tensors[0].dtype]})`);
  return { shards: n, tensorBytes: new Map(tensors.map((t) => [t.name, t.bytes])), bigBytes };
}
