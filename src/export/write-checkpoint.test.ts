import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { openNodeFileSet } from '../cli/node-files.ts';
import { MoePruneError } from '../core/errors.ts';
import type { Progress } from '../core/progress.ts';
import { MapFileSet, MemorySource, type ByteSource, type FileSet } from '../formats/bytes.ts';
import { buildHeader } from '../formats/safetensors/writer.ts';
import { catalogueCheckpoint, type Catalogue } from '../models/catalogue.ts';
import { MemoryFolder, rawFolder, rawTensors } from '../../tests/export-helpers.ts';
import { planPrunedTensors } from './tensor-plan.ts';
import { writePrunedCheckpoint } from './write-checkpoint.ts';

const MODELS = fileURLToPath(new URL('../../fixtures/models', import.meta.url));


const diskFolder = (name: string): Map<string, Uint8Array> => {
  const index = JSON.parse(readFileSync(join(MODELS, name, 'model.safetensors.index.json'), 'utf8')) as { weight_map: Record<string, string> };
  return new Map([...new Set(Object.values(index.weight_map))].map((f) => [f, new Uint8Array(readFileSync(join(MODELS, name, f)))]));
};

const CONFIG_TEXT = '{"patched": true}\n';
const EXTRAS = [{ name: 'prune-report.json', text: '{"format":"moe-prune-report"}\n' }];

describe('writePrunedCheckpoint on the sharded mixtral fixture', () => {
  let files: FileSet;
  let cat: Catalogue;
  beforeAll(async () => {
    files = await openNodeFileSet(join(MODELS, 'mixtral'));
    cat = await catalogueCheckpoint(files);
  });
  const keeps = [
    { layer: 0, kept: [1, 3], merges: [] },
    { layer: 1, kept: [0, 2, 3], merges: [] },
  ];

  it('writes byte-exact slices, renumbered experts, an index and copied files, then commits', async () => {
    const plan = planPrunedTensors(cat, keeps);
    const out = new MemoryFolder();
    const result = await writePrunedCheckpoint(cat, files, plan, { configText: CONFIG_TEXT, extras: EXTRAS }, out);
    expect(out.committed && !out.aborted).toBe(true);
    const seen = out.visible();
    expect(result.shards).toEqual(['model-00001-of-00003.safetensors', 'model-00002-of-00003.safetensors', 'model-00003-of-00003.safetensors']);
    expect(new TextDecoder().decode(seen.get('config.json'))).toBe(CONFIG_TEXT);
    expect(new TextDecoder().decode(seen.get('prune-report.json'))).toBe(EXTRAS[0]!.text);
    for (const f of ['tokenizer.json', 'tokenizer_config.json', 'generation_config.json'])
      expect(Buffer.from(seen.get(f)!).equals(readFileSync(join(MODELS, 'mixtral', f)))).toBe(true);
    expect(result.files.map((f) => f.name).sort()).toEqual([...seen.keys()].sort());

    const src = rawFolder(diskFolder('mixtral'));
    const got = rawFolder(seen);
    const E = (L: number, e: number, w: string): string => `model.layers.${L}.block_sparse_moe.experts.${e}.${w}.weight`;
    for (const w of ['w1', 'w2', 'w3']) {
      expect(got.get(E(0, 0, w))!.bytes).toEqual(src.get(E(0, 1, w))!.bytes);
      expect(got.get(E(0, 1, w))!.bytes).toEqual(src.get(E(0, 3, w))!.bytes);
      expect(got.has(E(0, 2, w))).toBe(false);
      expect([0, 1, 2].map((s) => got.get(E(1, s, w))!.bytes)).toEqual([0, 2, 3].map((e) => src.get(E(1, e, w))!.bytes));
    }
    const router = (L: number): string => `model.layers.${L}.block_sparse_moe.gate.weight`;
    const rows = (L: number, ids: number[]): Uint8Array => {
      const b = src.get(router(L))!.bytes;
      return Uint8Array.from(ids.flatMap((e) => [...b.subarray(e * 128, (e + 1) * 128)]));
    };
    expect(got.get(router(0))).toMatchObject({ dtype: 'F32', shape: [2, 32] });
    expect(got.get(router(0))!.bytes).toEqual(rows(0, [1, 3]));
    expect(got.get(router(1))!.bytes).toEqual(rows(1, [0, 2, 3]));
    for (const name of ['model.embed_tokens.weight', 'lm_head.weight', 'model.layers.1.self_attn.o_proj.weight', 'model.norm.weight'])
      expect(got.get(name)!.bytes).toEqual(src.get(name)!.bytes);
    expect(got.size).toBe(src.size - 3 * 3);

    const index = JSON.parse(new TextDecoder().decode(seen.get('model.safetensors.index.json'))) as { metadata: Record<string, number>; weight_map: Record<string, string> };
    expect(index.weight_map).toEqual(Object.fromEntries([...got].map(([n, t]) => [n, t.file]).sort()));
    expect(index.metadata.total_size).toBe([...got.values()].reduce((s, t) => s + t.bytes.byteLength, 0));
    expect(index.metadata.total_size).toBe(plan.bytes);
    expect(index.metadata.total_parameters).toBe(plan.params);
  });

  it('progress is monotonic over one total and ends at exactly 100%', async () => {
    const events: Progress[] = [];
    const out = new MemoryFolder();
    await writePrunedCheckpoint(cat, files, planPrunedTensors(cat, keeps), { configText: CONFIG_TEXT, extras: EXTRAS }, out, { onProgress: (p) => events.push(p) });
    expect(events.length).toBeGreaterThan(3);
    const total = events[0]!.total;
    expect(events.every((p) => p.total === total && p.unit === 'bytes' && p.phase === 'export')).toBe(true);
    for (let i = 1; i < events.length; i++) expect(events[i]!.done).toBeGreaterThanOrEqual(events[i - 1]!.done);
    expect(events.at(-1)!.done).toBe(total);
    // The total is every shard (headers included) plus every copied file.
    const seen = out.visible();
    const counted = [...seen].filter(([n]) => n.endsWith('.safetensors') || ['tokenizer.json', 'tokenizer_config.json', 'generation_config.json', 'expected.json'].includes(n));
    expect(total).toBe(counted.reduce((s, [, b]) => s + b.byteLength, 0));
  });

  it('a cancel during the export aborts the folder: nothing is committed', async () => {
    const ac = new AbortController();
    const out = new MemoryFolder();
    let events = 0;
    const run = writePrunedCheckpoint(cat, files, planPrunedTensors(cat, keeps), { configText: CONFIG_TEXT, extras: EXTRAS }, out, {
      signal: ac.signal,
      onProgress: () => {
        if (++events === 2) ac.abort();
      },
    });
    await expect(run).rejects.toMatchObject({ code: 'Cancelled' });
    expect(out.aborted).toBe(true);
    expect(out.openAtAbort).toEqual([]);
    expect(out.committed).toBe(false);
    expect(out.visible().size).toBe(0);
  });

  it('a read failure mid-export aborts the folder and surfaces a typed error', async () => {
    // The writer reads through the catalogue's shard sources, so the failing set is catalogued first, then armed.
    let armed = false;
    let reads = 0;
    const failing: FileSet = {
      names: () => files.names(),
      get: (name) => {
        const f = files.get(name);
        if (!f || !name.endsWith('.safetensors')) return f;
        const wrapped: ByteSource = {
          name: f.name,
          size: f.size,
          read: async (o, l, s) => {
            if (armed && ++reads > 3) throw new MoePruneError('IoError', 'disk went away', f.name);
            return f.read(o, l, s);
          },
        };
        return wrapped;
      },
    };
    const failingCat = await catalogueCheckpoint(failing);
    armed = true;
    const out = new MemoryFolder();
    const run = writePrunedCheckpoint(failingCat, failing, planPrunedTensors(failingCat, keeps), { configText: CONFIG_TEXT, extras: EXTRAS }, out);
    await expect(run).rejects.toMatchObject({ code: 'IoError', message: expect.stringContaining('disk went away') });
    expect(reads).toBe(4);
    expect([out.aborted, out.committed]).toEqual([true, false]);
    expect(out.openAtAbort).toEqual([]);
  });
});

describe('merged slots in BF16', () => {
  // bf16 bits: 1.0 = 3F80, 1.0078125 = 3F81, 1.015625 = 3F82, 2.0 = 4000, -3.0 = C040.
  // Means: (3F80,3F81) is a tie → even 3F80; (3F81,3F82) a tie → even 3F82; (3F80,4000) → 1.5 = 3FC0; (C040,3F80) → -1.0 = BF80.
  const A = [0x3f80, 0x3f81, 0x3f80, 0xc040];
  const B = [0x3f81, 0x3f82, 0x4000, 0x3f80];
  const MEAN = [0x3f80, 0x3f82, 0x3fc0, 0xbf80];

  /** The mixtral-bf16 fixture's tensors rebuilt as one in-memory file: experts 1 and 2 of layer 0 hold A and B. */
  async function synthetic(): Promise<{ files: FileSet; cat: Catalogue }> {
    const disk = await catalogueCheckpoint(await openNodeFileSet(join(MODELS, 'mixtral-bf16')));
    const tensors = [...disk.tensors.values()].map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape }));
    const h = buildHeader(tensors);
    const file = new Uint8Array(h.bytes.byteLength + h.dataBytes);
    file.set(h.bytes);
    const header = rawTensors(file);
    for (const [name, t] of header) {
      const m = /layers\.0\.block_sparse_moe\.(?:experts\.(\d)\.|gate\.weight)/.exec(name);
      const pattern = m && (m[1] === '1' ? A : m[1] === '2' ? B : m[1] === undefined ? null : [0x3f80 + Number(m[1])]);
      const dv = new DataView(t.bytes.buffer, t.bytes.byteOffset, t.bytes.byteLength);
      for (let i = 0; i < t.bytes.byteLength / 2; i++) {
        // Router rows: row e holds pattern A for e=1, B for e=2, e for others; other tensors a constant.
        const row = Math.floor(i / 32);
        const bits = pattern ? pattern[i % pattern.length]! : m ? (row === 1 ? A[i % 4]! : row === 2 ? B[i % 4]! : 0x3f80 + row) : 0x3c00;
        dv.setUint16(i * 2, bits, true);
      }
    }
    const config = readFileSync(join(MODELS, 'mixtral-bf16', 'config.json'));
    const files = new MapFileSet([new MemorySource('config.json', new Uint8Array(config)), new MemorySource('model.safetensors', file)]);
    return { files, cat: await catalogueCheckpoint(files) };
  }

  it('averages in f32 and rounds to nearest even, expert tensors and router rows alike; single file stays single', async () => {
    const { files, cat } = await synthetic();
    const plan = planPrunedTensors(cat, [{ layer: 0, kept: [0, 1], merges: [{ slot: 1, members: [1, 2] }] }]);
    const out = new MemoryFolder();
    const result = await writePrunedCheckpoint(cat, files, plan, { configText: CONFIG_TEXT, extras: [] }, out);
    expect(result.shards).toEqual(['model.safetensors']);
    expect([...out.visible().keys()].sort()).toEqual(['config.json', 'model.safetensors']);
    const got = rawTensors(out.visible().get('model.safetensors')!);
    const bits = (b: Uint8Array): number[] => Array.from(new Uint16Array(b.slice().buffer));
    for (const w of ['w1', 'w2', 'w3']) {
      const merged = bits(got.get(`model.layers.0.block_sparse_moe.experts.1.${w}.weight`)!.bytes);
      expect(merged.slice(0, 8)).toEqual([...MEAN, ...MEAN]);
      expect(new Set(merged.map((_, i) => merged[i]! === MEAN[i % 4]!))).toEqual(new Set([true]));
      expect(new Set(bits(got.get(`model.layers.0.block_sparse_moe.experts.0.${w}.weight`)!.bytes))).toEqual(new Set([0x3f80]));
    }
    const router = bits(got.get('model.layers.0.block_sparse_moe.gate.weight')!.bytes);
    expect(router.length).toBe(2 * 32);
    expect(new Set(router.slice(0, 32))).toEqual(new Set([0x3f80]));
    expect(router.slice(32)).toEqual(Array.from({ length: 32 }, (_, i) => MEAN[i % 4]!));
  });
});
