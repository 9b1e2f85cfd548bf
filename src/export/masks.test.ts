import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { MemoryFolder, rawFolder } from '../../tests/export-helpers.ts';
import { openNodeFileSet } from '../cli/node-files.ts';
import { dtypeBits, numel } from '../formats/dtype.ts';
import { catalogueCheckpoint, type Catalogue } from '../models/catalogue.ts';
import { type MaskLookup } from './masks.ts';
import { planPrunedTensors, type LayerKeep } from './tensor-plan.ts';
import { writePrunedCheckpoint } from './write-checkpoint.ts';

const MODELS = fileURLToPath(new URL('../../fixtures/models', import.meta.url));

function randomBits(elems: number, seed: number): Uint32Array {
  const out = new Uint32Array(Math.ceil(elems / 32));
  let s = seed >>> 0 || 7;
  for (let i = 0; i < elems; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    if (s >>> 31) out[i >>> 5]! |= 1 << (i & 31);
  }
  return out;
}
const bit = (b: Uint32Array, i: number): boolean => ((b[i >>> 5]! >>> (i & 31)) & 1) === 1;

async function exportWith(cat: Catalogue, dir: string, keeps: LayerKeep[], masks?: MaskLookup) {
  const out = new MemoryFolder();
  await writePrunedCheckpoint(cat, await openNodeFileSet(dir), planPrunedTensors(cat, keeps), { configText: '{}', extras: [], ...(masks ? { masks } : {}) }, out);
  return rawFolder(out.visible());
}

/**
 * Masks over the engine's names for every expert (original index e, before renumbering), the router (all original
 * rows) and one attention map; the export must zero exactly the masked elements of what it writes and copy the rest.
 */
describe.each([
  { fixture: 'mixtral', layer: 0, kept: [0, 2], merges: [{ slot: 1, members: [1, 2, 3] }] },
  { fixture: 'qwen3_moe-fused', layer: 1, kept: [0, 5, 7], merges: [{ slot: 2, members: [6, 7] }] },
  { fixture: 'qwen3_moe-bf16', layer: 1, kept: [1, 4, 6], merges: [] },
  { fixture: 'deepseek_v3-fp8', layer: 1, kept: [0, 3], merges: [] },
])('export with stage-2 masks: $fixture', ({ fixture, layer, kept, merges }) => {
  it('writes exact zeros where a mask bit is 0 and the stage-1 bytes elsewhere, per expert, fused row, router row and attention map', async () => {
    const dir = join(MODELS, fixture);
    const cat = await catalogueCheckpoint(await openNodeFileSet(dir));
    const keeps: LayerKeep[] = [{ layer, kept, merges }];
    const info = cat.moeLayers.find((l) => l.layer === layer)!;
    const blk = info.routerTensor.replace(/\.gate\.weight$/, '');
    const masks = new Map<string, Uint32Array>();
    let seed = 1;
    const fused = cat.tensors.has(`${blk}.experts.gate_up_proj`);
    const H = cat.summary.hiddenSize;
    const I = cat.summary.expertIntermediateSize;
    for (let e = 0; e < info.experts; e++) {
      const names = fused
        ? [`${blk}.experts.gate_up_proj[${e}].gate`, `${blk}.experts.gate_up_proj[${e}].up`, `${blk}.experts.down_proj[${e}]`]
        : [...cat.tensors.values()].filter((t) => t.role.kind === 'expert' && t.role.layer === layer && t.role.expert === e && t.role.part === 'weight').map((t) => t.name);
      for (const n of names) masks.set(n, randomBits(I * H, seed++));
    }
    masks.set(info.routerTensor, randomBits(info.experts * H, seed++));
    const attn = [...cat.tensors.values()].find((t) => t.role.kind === 'attention' && t.role.layer === layer && t.shape.length === 2 && t.name.endsWith('proj.weight'))!;
    masks.set(attn.name, randomBits(numel(attn.shape), seed++));

    const plain = await exportWith(cat, dir, keeps);
    const masked = await exportWith(cat, dir, keeps, (n) => masks.get(n));
    expect([...masked.keys()].sort()).toEqual([...plain.keys()].sort());
    // Which bits each written element must follow: output slot s holds original expert kept[s].
    const expected = (name: string): Uint32Array | undefined => {
      if (name === info.routerTensor) {
        const src = masks.get(name)!;
        return concatRows(kept.map((e) => ({ bits: src, from: e * H, n: H })));
      }
      if (name === attn.name) return masks.get(name);
      if (fused && name === `${blk}.experts.gate_up_proj`)
        return concatRows(kept.flatMap((e) => [{ bits: masks.get(`${name}[${e}].gate`)!, from: 0, n: I * H }, { bits: masks.get(`${name}[${e}].up`)!, from: 0, n: I * H }]));
      if (fused && name === `${blk}.experts.down_proj`) return concatRows(kept.map((e) => ({ bits: masks.get(`${name}[${e}]`)!, from: 0, n: I * H })));
      const m = new RegExp(`^${blk.replace(/\./g, '\\.')}\\.experts\\.(\\d+)\\.(.+)$`).exec(name);
      if (m && !m[2]!.endsWith('_scale_inv')) return masks.get(`${blk}.experts.${kept[Number(m[1])]}.${m[2]}`);
      return undefined;
    };
    let zeroed = 0;
    let checked = 0;
    for (const [name, t] of masked) {
      const p = plain.get(name)!;
      expect(t.dtype).toBe(p.dtype);
      expect(t.shape).toEqual(p.shape);
      const bits = expected(name);
      if (!bits) {
        expect(Buffer.from(t.bytes).equals(Buffer.from(p.bytes)), name).toBe(true);
        continue;
      }
      checked++;
      const size = dtypeBits(t.dtype as never) / 8;
      for (let j = 0; j < t.bytes.length / size; j++) {
        const got = t.bytes.subarray(j * size, (j + 1) * size);
        if (bit(bits, j)) expect(Buffer.from(got).equals(Buffer.from(p.bytes.subarray(j * size, (j + 1) * size))), `${name}[${j}]`).toBe(true);
        else {
          expect(got.every((b) => b === 0), `${name}[${j}] must be zero`).toBe(true);
          zeroed++;
        }
      }
    }
    expect(checked).toBeGreaterThanOrEqual(fused ? 4 : 2 + 3 * kept.length);
    expect(zeroed).toBeGreaterThan(100);
  });
});

function concatRows(parts: Array<{ bits: Uint32Array; from: number; n: number }>): Uint32Array {
  const total = parts.reduce((a, p) => a + p.n, 0);
  const out = new Uint32Array(Math.ceil(total / 32));
  let o = 0;
  for (const p of parts) for (let j = 0; j < p.n; j++, o++) if (bit(p.bits, p.from + j)) out[o >>> 5]! |= 1 << (o & 31);
  return out;
}
