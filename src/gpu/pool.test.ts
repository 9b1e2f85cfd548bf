import { expect, it } from 'vitest';
import { describeGpu } from '../../tests/gpu-harness.ts';
import { BufferPool, bucketSize, readBuffer, STORAGE_USAGE } from './pool.ts';

it('buckets: powers of two up to 1 MiB, then eighths of the power of two (≤12.5 % waste)', () => {
  expect(bucketSize(1)).toBe(256);
  expect(bucketSize(257)).toBe(512);
  expect(bucketSize(1 << 20)).toBe(1 << 20);
  expect(bucketSize((1 << 20) + 1)).toBe((1 << 20) + (1 << 17));
  expect(bucketSize(300_000_000)).toBe(301_989_888); // 2^29 / 16 steps
  for (const n of [1_234_567, 99_999_999, 700_000_001]) {
    expect(bucketSize(n)).toBeGreaterThanOrEqual(n);
    expect(bucketSize(n) / n).toBeLessThanOrEqual(1.125);
  }
});

describeGpu('buffer pool', (gpu) => {
  it('attributes a validation error to the right buffer when acquires run concurrently', async () => {
    const { device } = gpu();
    const pool = new BufferPool(device, gpu().limits.maxBufferSize);
    const BAD = 0x0001 /* MAP_READ */ | 0x0080; /* STORAGE: an invalid combination */
    const results = await Promise.allSettled([
      pool.acquire(4096, STORAGE_USAGE, 'good-1'),
      pool.acquire(4096, BAD, 'bad'),
      pool.acquire(8192, STORAGE_USAGE, 'good-2'),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((results[1] as PromiseRejectedResult).reason.message).toMatch(/bad buffer/);
  });

  it('reuses released buffers of the same bucket and usage, and tracks live and peak bytes', async () => {
    const { device } = gpu();
    const pool = new BufferPool(device, gpu().limits.maxBufferSize);
    const a = await pool.acquire(1000, STORAGE_USAGE);
    const b = await pool.acquire(3000, STORAGE_USAGE);
    expect(a.size).toBe(1024);
    expect(pool.stats()).toMatchObject({ bytesLive: 1024 + 4096, bytesInUse: 1024 + 4096, peakBytes: 5120, allocations: 2 });
    pool.release(a);
    expect(pool.stats().bytesInUse).toBe(4096);
    const c = await pool.acquire(900, STORAGE_USAGE);
    expect(c).toBe(a);
    const d = await pool.acquire(900, STORAGE_USAGE | 0x0010 /* INDEX */);
    expect(d).not.toBe(a);
    expect(pool.stats()).toMatchObject({ reuses: 1, allocations: 3, peakBytes: 6144 });
    pool.release(b);
    pool.release(c);
    pool.release(d);
    pool.trim();
    expect(pool.stats()).toMatchObject({ bytesLive: 0, bytesInUse: 0, peakBytes: 6144, buffersLive: 0 });
    pool.resetPeak();
    expect(pool.stats().peakBytes).toBe(0);
  });

  it('refuses a buffer larger than maxBufferSize with GpuOutOfMemory', async () => {
    const pool = new BufferPool(gpu().device, 4096);
    await expect(pool.acquire(4097, STORAGE_USAGE, 'huge')).rejects.toMatchObject({ code: 'GpuOutOfMemory' });
  });

  it('readBuffer returns exactly the requested bytes, also at an offset and with an odd length', async () => {
    const ctx = gpu();
    const buf = await ctx.pool.acquire(64, STORAGE_USAGE);
    const data = new Uint8Array(64).map((_, i) => i * 3);
    ctx.device.queue.writeBuffer(buf, 0, data);
    expect([...(await readBuffer(ctx, buf, 7, 8))]).toEqual([...data.subarray(8, 15)]);
    expect(await readBuffer(ctx, buf, 0)).toHaveLength(0);
    await expect(readBuffer(ctx, buf, 8, 2)).rejects.toMatchObject({ code: 'InvalidArgument' });
    ctx.pool.release(buf);
  });
});
