import { expect, it } from 'vitest';
import { describeGpu } from '../../../tests/gpu-harness.ts';
import { readBuffer, STORAGE_USAGE } from '../pool.ts';
import { copyReference, copyWords } from './copy.ts';

describeGpu('copy kernel', (gpu) => {
  it('copies an awkward number of words and leaves the rest of the destination alone', async () => {
    const ctx = gpu();
    const words = 100_003;
    const src = new Uint32Array(words + 5);
    for (let i = 0; i < src.length; i++) src[i] = (i * 2654435761) >>> 0;
    const a = { buffer: await ctx.pool.acquire(src.byteLength, STORAGE_USAGE), byteLength: src.byteLength };
    const b = { buffer: await ctx.pool.acquire(src.byteLength, STORAGE_USAGE), byteLength: src.byteLength };
    ctx.device.queue.writeBuffer(a.buffer, 0, src);
    ctx.device.queue.writeBuffer(b.buffer, 0, new Uint32Array(src.length).fill(7));
    await copyWords(ctx, a, b, words);
    const got = new Uint32Array((await readBuffer(ctx, b.buffer, src.byteLength)).buffer);
    expect(Buffer.from(got.buffer, 0, words * 4).equals(Buffer.from(copyReference(src.subarray(0, words)).buffer))).toBe(true);
    expect([...got.subarray(words)]).toEqual([7, 7, 7, 7, 7]);
    ctx.pool.release(a.buffer);
    ctx.pool.release(b.buffer);
  });
});
