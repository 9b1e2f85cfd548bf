import { MoePruneError, throwIfAborted } from '../core/errors.ts';

/**
 * Random access to the bytes of one file. Implemented over a browser Blob/File, over a file on disk (Node),
 * over chunks stored in IndexedDB, or over memory. Nothing in the core reads a whole file at once.
 */
export interface ByteSource {
  /** File name as the user knows it (relative path inside the checkpoint folder). */
  readonly name: string;
  readonly size: number;
  /** Exactly `length` bytes starting at `offset`; throws TruncatedFile if the source is shorter. */
  read(offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array>;
  /** The `into.byteLength` bytes at `offset` written into `into` (any memory, shared included): no array of its own. */
  readInto?(offset: number, into: Uint8Array, signal?: AbortSignal): Promise<void>;
}

/** A checkpoint is a set of named files (shards, config, index, tokenizer). */
export interface FileSet {
  /** Base names (relative paths) of every file. */
  names(): string[];
  get(name: string): ByteSource | undefined;
}

export function requireFile(files: FileSet, name: string): ByteSource {
  const f = files.get(name);
  if (!f) throw new MoePruneError('MissingFile', `the checkpoint has no file "${name}"`, name);
  return f;
}

export async function readText(src: ByteSource, signal?: AbortSignal): Promise<string> {
  if (src.size > 256 * 1024 * 1024)
    throw new MoePruneError('InvalidArgument', `text file is ${src.size} bytes; refusing to read it whole`, src.name);
  return new TextDecoder('utf-8', { fatal: false }).decode(await src.read(0, src.size, signal));
}

export async function readJson<T = unknown>(src: ByteSource, signal?: AbortSignal): Promise<T> {
  const text = await readText(src, signal);
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw new MoePruneError('InvalidConfig', `not valid JSON (${(e as Error).message})`, src.name);
  }
}

/** Every ByteSource validates a request the same way: a safe, non-negative range inside the file. */
export function checkRange(name: string, size: number, offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0)
    throw new MoePruneError('InvalidArgument', `bad byte range ${offset}+${length}`, name);
  if (offset + length > size)
    throw new MoePruneError('TruncatedFile', `needs bytes ${offset}..${offset + length} but the file has ${size}`, name);
}

/** Bytes held in memory (tests, small generated files). */
export class MemorySource implements ByteSource {
  constructor(
    readonly name: string,
    private readonly bytes: Uint8Array,
  ) {}
  get size(): number {
    return this.bytes.byteLength;
  }
  async read(offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array> {
    throwIfAborted(signal);
    checkRange(this.name, this.size, offset, length);
    return this.bytes.slice(offset, offset + length);
  }
}

/**
 * The error for a dropped File the browser no longer reads: Chromium raises NotReadableError once the file on disk was
 * modified, moved or deleted after the drop (the File keeps the old size and time and refuses to serve other bytes).
 */
export function unreadableFile(e: unknown, name: string): MoePruneError {
  if (e instanceof MoePruneError) return e;
  const why = (e as Error | undefined)?.message ?? String(e);
  if ((e as Error | undefined)?.name === 'NotReadableError')
    return new MoePruneError('FileChanged', `the file changed on disk (or was moved) after it was dropped, so the browser no longer reads it (${why}); drop the checkpoint again`, name, { cause: e });
  return new MoePruneError('IoError', `cannot read the file any more (${why}); drop it again`, name, { cause: e });
}

/** A browser Blob or File, read with Blob.slice so that only the requested range is ever loaded. */
export class BlobSource implements ByteSource {
  constructor(
    readonly name: string,
    private readonly blob: Blob,
  ) {}
  get size(): number {
    return this.blob.size;
  }
  async read(offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array> {
    throwIfAborted(signal);
    checkRange(this.name, this.size, offset, length);
    try {
      return new Uint8Array(await this.blob.slice(offset, offset + length).arrayBuffer());
    } catch (e) {
      // A File whose backing disk file changed or vanished after the drop fails here (NotReadableError).
      throw unreadableFile(e, this.name);
    }
  }
}

export class MapFileSet implements FileSet {
  private readonly map = new Map<string, ByteSource>();
  constructor(sources: Iterable<ByteSource>) {
    for (const s of sources) this.map.set(s.name, s);
  }
  names(): string[] {
    return [...this.map.keys()].sort();
  }
  get(name: string): ByteSource | undefined {
    return this.map.get(name);
  }
}
