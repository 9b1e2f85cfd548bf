/**
 * Iterates `src` with its next `depth` items already requested while the caller handles the current one, so
 * reading what comes next (a file piece, an expert's parameter chunk) overlaps computing on or writing this one.
 * Items arrive in source order; at most `depth` wait in memory besides the caller's. When the caller stops early
 * (break, throw, cancel) the requests in flight finish or fail unobserved and the source is closed.
 */
export async function* readAhead<T>(src: AsyncIterable<T>, depth = 1): AsyncGenerator<T> {
  if (!(Number.isInteger(depth) && depth >= 1)) throw new RangeError(`read-ahead depth must be a positive integer, got ${depth}`);
  const it = src[Symbol.asyncIterator]();
  const pending: Array<Promise<IteratorResult<T>>> = [];
  let ended = false;
  const request = (): void => {
    if (ended) return;
    const p = it.next();
    // A failure of a read ahead surfaces when it is awaited, or is dropped when the caller stops early.
    p.catch(() => undefined);
    pending.push(p);
  };
  try {
    for (let i = 0; i < depth; i++) request();
    for (;;) {
      const r = await pending.shift()!;
      if (r.done) {
        ended = true;
        return;
      }
      request();
      yield r.value;
    }
  } finally {
    ended = true;
    await it.return?.()?.catch(() => undefined);
  }
}
