import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { MapFileSet, MemorySource } from '../formats/bytes.ts';
import { buildHeader } from '../formats/safetensors/writer.ts';
import { describeSafetensorsFile, loneWeightsFile, NEEDS_CONFIG, STRICT_CHECKS } from './lone-file.ts';

const file = (name: string, bytes: Uint8Array = new Uint8Array(0)): MemorySource => new MemorySource(name, bytes);
const names = (...n: string[]): MapFileSet => new MapFileSet(n.map((x) => file(x)));

describe('which file is listed on its own', () => {
  it('a single file whatever its name; the only shard of a set without config.json', () => {
    expect(loneWeightsFile(names('model-00002-of-00003.safetensors'))?.name).toBe('model-00002-of-00003.safetensors');
    expect(loneWeightsFile(names('pytorch_model.bin'))?.name).toBe('pytorch_model.bin');
    expect(loneWeightsFile(names('model.safetensors', 'tokenizer.json', 'README.md'))?.name).toBe('model.safetensors');
  });

  it('never a checkpoint with its config, nor a sharded one missing it (that stays an error)', () => {
    expect(loneWeightsFile(names('config.json', 'model.safetensors'))).toBeUndefined();
    expect(loneWeightsFile(names('a.safetensors', 'b.safetensors', 'model.safetensors.index.json'))).toBeUndefined();
    expect(loneWeightsFile(names('tokenizer.json', 'README.md'))).toBeUndefined();
  });
});

describe('the header of a lone file', () => {
  it('lists every tensor in data order with dtype, shape and bytes, the metadata and the checks', async () => {
    const tensors = [
      { name: 'model.layers.0.mlp.experts.gate_up_proj', dtype: 'BF16' as const, shape: [4, 16, 8] },
      { name: 'model.layers.0.mlp.gate.weight', dtype: 'F32' as const, shape: [4, 8] },
      { name: 'model.norm.weight', dtype: 'BF16' as const, shape: [8] },
    ];
    const h = buildHeader(tensors, { format: 'pt', note: 'shard 2 of 3' });
    const bytes = new Uint8Array(h.bytes.byteLength + h.dataBytes);
    bytes.set(h.bytes);
    const d = await describeSafetensorsFile(file('model-00002-of-00003.safetensors', bytes));
    expect(d).toEqual({
      kind: 'safetensors-file',
      file: 'model-00002-of-00003.safetensors',
      bytesOnDisk: bytes.byteLength,
      headerBytes: h.bytes.byteLength,
      tensorBytes: 4 * 16 * 8 * 2 + 4 * 8 * 4 + 8 * 2,
      tensorCount: 3,
      elements: 4 * 16 * 8 + 4 * 8 + 8,
      dtypes: { BF16: 2, F32: 1 },
      metadata: { format: 'pt', note: 'shard 2 of 3' },
      checks: STRICT_CHECKS,
      needsConfig: NEEDS_CONFIG,
      // Data order, as the official writer lays tensors out (wider dtypes first, then by name), not header order.
      tensors: [
        { name: 'model.layers.0.mlp.gate.weight', dtype: 'F32', shape: [4, 8], bytes: 128 },
        { name: 'model.layers.0.mlp.experts.gate_up_proj', dtype: 'BF16', shape: [4, 16, 8], bytes: 1024 },
        { name: 'model.norm.weight', dtype: 'BF16', shape: [8], bytes: 16 },
      ],
    });
  });

  it('a real third-party file: the numbers its header gives', async () => {
    const path = new URL('../../fixtures/reference/atenia-tiny-random/qwen_moe_tiny.safetensors', import.meta.url);
    const d = await describeSafetensorsFile(file('qwen_moe_tiny.safetensors', new Uint8Array(readFileSync(path))));
    expect([d.tensorCount > 0, d.metadata, Object.keys(d.dtypes)]).toEqual([true, null, ['F32']]);
    expect(d.elements).toBe(26720); // transformers' Qwen2MoeForCausalLM num_parameters() for its config
    expect(d.headerBytes + d.tensorBytes).toBe(d.bytesOnDisk);
  });

  it('a broken header is refused by the same strict rules as any shard', async () => {
    const h = buildHeader([{ name: 'w', dtype: 'F32', shape: [2] }]);
    const short = new Uint8Array(h.bytes.byteLength + 4); // 4 of the 8 data bytes
    short.set(h.bytes);
    await expect(describeSafetensorsFile(file('w.safetensors', short))).rejects.toThrow(/^w\.safetensors: tensor data ends at byte .* \(truncated\) \[MetadataIncompleteBuffer\]$/);
  });
});
