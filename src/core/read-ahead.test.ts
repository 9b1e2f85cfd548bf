import { describe, expect, it } from 'vitest';
import { readAhead } from './read-ahead.ts';

/** A source that logs when each item is requested and produced, and when it is closed. */
async function* logged(n: number, log: string[], failAt = -1): AsyncGenerator<number> {
  try {
    for (let i = 0; i < n; i++) {
      log.push(`read ${i}`);
      await new Promise((r) => setTimeout(r, 1));
      if (i === failAt) throw new Error(`read ${i} failed`);
      yield i;
    }
  } finally {
    log.push('closed');
  }
}

const tick = (ms = 3) => new Promise((r) => setTimeout(r, ms));

describe('readAhead: the next items are read while the caller works on this one', () => {
  it('keeps `depth` items requested ahead and yields every item once, in source order', async () => {
    for (const depth of [1, 2, 3, 7]) {
      // An iterator that counts requests as they are made (a generator would only see them one at a time).
      let requested = 0;
      let closed = false;
      const src: AsyncIterable<number> = {
        [Symbol.asyncIterator]: () => ({
          next: () => {
            const i = requested++;
            return new Promise<IteratorResult<number>>((r) => setTimeout(() => r(i < 6 ? { value: i, done: false } : { value: undefined, done: true }), 1));
          },
          return: async () => ((closed = true), { value: undefined, done: true as const }),
        }),
      };
      const got: number[] = [];
      for await (const i of readAhead(src, depth)) {
        // While item i is handled, items up to i + depth have been requested, never more.
        expect(requested).toBe(i + 1 + depth);
        await tick();
        got.push(i);
      }
      expect(got).toEqual([0, 1, 2, 3, 4, 5]);
      expect(closed).toBe(true);
    }
  });

  it('depth 1 interleaves as the writer relies on: item i+1 is read before the caller is done with item i', async () => {
    const log: string[] = [];
    for await (const i of readAhead(logged(3, log))) {
      await tick(5);
      log.push(`used ${i}`);
    }
    expect(log).toEqual(['read 0', 'read 1', 'used 0', 'read 2', 'used 1', 'closed', 'used 2']);
  });

  it('stopping early closes the source and reads nothing past the requests already in flight', async () => {
    const log: string[] = [];
    for await (const i of readAhead(logged(20, log), 3)) if (i === 2) break;
    expect(log.at(-1)).toBe('closed');
    // Items 0–2 were used; 3–5 were in flight when the caller stopped; nothing after.
    expect(log.filter((l) => l.startsWith('read'))).toEqual(['read 0', 'read 1', 'read 2', 'read 3', 'read 4', 'read 5']);
  });

  it('a cancel (the caller throwing) propagates, and the source is closed', async () => {
    const log: string[] = [];
    const ac = new AbortController();
    const run = async () => {
      for await (const i of readAhead(logged(20, log), 2)) {
        if (i === 1) ac.abort();
        ac.signal.throwIfAborted();
      }
    };
    await expect(run()).rejects.toThrow();
    expect(log.at(-1)).toBe('closed');
    expect(log).not.toContain('read 5');
  });

  it('a failed read surfaces at its place in the order, after the items before it, with no unhandled rejection', async () => {
    const log: string[] = [];
    const got: number[] = [];
    const run = async () => {
      for await (const i of readAhead(logged(10, log, 3), 4)) got.push(i);
    };
    await expect(run()).rejects.toThrow('read 3 failed');
    expect(got).toEqual([0, 1, 2]);
    expect(log).not.toContain('read 4');
  });

  it('rejects a depth that is not a positive integer', async () => {
    await expect(readAhead(logged(1, []), 0).next()).rejects.toThrow(/positive integer/);
  });
});
