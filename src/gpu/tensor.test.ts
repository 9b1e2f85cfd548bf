import { expect, it } from 'vitest';
import { describeGpu } from '../../tests/gpu-harness.ts';
import { MemorySource } from '../formats/bytes.ts';
import { planParts, readTensor, releaseTensor, rowLayout, uploadTensor } from './tensor.ts';

it('plans parts along dim 0 that never exceed the byte limit', () => {
  expect(planParts(10, 100, 350)).toEqual([
    { rowStart: 0, rows: 3 },
    { rowStart: 3, rows: 3 },
    { rowStart: 6, rows: 3 },
    { rowStart: 9, rows: 1 },
  ]);
  expect(planParts(4, 100, 1000)).toEqual([{ rowStart: 0, rows: 4 }]);
  expect(planParts(0, 100, 1000)).toEqual([{ rowStart: 0, rows: 0 }]);
  expect(() => planParts(2, 2000, 1000, 'w.safetensors')).toThrow(/one row is 2000 bytes.*\[InvalidShape\]/);
});

it('row layout of matrices, vectors and scalars', () => {
  expect(rowLayout('BF16', [3, 5, 7])).toEqual({ rows: 3, rowBytes: 70 });
  expect(rowLayout('F32', [9])).toEqual({ rows: 9, rowBytes: 4 });
  expect(rowLayout('F32', [])).toEqual({ rows: 1, rowBytes: 4 });
  expect(() => rowLayout('F4', [2, 3])).toThrow(/UnsupportedDtype/);
});

describeGpu('uploadTensor', (gpu) => {
  it('splits into parts under an artificially small limit and round-trips the bytes', async () => {
    const ctx = gpu();
    const shape = [37, 1001];
    const bytes = new Uint8Array(37 * 1001 * 2).map((_, i) => (i * 31 + 7) & 0xff);
    const t = await uploadTensor(ctx, bytes, 'BF16', shape, { maxBindingBytes: 8 * 2002 });
    expect(t.parts.map((p) => [p.rowStart, p.rows])).toEqual([
      [0, 8],
      [8, 8],
      [16, 8],
      [24, 8],
      [32, 5],
    ]);
    expect(t.parts[4]!.byteLength).toBe(5 * 2002);
    expect(Buffer.from(await readTensor(ctx, t)).equals(Buffer.from(bytes))).toBe(true);
    releaseTensor(ctx, t);
  });

  it('streams from a ByteSource at an offset and reports progress', async () => {
    const ctx = gpu();
    const file = new Uint8Array(5000).map((_, i) => i % 251);
    const seen: number[] = [];
    const t = await uploadTensor(ctx, { source: new MemorySource('model.safetensors', file), offset: 123 }, 'F32', [3, 7], {
      onProgress: (p) => seen.push(p.done),
    });
    expect(Buffer.from(await readTensor(ctx, t)).equals(Buffer.from(file.subarray(123, 123 + 84)))).toBe(true);
    expect(seen.at(-1)).toBe(84);
    releaseTensor(ctx, t);
  });

  it('rejects a byte count that does not match dtype and shape', async () => {
    await expect(uploadTensor(gpu(), new Uint8Array(10), 'F32', [3], { name: 'x.safetensors' })).rejects.toThrow(
      /x\.safetensors: F32\[3\] needs 12 bytes but 10 were given/,
    );
  });

  it('honours an abort signal between chunks', async () => {
    const ac = new AbortController();
    ac.abort();
    await expect(uploadTensor(gpu(), new Uint8Array(16), 'F32', [4], { signal: ac.signal })).rejects.toMatchObject({ code: 'Cancelled' });
  });
});
