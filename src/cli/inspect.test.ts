import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { buildHeader } from '../formats/safetensors/writer.ts';
import { formatRanges } from '../core/format.ts';
import { main } from './main.ts';
import { collectIo } from '../../tests/cli-io.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const MODELS = join(ROOT, 'fixtures/models');
// Third-party tiny checkpoints copied into the repo (fixtures/reference/README.md).
const ATENIA = join(ROOT, 'fixtures/reference/atenia-tiny-random');

describe('moe-prune inspect', () => {
  it('prints a table for a sharded checkpoint', async () => {
    const io = collectIo();
    expect(await main(['inspect', join(MODELS, 'deepseek_v3-fp8')], io)).toBe(0);
    const text = io.out();
    expect(text).toMatch(/^family +DeepSeek-V3 \(DeepseekV3ForCausalLM, model_type deepseek_v3\)$/m);
    expect(text).toMatch(/^layers +3: MoE 1-2; dense 0$/m);
    expect(text).toMatch(/^experts +8 per MoE layer \(n_routed_experts\), per-expert layout$/m);
    expect(text).toMatch(/^parameters +67,416 total; routed experts 24,576 \(36\.5%\), 1,536 per expert$/m);
    expect(text).toMatch(/^quantization +fp8 e4m3, 128x128 block scales$/m);
    expect(io.err()).toBe('');
  });

  it('--json gives the summary object', async () => {
    const io = collectIo();
    expect(await main(['inspect', join(ATENIA, 'mixtral_classic.safetensors'), '--json'], io)).toBe(0);
    const s = JSON.parse(io.out()) as { family: string; params: { total: number }; layout: string };
    expect([s.family, s.params.total, s.layout]).toEqual(['mixtral', 60832, 'per-expert']);
  });

  it('a lone .safetensors file: what its header says, the strict checks, and that the family needs config.json', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'moe-prune-lone-'));
    try {
      const file = join(dir, 'model.safetensors');
      copyFileSync(join(ATENIA, 'mixtral_classic.safetensors'), file);
      const io = collectIo();
      expect(await main(['inspect', file], io)).toBe(0);
      expect(io.err()).toBe('');
      const text = io.out();
      expect(text).toMatch(/^format +safetensors: 41 tensor\(s\), header 4\.50 kB, 243 kB of tensor data, 248 kB on disk$/m);
      expect(text).toMatch(/^elements +60,832 in this file$/m);
      expect(text).toMatch(/^dtypes +F32×41$/m);
      expect(text).toMatch(/^metadata +none$/m);
      expect(text).toMatch(/^check +ok: header length within the file .*; the data ends exactly at the end of the file$/m);
      expect(text).toMatch(/^family +unknown: the model family, layers and experts come from config\.json, which is not with this file/m);
      expect(text).toMatch(/^tensor +dtype +shape +bytes$/m);
      expect(text).toMatch(/^model\.layers\.1\.block_sparse_moe\.experts\.3\.w2\.weight +F32 +\[32, 64\] +8,192$/m);
      expect(text.trimEnd().split('\n')).toHaveLength(8 + 1 + 41);

      const j = collectIo();
      expect(await main(['inspect', file, '--json'], j)).toBe(0);
      const d = JSON.parse(j.out()) as { kind: string; file: string; tensorCount: number; elements: number; headerBytes: number; metadata: unknown; checks: string[]; needsConfig: string; tensors: Array<{ name: string; dtype: string; shape: number[]; bytes: number }> };
      expect([d.kind, d.file, d.tensorCount, d.elements, d.headerBytes, d.metadata]).toEqual(['safetensors-file', 'model.safetensors', 41, 60832, 4504, null]);
      expect(d.checks).toHaveLength(6);
      expect(d.needsConfig).toContain('config.json');
      expect(d.tensors.find((t) => t.name === 'model.embed_tokens.weight')).toEqual({ name: 'model.embed_tokens.weight', dtype: 'F32', shape: [48, 32], bytes: 6144 });

      // The same file with its config beside it is a checkpoint again.
      copyFileSync(join(ATENIA, 'mixtral_classic_config.json'), join(dir, 'config.json'));
      const c = collectIo();
      expect(await main(['inspect', file], c)).toBe(0);
      expect(c.out()).toMatch(/^family +Mixtral/m);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a file that is not safetensors is called that in one plain line, whatever its name', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'moe-prune-notst-'));
    try {
      const zip = Buffer.concat([Buffer.from('PK\x03\x04\x14\x00\x00\x00\x08\x00', 'latin1'), Buffer.alloc(100, 1)]);
      writeFileSync(join(dir, 'pytorch_model.bin'), zip);
      writeFileSync(join(dir, 'renamed.safetensors'), zip);
      writeFileSync(join(dir, 'config.json'), '{\n  "architectures": ["MixtralForCausalLM"]\n}\n');
      const cases: Array<[string, string]> = [
        ['pytorch_model.bin', 'pytorch_model.bin: not a safetensors file: it is a zip archive (PyTorch saves .bin and .pt checkpoints as one); convert the checkpoint to safetensors first [NotSafetensors]\n'],
        ['renamed.safetensors', 'renamed.safetensors: not a safetensors file: it is a zip archive (PyTorch saves .bin and .pt checkpoints as one); convert the checkpoint to safetensors first [NotSafetensors]\n'],
        ['config.json', 'config.json: not a safetensors file: it is a JSON text file (a config or an index?), not the binary safetensors format [NotSafetensors]\n'],
      ];
      for (const [name, line] of cases)
        for (const json of [[], ['--json']]) {
          const io = collectIo();
          expect(await main(['inspect', join(dir, name), ...json], io)).toBe(2);
          expect(io.err()).toBe(line);
          expect(io.out()).toBe('');
        }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('bad input: exit 2 and one line on stderr naming the file and the rule', async () => {
    // Several shards and no config: that is a checkpoint missing its config, not a lone file.
    const dir = mkdtempSync(join(tmpdir(), 'moe-prune-noconfig-'));
    try {
      for (const f of ['model-00001-of-00003.safetensors', 'model-00002-of-00003.safetensors', 'model-00003-of-00003.safetensors', 'model.safetensors.index.json'])
        copyFileSync(join(MODELS, 'mixtral', f), join(dir, f));
      const io = collectIo();
      expect(await main(['inspect', dir], io)).toBe(2);
      expect(io.err()).toBe('config.json: the checkpoint has no file "config.json" [MissingFile]\n');
      expect(io.out()).toBe('');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }

    const io2 = collectIo();
    expect(await main(['inspect', join(ROOT, 'no-such-checkpoint')], io2)).toBe(2);
    expect(io2.err().trimEnd().split('\n')).toHaveLength(1);
    expect(io2.err()).toContain('no-such-checkpoint');
  });

  it('a checkpoint missing an expert: the table, then exit 2 with one line naming the tensor', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'moe-prune-inspect-'));
    try {
      copyFileSync(join(ATENIA, 'mixtral_classic_config.json'), join(dir, 'config.json'));
      const tensors = [{ name: 'model.embed_tokens.weight', dtype: 'F32' as const, shape: [48, 32] }, { name: 'model.norm.weight', dtype: 'F32' as const, shape: [32] }];
      for (let l = 0; l < 2; l++) {
        const p = `model.layers.${l}.`;
        tensors.push({ name: `${p}input_layernorm.weight`, dtype: 'F32', shape: [32] }, { name: `${p}post_attention_layernorm.weight`, dtype: 'F32', shape: [32] });
        tensors.push({ name: `${p}self_attn.o_proj.weight`, dtype: 'F32', shape: [32, 32] }, { name: `${p}block_sparse_moe.gate.weight`, dtype: 'F32', shape: [4, 32] });
        for (let e = 0; e < 4; e++)
          for (const w of ['w1', 'w3', 'w2'])
            if (!(l === 1 && e === 3)) tensors.push({ name: `${p}block_sparse_moe.experts.${e}.${w}.weight`, dtype: 'F32', shape: w === 'w2' ? [32, 64] : [64, 32] });
      }
      const h = buildHeader(tensors);
      const file = new Uint8Array(h.bytes.byteLength + h.dataBytes);
      file.set(h.bytes);
      writeFileSync(join(dir, 'model.safetensors'), file);
      const io = collectIo();
      expect(await main(['inspect', dir], io)).toBe(2);
      expect(io.out()).toMatch(/^check +4 missing tensor\(s\): lm_head\.weight, model\.layers\.1\.block_sparse_moe\.experts\.3\.w1\.weight, /m);
      expect(io.err()).toBe(
        'model.safetensors: 4 tensor(s) required by config.json are absent: "lm_head.weight", "model.layers.1.block_sparse_moe.experts.3.w1.weight", "model.layers.1.block_sparse_moe.experts.3.w3.weight", … [MissingTensor]\n',
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('usage errors', async () => {
    const a = collectIo();
    expect(await main(['inspect'], a)).toBe(2);
    expect(a.err()).toContain('usage: moe-prune inspect');
    const b = collectIo();
    expect(await main(['inspect', 'x', '--yaml'], b)).toBe(2);
    expect(b.err()).toContain('unknown option "--yaml"');
    const c = collectIo();
    expect(await main(['frobnicate'], c)).toBe(2);
    expect(c.err()).toContain('unknown command "frobnicate"');
    const d = collectIo();
    expect(await main(['--help'], d)).toBe(0);
    expect(d.out()).toContain('moe-prune inspect');
    for (const h of ['-h', '--help']) {
      const e = collectIo();
      expect(await main(['inspect', h], e)).toBe(0);
      expect(e.out()).toBe('usage: moe-prune inspect <checkpoint folder | .safetensors file> [--json]\n');
    }
    const f = collectIo();
    expect(await main(['inspect', 'a', 'b'], f)).toBe(2);
    expect(f.err()).toContain('usage: moe-prune inspect');
  });

  it('formatRanges', () => {
    expect(formatRanges([0, 1, 2, 3, 5, 7, 8, 9])).toBe('0-3, 5, 7-9');
    expect(formatRanges([4])).toBe('4');
    expect(formatRanges([])).toBe('none');
  });
});
