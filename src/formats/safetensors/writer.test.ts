import { describe, expect, it } from 'vitest';
import { rejection } from '../../../tests/errors.ts';
import { MemorySink, readAhead, writeSafetensors, type ByteSink } from './writer.ts';

/** A source that logs when each item is requested and produced. */
function logged(n: number, log: string[]): AsyncIterable<number> {
  return {
    async *[Symbol.asyncIterator]() {
      try {
        for (let i = 0; i < n; i++) {
          log.push(`read ${i}`);
          await new Promise((r) => setTimeout(r, 1));
          yield i;
        }
      } finally {
        log.push('closed');
      }
    },
  };
}

describe('safetensors writer: reads the next piece while writing this one', () => {
  it('readAhead requests item i+1 before the caller is done with item i, and closes the source on early exit', async () => {
    const log: string[] = [];
    for await (const i of readAhead(logged(3, log))) {
      await new Promise((r) => setTimeout(r, 5));
      log.push(`used ${i}`);
    }
    expect(log).toEqual(['read 0', 'read 1', 'used 0', 'read 2', 'used 1', 'closed', 'used 2']);
    const early: string[] = [];
    for await (const i of readAhead(logged(5, early))) if (i === 1) break;
    expect(early.at(-1)).toBe('closed');
    expect(early).not.toContain('read 3');
  });

  it('a failing read ahead surfaces as the error of the write, not as an unhandled rejection', async () => {
    const failing = async function* (): AsyncGenerator<Uint8Array> {
      yield new Uint8Array(4);
      throw new Error('disk went away');
    };
    await expect(writeSafetensors(new MemorySink(), [{ name: 'a', dtype: 'F32', shape: [2], data: failing }])).rejects.toThrow(/disk went away/);
  });

  it('writes each piece while the next is read, and still checks every tensor size', async () => {
    const events: string[] = [];
    const sink: ByteSink = {
      async write(b) {
        events.push(`write ${b.byteLength}`);
        await new Promise((r) => setTimeout(r, 2));
      },
      async close() {},
    };
    const pieces = (tag: string, sizes: number[]) =>
      async function* (): AsyncGenerator<Uint8Array> {
        for (const n of sizes) {
          events.push(`read ${tag}${n}`);
          yield new Uint8Array(n);
        }
      };
    await writeSafetensors(sink, [
      { name: 'a', dtype: 'U8', shape: [3], data: pieces('a', [1, 2]) },
      { name: 'b', dtype: 'U8', shape: [4], data: pieces('b', [4]) },
    ]);
    // The first piece of b is read before the last piece of a is written: reads run ahead across tensors.
    expect(events.indexOf('read b4')).toBeLessThan(events.lastIndexOf('write 2'));
    const tooLong = await rejection(writeSafetensors(new MemorySink(), [{ name: 'a', dtype: 'U8', shape: [3], data: pieces('x', [2, 2]) }], { file: 'x.safetensors' }));
    expect(tooLong.message).toMatch(/^x\.safetensors: tensor "a" produced 4 bytes, expected 3/);
    expect(tooLong.file).toBe('x.safetensors');
    const tooShort = await rejection(writeSafetensors(new MemorySink(), [{ name: 'a', dtype: 'U8', shape: [3], data: pieces('y', [2]) }]));
    expect(tooShort.message).toMatch(/tensor "a" produced 2 bytes, expected 3/);
    // A tensor that yields nothing at all is caught too, wherever it sits in the file.
    const silent = await rejection(
      writeSafetensors(new MemorySink(), [
        { name: 'a', dtype: 'U8', shape: [1], data: pieces('a', []) },
        { name: 'b', dtype: 'U8', shape: [1], data: pieces('b', [1]) },
      ]),
    );
    expect(silent.message).toMatch(/tensor "a" produced 0 bytes, expected 1/);
    const last = await rejection(writeSafetensors(new MemorySink(), [{ name: 'z', dtype: 'U8', shape: [1], data: pieces('z', []) }]));
    expect(last.message).toMatch(/tensor "z" produced 0 bytes, expected 1/);
    // Empty tensors produce nothing and are fine.
    await writeSafetensors(new MemorySink(), [{ name: 'e', dtype: 'U8', shape: [0], data: pieces('e', []) }, { name: 'f', dtype: 'U8', shape: [1], data: pieces('f', [1]) }]);
  });
});
