import { describe, expect, it } from 'vitest';
import { MemorySource } from '../bytes.ts';
import { MoePruneError } from '../../core/errors.ts';
import { openSafetensors } from './reader.ts';
import { buildHeader, MemorySink, once, writeSafetensors } from './writer.ts';

const enc = new TextEncoder();

/** A file from a raw header text (no padding added) and a data buffer. */
function raw(header: string | Uint8Array, data: Uint8Array = new Uint8Array(0), lengthOverride?: bigint): MemorySource {
  const h = typeof header === 'string' ? enc.encode(header) : header;
  const out = new Uint8Array(8 + h.byteLength + data.byteLength);
  new DataView(out.buffer).setBigUint64(0, lengthOverride ?? BigInt(h.byteLength), true);
  out.set(h, 8);
  out.set(data, 8 + h.byteLength);
  return new MemorySource('case.safetensors', out);
}

const t = (dtype: string, shape: unknown, off: unknown) => ({ dtype, shape, data_offsets: off });
const hdr = (o: Record<string, unknown>) => JSON.stringify(o);

async function code(src: MemorySource): Promise<string> {
  try {
    await openSafetensors(src);
    return 'accepted';
  } catch (e) {
    expect(e).toBeInstanceOf(MoePruneError);
    expect((e as MoePruneError).message).toContain('case.safetensors');
    return (e as MoePruneError).code;
  }
}

describe('safetensors reader: rejects what the reference rejects, naming file and rule', () => {
  const cases: Array<[string, MemorySource, string]> = [
    ['file shorter than 8 bytes', new MemorySource('case.safetensors', new Uint8Array(5)), 'HeaderTooSmall'],
    ['header length over 100,000,000', raw('{}', undefined, 100_000_001n), 'HeaderTooLarge'],
    ['header length past EOF', raw('{}', undefined, 50n), 'InvalidHeaderLength'],
    ['header not UTF-8', raw(new Uint8Array([0x7b, 0xff, 0xfe, 0x7d])), 'InvalidHeader'],
    ['header not JSON', raw('{"a": '), 'InvalidHeaderDeserialization'],
    ['trailing non-whitespace after JSON', raw('{} x'), 'InvalidHeaderDeserialization'],
    ['NUL padding', raw('{}\0\0\0\0\0\0'), 'InvalidHeaderDeserialization'],
    ['header is an array', raw('[]'), 'InvalidHeaderDeserialization'],
    ['unknown dtype', raw(hdr({ a: t('F128', [1], [0, 16]) }), new Uint8Array(16)), 'UnknownDtype'],
    ['negative dim', raw(hdr({ a: t('F32', [-1], [0, 4]) }), new Uint8Array(4)), 'InvalidShape'],
    ['fractional dim', raw(hdr({ a: t('F32', [1.5], [0, 4]) }), new Uint8Array(4)), 'InvalidShape'],
    ['missing data_offsets', raw(hdr({ a: { dtype: 'F32', shape: [1] } }), new Uint8Array(4)), 'InvalidHeaderDeserialization'],
    ['missing dtype', raw(hdr({ a: { shape: [1], data_offsets: [0, 4] } }), new Uint8Array(4)), 'InvalidHeaderDeserialization'],
    ['three offsets', raw(hdr({ a: t('F32', [1], [0, 4, 8]) }), new Uint8Array(4)), 'InvalidHeaderDeserialization'],
    ['gap between tensors', raw(hdr({ a: t('F32', [1], [0, 4]), b: t('F32', [1], [8, 12]) }), new Uint8Array(12)), 'InvalidOffset'],
    ['overlap', raw(hdr({ a: t('F32', [2], [0, 8]), b: t('F32', [1], [4, 8]) }), new Uint8Array(8)), 'InvalidOffset'],
    ['alias', raw(hdr({ a: t('F32', [1], [0, 4]), b: t('F32', [1], [0, 4]) }), new Uint8Array(4)), 'InvalidOffset'],
    ['first tensor not at 0', raw(hdr({ a: t('F32', [1], [4, 8]) }), new Uint8Array(8)), 'InvalidOffset'],
    ['end before begin', raw(hdr({ a: t('F32', [0], [4, 0]) }), new Uint8Array(4)), 'InvalidOffset'],
    ['bytes do not match shape x dtype', raw(hdr({ a: t('F32', [2], [0, 4]) }), new Uint8Array(4)), 'TensorInvalidInfo'],
    ['sub-byte dtype with odd count', raw(hdr({ a: t('F4', [3], [0, 2]) }), new Uint8Array(2)), 'MisalignedSlice'],
    ['trailing bytes after data', raw(hdr({ a: t('F32', [1], [0, 4]) }), new Uint8Array(5)), 'MetadataIncompleteBuffer'],
    ['truncated data', raw(hdr({ a: t('F32', [2], [0, 8]) }), new Uint8Array(4)), 'MetadataIncompleteBuffer'],
    ['metadata value not a string', raw(hdr({ __metadata__: { format: 1 } })), 'InvalidMetadata'],
    ['metadata not an object', raw(hdr({ __metadata__: 'pt' })), 'InvalidHeaderDeserialization'],
    ['duplicate names (same bytes)', raw('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', new Uint8Array(4)), 'DuplicateTensor'],
    ['overflowing shape', raw(hdr({ a: t('F64', [2 ** 40, 2 ** 30], [0, 8]) }), new Uint8Array(8)), 'ValidationOverflow'],
  ];
  for (const [why, src, expected] of cases) it(why, async () => expect(await code(src)).toBe(expected));
});

describe('safetensors reader: accepts what the reference accepts', () => {
  const ok: Array<[string, MemorySource]> = [
    ['unpadded header', raw(hdr({ a: t('F32', [1], [0, 4]) }), new Uint8Array(4))],
    ['leading and trailing whitespace', raw(' \r\n\t' + hdr({ a: t('F32', [1], [0, 4]) }) + ' \n', new Uint8Array(4))],
    ['extra field in a tensor entry', raw(hdr({ a: { ...t('F32', [1], [0, 4]), extra: [1, 2] } }), new Uint8Array(4))],
    ['empty header', raw('{}')],
    ['null metadata', raw(hdr({ __metadata__: null }))],
    ['zero-size and 0-rank tensors', raw(hdr({ z: t('F32', [0, 3], [0, 0]), s: t('F64', [], [0, 8]) }), new Uint8Array(8))],
    ['keys not in offset order', raw(hdr({ b: t('F32', [1], [4, 8]), a: t('F32', [1], [0, 4]) }), new Uint8Array(8))],
    ['sub-byte dtype with whole bytes', raw(hdr({ a: t('F4', [4], [0, 2]), b: t('F6_E2M3', [4], [2, 5]) }), new Uint8Array(5))],
  ];
  for (const [why, src] of ok) it(why, async () => expect(await code(src)).toBe('accepted'));
});

describe('safetensors reader: reads ranges on demand', () => {
  it('reads whole tensors, rows and chunks, and decodes bf16/f16 to f32', async () => {
    const f32 = new Float32Array([1, 2, 3, 4, 5, 6]);
    const bf16 = new Uint16Array([0x3f80, 0xc000, 0x4040, 0x0000]); // 1, -2, 3, 0
    const f16 = new Uint16Array([0x3c00, 0xc000]); // 1, -2
    const sink = new MemorySink();
    await writeSafetensors(sink, [
      { name: 'w', dtype: 'F32', shape: [3, 2], data: () => once(new Uint8Array(f32.buffer)) },
      { name: 'b', dtype: 'BF16', shape: [2, 2], data: () => once(new Uint8Array(bf16.buffer)) },
      { name: 'h', dtype: 'F16', shape: [2], data: () => once(new Uint8Array(f16.buffer)) },
    ]);
    const file = await openSafetensors(new MemorySource('m.safetensors', sink.bytes()));
    expect(file.metadata).toEqual({ format: 'pt' });
    expect([...(await file.readF32('w'))]).toEqual([1, 2, 3, 4, 5, 6]);
    expect([...(await file.readRowsF32('w', 1, 2))]).toEqual([3, 4, 5, 6]);
    expect([...(await file.readF32('b'))]).toEqual([1, -2, 3, 0]);
    expect([...(await file.readF32('h'))]).toEqual([1, -2]);
    const pieces: number[] = [];
    for await (const c of file.chunks('w', 8)) pieces.push(c.bytes.byteLength);
    expect(pieces).toEqual([8, 8, 8]);
    await expect(file.readRows('w', 2, 2)).rejects.toThrow(/out of range/);
    expect([...new Float32Array((await file.readRange('w', 8, 8)).slice().buffer)]).toEqual([3, 4]);
    await expect(file.readRange('w', 20, 8)).rejects.toThrow(/bytes 20..28 out of range/);
  });
});

describe('safetensors writer: official conventions', () => {
  it('pads the header with spaces to a multiple of 8 and orders by dtype width then name', () => {
    const { bytes, order } = buildHeader([
      { name: 'z', dtype: 'BF16', shape: [3] },
      { name: 'b', dtype: 'F32', shape: [1] },
      { name: 'a', dtype: 'BF16', shape: [1] },
      { name: 'i', dtype: 'I64', shape: [1] },
      { name: 'u', dtype: 'U8', shape: [1] },
    ]);
    expect(order).toEqual(['i', 'b', 'a', 'z', 'u']);
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect(n % 8).toBe(0);
    const text = new TextDecoder().decode(bytes.subarray(8));
    expect(text.startsWith('{"__metadata__":{"format":"pt"},"i":')).toBe(true);
    expect(text.trimEnd().endsWith('}')).toBe(true);
    expect(text.slice(text.trimEnd().length)).toMatch(/^ *$/);
  });
  it('fails when a tensor produces the wrong number of bytes', async () => {
    await expect(
      writeSafetensors(new MemorySink(), [{ name: 'a', dtype: 'F32', shape: [2], data: () => once(new Uint8Array(4)) }]),
    ).rejects.toThrow(/produced 4 bytes, expected 8/);
  });
});
