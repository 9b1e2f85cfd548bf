import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { MoePruneError } from '../../core/errors.ts';
import { MemorySource } from '../bytes.ts';
import { openSafetensors } from './reader.ts';
import { notSafetensorsReason } from './sniff.ts';

const CASES = fileURLToPath(new URL('../../../fixtures/safetensors-cases', import.meta.url));
const bytes = (...b: number[]): Uint8Array => new Uint8Array([...b, ...new Array(Math.max(0, 16 - b.length)).fill(7)]);
const ascii = (s: string): Uint8Array => new TextEncoder().encode(s);

describe('a file that is not safetensors is called what it is', () => {
  it('names the common formats from their first bytes', () => {
    expect(notSafetensorsReason(bytes(0x50, 0x4b, 0x03, 0x04, 0x14, 0x00, 0x00, 0x00))).toMatch(/^it is a zip archive \(PyTorch/);
    expect(notSafetensorsReason(bytes(0x80, 0x02, 0x7d, 0x71, 0x00, 0x28, 0x58, 0x05))).toMatch(/^it is a Python pickle/);
    expect(notSafetensorsReason(ascii('GGUF\x03\x00\x00\x00rest'))).toMatch(/^it is a GGUF file/);
    expect(notSafetensorsReason(bytes(0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a))).toMatch(/^it is an HDF5 file/);
    expect(notSafetensorsReason(bytes(0x1f, 0x8b, 0x08, 0x00, 0x12, 0x34, 0x56, 0x78))).toMatch(/^it is gzip-compressed/);
    expect(notSafetensorsReason(ascii('{\n  "architectures": ["MixtralForCausalLM"]'))).toMatch(/^it is a JSON text file/);
    expect(notSafetensorsReason(ascii('\ufeff{"a": 1}'))).toMatch(/^it is a JSON text file/);
    expect(notSafetensorsReason(ascii('EMMA\n\nBy Jane Austen'))).toMatch(/^it is a text file/);
    expect(notSafetensorsReason(bytes(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f))).toMatch(/^its first 8 bytes are not the header length/);
  });

  it('leaves every possible safetensors file to the reader: bytes 4..7 of the length are zero', () => {
    expect(notSafetensorsReason(bytes(0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00))).toBeNull();
    expect(notSafetensorsReason(bytes(0x01, 0xe1, 0xf5, 0x05, 0x00, 0x00, 0x00, 0x00))).toBeNull(); // over the limit: HeaderTooLarge
    expect(notSafetensorsReason(new Uint8Array(5))).toBeNull(); // too short: HeaderTooSmall
    // Not one of the reference reader's accept/reject cases is taken for another format, so their verdicts stand.
    const files = readdirSync(CASES).filter((f) => f.endsWith('.safetensors'));
    expect(files.length).toBeGreaterThan(40);
    for (const f of files) expect([f, notSafetensorsReason(readFileSync(join(CASES, f)).subarray(0, 8))]).toEqual([f, null]);
  });

  it('the reader says so before any header arithmetic, naming the file', async () => {
    const zip = new MemorySource('pytorch_model.safetensors', bytes(0x50, 0x4b, 0x03, 0x04, 0x14, 0x00, 0x00, 0x00));
    const e = await openSafetensors(zip).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(MoePruneError);
    expect((e as MoePruneError).code).toBe('NotSafetensors');
    expect((e as MoePruneError).message).toBe(
      'pytorch_model.safetensors: not a safetensors file: it is a zip archive (PyTorch saves .bin and .pt checkpoints as one); convert the checkpoint to safetensors first [NotSafetensors]',
    );
    expect((e as MoePruneError).message).not.toMatch(/header length|exceeds/);
  });
});
