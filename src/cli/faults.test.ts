// Faults and bad input met through the CLI, as a user meets them: each is refused with one line that names the file or
// the step, exit 2, and nothing already written is lost. The damaged checkpoints are copies of a fixture changed here.
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { findNonFiniteTensors, nonFiniteValues, scanNonFinite } from '../forward/finite.ts';
import { CheckpointWeights } from '../forward/reference/weights.ts';
import { main } from './main.ts';
import { NodeFileSource, openNodeFileSet } from './node-files.ts';
import { rejection } from '../../tests/errors.ts';
import { collectIo } from '../../tests/cli-io.ts';

const MODELS = fileURLToPath(new URL('../../fixtures/models', import.meta.url));
const MIXTRAL = join(MODELS, 'mixtral');
const TEXT = fileURLToPath(new URL('../../fixtures/austen/emma.txt', import.meta.url));
const TMP = mkdtempSync(join(tmpdir(), 'moe-prune-faults-'));
afterAll(() => rmSync(TMP, { recursive: true, force: true }));

/** Runs the CLI, expects exit 2 and returns its last stderr line (the error; progress and adapter lines come before it). */
async function refused(args: string[], onErr?: (s: string) => void): Promise<string> {
  const io = collectIo({ onErr });
  expect(await main(args, io), io.err()).toBe(2);
  expect(io.out()).toBe('');
  return io.err().trimEnd().split('\n').at(-1)!;
}

let copies = 0;
/** A copy of a fixture folder to damage. */
function copyOf(dir: string): string {
  const to = join(TMP, `copy-${++copies}`);
  cpSync(dir, to, { recursive: true });
  return to;
}

/** Overwrites element `index` of a tensor (F32) in a shard on disk. */
function pokeF32(dir: string, shard: string, tensor: string, index: number, value: number): void {
  const path = join(dir, shard);
  const buf = readFileSync(path);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; data_offsets: [number, number] }>;
  const t = header[tensor]!;
  expect(t.dtype).toBe('F32');
  buf.writeFloatLE(value, 8 + n + t.data_offsets[0] + 4 * index);
  writeFileSync(path, buf);
}

const editJson = (path: string, edit: (j: Record<string, unknown>) => void): void => {
  const j = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  edit(j);
  writeFileSync(path, JSON.stringify(j, null, 2));
};

describe('a config.json whose counts disagree with the tensors', () => {
  it('num_hidden_layers above the layers present names config.json and both counts', async () => {
    const dir = copyOf(MIXTRAL);
    editJson(join(dir, 'config.json'), (j) => (j.num_hidden_layers = 3));
    const line = await refused(['inspect', dir]);
    expect(line).toMatch(/^config\.json: num_hidden_layers is 3 but the tensors hold 2 decoder layer\(s\); no tensor of layer 2/);
    expect(await refused(['prune', dir, '--out', join(TMP, 'never'), '--experts-per-layer', '2', '--cpu'])).toBe(line);
    expect(existsSync(join(TMP, 'never'))).toBe(false);
  });

  it('num_hidden_layers below the layers present (attention weights of a layer past it) is refused too', async () => {
    const dir = copyOf(MIXTRAL);
    editJson(join(dir, 'config.json'), (j) => (j.num_hidden_layers = 1));
    expect(await refused(['inspect', dir])).toMatch(/^config\.json: num_hidden_layers is 1 but the tensors hold attention weights of layer 1/);
  });

  it('num_local_experts other than the router rows names config.json, the field and its value', async () => {
    const dir = copyOf(MIXTRAL);
    editJson(join(dir, 'config.json'), (j) => (j.num_local_experts = 6));
    expect(await refused(['inspect', dir])).toMatch(/block_sparse_moe\.gate\.weight" has shape \[4, 32\] but config\.json implies \[6, 32\] \(num_local_experts = 6\)/);
  });
});

describe('tokenizer.json missing or malformed', () => {
  const calib = join(TMP, 'calib.txt');
  writeFileSync(calib, readFileSync(TEXT, 'utf8').slice(0, 20_000));

  it('eval and prune with a calibration text name tokenizer.json; nothing is written', async () => {
    const missing = copyOf(MIXTRAL);
    rmSync(join(missing, 'tokenizer.json'));
    const broken = copyOf(MIXTRAL);
    writeFileSync(join(broken, 'tokenizer.json'), '{"version": "1.0", "model": {"type": "BPE", "vocab": {');
    const notTok = copyOf(MIXTRAL);
    writeFileSync(join(notTok, 'tokenizer.json'), '{"version": "1.0"}');
    expect(await refused(['eval', missing, '--text', calib, '--seq-len', '16', '--cpu'])).toMatch(/^tokenizer\.json: the checkpoint has no tokenizer\.json; .*calibration and perplexity/);
    expect(await refused(['eval', broken, '--text', calib, '--seq-len', '16', '--cpu'])).toMatch(/^tokenizer\.json: not valid JSON/);
    expect(await refused(['eval', notTok, '--text', calib, '--seq-len', '16', '--cpu'])).toMatch(/^tokenizer\.json: not a tokenizers JSON file/);
    const out = join(TMP, 'no-tokenizer-out');
    for (const dir of [missing, broken])
      expect(await refused(['prune', dir, '--out', out, '--experts-per-layer', '3', '--similarity', 'coactivation', '--calib-text', calib, '--calib-seq-len', '16', '--cpu'])).toMatch(
        /^tokenizer\.json: /,
      );
    expect([existsSync(out), existsSync(`${out}.partial`)]).toEqual([false, false]);
  });
});

describe('a text shorter than one window', () => {
  it('names the text file and both numbers, in eval and in prune', async () => {
    const tiny = join(TMP, 'tiny.txt');
    writeFileSync(tiny, 'It is a truth universally acknowledged.');
    expect(await refused(['eval', MIXTRAL, '--text', tiny, '--seq-len', '64', '--cpu'])).toMatch(/^tiny\.txt: the text has \d+ tokens, fewer than one window of 64; give a longer text or a shorter window length/);
    const out = join(TMP, 'short-calib-out');
    expect(
      await refused(['prune', MIXTRAL, '--out', out, '--experts-per-layer', '3', '--similarity', 'coactivation', '--calib-text', tiny, '--calib-seq-len', '64', '--cpu']),
    ).toMatch(/^tiny\.txt: the text has \d+ tokens, fewer than one window of 64/);
    expect(existsSync(out)).toBe(false);
  });

  it('a text long enough for fewer windows than asked uses the windows it has (and says how many)', async () => {
    const short = join(TMP, 'short.txt');
    writeFileSync(short, readFileSync(TEXT, 'utf8').slice(0, 600));
    const io = collectIo();
    expect(await main(['eval', MIXTRAL, '--text', short, '--seq-len', '32', '--max-windows', '50', '--cpu', '--json'], io), io.err()).toBe(0);
    const r = JSON.parse(io.out()) as { windows: number; tokens: number; perplexity: number };
    expect(r.windows).toBeGreaterThan(0);
    expect(r.windows).toBeLessThan(50);
    expect(r.tokens).toBe(r.windows * 31);
    expect(Number.isFinite(r.perplexity)).toBe(true);
  });
});

describe('weights holding NaN or Inf', () => {
  const text = join(TMP, 'eval.txt');
  writeFileSync(text, readFileSync(TEXT, 'utf8').slice(0, 20_000));
  const tensor = 'model.layers.1.self_attn.o_proj.weight';
  const shard = 'model-00003-of-00003.safetensors';

  it('scanNonFinite finds NaN and Inf in every float dtype, and nothing in finite data', () => {
    const f32 = new Float32Array([1, -2, Number.NaN, Number.POSITIVE_INFINITY]);
    expect(scanNonFinite('F32', new Uint8Array(f32.buffer))).toEqual({ index: 2, value: 'NaN', count: 2 });
    expect(scanNonFinite('F32', new Uint8Array(new Float32Array([3.4e38, -1e-40]).buffer))).toBeNull();
    expect(scanNonFinite('BF16', new Uint8Array(new Uint16Array([0x3f80, 0xff80, 0x7fc1]).buffer))).toEqual({ index: 1, value: 'Inf', count: 2 });
    expect(scanNonFinite('F16', new Uint8Array(new Uint16Array([0x3c00, 0x7bff, 0xfe00]).buffer))).toEqual({ index: 2, value: 'NaN', count: 1 });
    expect(scanNonFinite('F8_E4M3', new Uint8Array([0x7e, 0xfe, 0x7f]))).toEqual({ index: 2, value: 'NaN', count: 1 });
    expect(scanNonFinite('F64', new Uint8Array(new Float64Array([1, Number.NEGATIVE_INFINITY]).buffer))).toEqual({ index: 1, value: 'Inf', count: 1 });
    expect(scanNonFinite('I64', new Uint8Array(16).fill(0xff))).toBeNull();
  });

  it('findNonFiniteTensors names the tensor, its shard, its layer and the first bad element', async () => {
    const dir = copyOf(MIXTRAL);
    pokeF32(dir, shard, tensor, 37, Number.NaN);
    pokeHeadInf(dir);
    const found = await findNonFiniteTensors(await CheckpointWeights.open(await openNodeFileSet(dir)));
    expect(found).toEqual([
      { tensor: 'lm_head.weight', file: 'model-00001-of-00003.safetensors', layer: null, index: 5, value: 'Inf', count: 1 },
      { tensor, file: shard, layer: 1, index: 37, value: 'NaN', count: 1 },
    ]);
  });

  function pokeHeadInf(dir: string): void {
    pokeF32(dir, 'model-00001-of-00003.safetensors', 'lm_head.weight', 5, Number.NEGATIVE_INFINITY);
  }

  it('eval on the GPU and on the CPU refuses a NaN weight by name instead of printing a perplexity of NaN', async () => {
    const dir = copyOf(MIXTRAL);
    pokeF32(dir, shard, tensor, 0, Number.NaN);
    for (const device of [[], ['--cpu']]) {
      const line = await refused(['eval', dir, '--text', text, '--seq-len', '24', '--max-windows', '2', ...device]);
      expect(line).toMatch(new RegExp(`^${shard}: weight "${tensor.replace(/\./g, '\\.')}" \\(layer 1\\) holds 1 NaN value\\(s\\) \\(the first at element 0\\), so the perplexity would be NaN`));
      expect(line).not.toMatch(/perplexity NaN/);
    }
  });

  it('an infinite weight is named the same way, and prune --eval-text writes nothing', async () => {
    const dir = copyOf(MIXTRAL);
    pokeF32(dir, shard, 'model.layers.1.post_attention_layernorm.weight', 3, Number.POSITIVE_INFINITY);
    const out = join(TMP, 'nan-out');
    const line = await refused(['prune', dir, '--out', out, '--experts-per-layer', '3', '--eval-text', text, '--seq-len', '24', '--max-windows', '2', '--cpu']);
    expect(line).toMatch(/weight "model\.layers\.1\.post_attention_layernorm\.weight" \(layer 1\) holds 1 infinite value\(s\) \(the first at element 3\)/);
    expect([existsSync(out), existsSync(`${out}.partial`)]).toEqual([false, false]);
  });
});

describe('weights holding NaN: stage 1 (router rows)', () => {
  it('a NaN or infinite router weight is named (tensor, layer, shard) before any distance; nothing is written', async () => {
    for (const [value, word] of [[Number.NaN, 'NaN'], [Number.NEGATIVE_INFINITY, 'infinite']] as const) {
      const dir = copyOf(MIXTRAL);
      pokeF32(dir, 'model-00002-of-00003.safetensors', 'model.layers.0.block_sparse_moe.gate.weight', 5, value);
      const out = join(TMP, 'nan-router');
      for (const device of [['--cpu'], []]) {
        const line = await refused(['prune', dir, '--out', out, '--experts-per-layer', '3', ...device]);
        expect(line).toBe(
          `model-00002-of-00003.safetensors: weight "model.layers.0.block_sparse_moe.gate.weight" (layer 0) holds 1 ${word} value(s) (the first at element 5), ` +
            "so stage 1's router distances would be NaN; the checkpoint is damaged or was converted with overflowing values: download or convert it again [NonFinite]",
        );
        expect([existsSync(out), existsSync(`${out}.partial`)]).toEqual([false, false]);
      }
    }
    expect(nonFiniteValues(new Float32Array([1, Number.POSITIVE_INFINITY, Number.NaN]))).toEqual({ index: 1, value: 'Inf', count: 2 });
    expect(nonFiniteValues(new Float32Array([1, -2, 0]))).toBeNull();
  });
});

describe('weights holding NaN: stage 2 (Wanda) on calibration statistics', () => {
  it('names the tensor instead of deriving masks from NaN scores; nothing is written', async () => {
    const dir = copyOf(MIXTRAL);
    pokeF32(dir, 'model-00002-of-00003.safetensors', 'model.layers.0.self_attn.v_proj.weight', 2, Number.NaN);
    const calib = join(TMP, 'calib-nan.txt');
    writeFileSync(calib, readFileSync(TEXT, 'utf8').slice(0, 20_000));
    const out = join(TMP, 'nan-stage2');
    const line = await refused(['prune', dir, '--out', out, '--sparsity', '0.5', '--calib-text', calib, '--calib-samples', '2', '--calib-seq-len', '16']);
    expect(line).toMatch(/^model-00002-of-00003\.safetensors: weight "model\.layers\.0\.self_attn\.v_proj\.weight" \(layer 0\) holds 1 NaN value\(s\) \(the first at element 2\), so the calibration statistics of "model\.layers\.0\./);
    expect([existsSync(out), existsSync(`${out}.partial`)]).toEqual([false, false]);
  });
});

describe('a shard changed on disk during a job', () => {
  it('a read after the file changed (size or modification time) is refused, naming the shard', async () => {
    const dir = copyOf(MIXTRAL);
    const name = 'model-00002-of-00003.safetensors';
    const src = await NodeFileSource.open(join(dir, name), name);
    expect((await src.read(0, 8)).byteLength).toBe(8);
    const later = new Date(Date.now() + 60_000);
    utimesSync(join(dir, name), later, later);
    const e = await rejection(src.read(0, 8));
    expect([e.code, e.file]).toEqual(['FileChanged', name]);
    expect(e.message).toContain('modification time differs');
    writeFileSync(join(dir, name), readFileSync(join(dir, name)).subarray(0, 100));
    expect((await rejection(src.read(0, 8))).message).toMatch(/39760 → 100 bytes/);
  });

  it('prune stops with the shard named when it changes mid-job, and leaves no output', async () => {
    const dir = copyOf(MIXTRAL);
    const out = join(TMP, 'changed-out');
    const shard = join(dir, 'model-00003-of-00003.safetensors');
    let touched = false;
    // The first progress line comes after the job opened every shard's header; the export reads the shard later.
    const line = await refused(['prune', dir, '--out', out, '--experts-per-layer', '3', '--cpu'], (s) => {
      if (touched || !s.startsWith('  ')) return;
      touched = true;
      const later = new Date(Date.now() + 60_000);
      utimesSync(shard, later, later);
    });
    expect(touched).toBe(true);
    expect(line).toMatch(/^model-00003-of-00003\.safetensors: the file changed on disk while the job was using it/);
    expect([existsSync(out), existsSync(`${out}.partial`)]).toEqual([false, false]);
  });
});

describe('an export that did not finish', () => {
  it('a folder still holding EXPORT_INCOMPLETE is refused by inspect, eval and prune', async () => {
    const dir = copyOf(MIXTRAL);
    writeFileSync(join(dir, 'EXPORT_INCOMPLETE'), 'unfinished');
    for (const args of [['inspect', dir], ['eval', dir, '--text', TEXT, '--seq-len', '16', '--cpu'], ['prune', dir, '--out', join(TMP, 'from-partial'), '--experts-per-layer', '2', '--cpu']])
      expect(await refused(args)).toMatch(/^EXPORT_INCOMPLETE: this folder is an export that did not finish .*delete it and export again/);
  });

  it('a finished CLI export holds no marker; its .partial while running does', async () => {
    const out = join(TMP, 'finished');
    let markerSeen = false;
    const io = collectIo({
      onErr: (s) => {
        if (s.includes('export')) markerSeen ||= existsSync(join(`${out}.partial`, 'EXPORT_INCOMPLETE'));
      },
    });
    expect(await main(['prune', MIXTRAL, '--out', out, '--experts-per-layer', '3', '--cpu'], io), io.err()).toBe(0);
    expect(markerSeen).toBe(true);
    expect(existsSync(join(out, 'EXPORT_INCOMPLETE'))).toBe(false);
    const check = collectIo();
    expect(await main(['inspect', out], check), check.err()).toBe(0);
  });
});
