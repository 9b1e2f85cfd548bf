import { open, readdir, stat, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join, relative, sep } from 'node:path';
import { MoePruneError, throwIfAborted } from '../core/errors.ts';
import { checkRange, MapFileSet, type ByteSource, type FileSet } from '../formats/bytes.ts';

/** Largest single positional read; bigger requests are assembled from pieces of this size. */
const MAX_READ_PIECE = 64 << 20;

function ioError(e: unknown, name: string, what: string): MoePruneError {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOENT') return new MoePruneError('MissingFile', `${what}: the file does not exist`, name, { cause: e });
  return new MoePruneError('IoError', `${what}: ${(e as Error).message}`, name, { cause: e });
}

/** Reads come in bursts (a chunk's members, an export's pieces): a descriptor idle this long is closed. */
const IDLE_CLOSE_MS = 100;

/**
 * A file on disk read by position. Overlapping and closely following reads share one descriptor, closed once no read
 * has come for a moment, so callers never close anything and a checkpoint's many shards never hold many descriptors;
 * only the requested range is read.
 */
export class NodeFileSource implements ByteSource {
  private handle: Promise<FileHandle> | undefined;
  private users = 0;
  private idle: ReturnType<typeof setTimeout> | undefined;

  constructor(
    readonly name: string,
    readonly path: string,
    readonly size: number,
    /** Modification time when opened; a read that finds another (or another size) refuses the changed file. */
    readonly mtimeMs?: number,
  ) {}

  static async open(path: string, name = basename(path)): Promise<NodeFileSource> {
    try {
      const s = await stat(path);
      if (!s.isFile()) throw new MoePruneError('InvalidArgument', 'not a regular file', name);
      return new NodeFileSource(name, path, s.size, s.mtimeMs);
    } catch (e) {
      if (e instanceof MoePruneError) throw e;
      throw ioError(e, name, 'cannot open');
    }
  }

  async read(offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array> {
    const out = new Uint8Array(length);
    await this.readInto(offset, out, signal);
    return out;
  }

  /** Straight into the caller's array (shared memory included): the CLI reads expert chunks into the CPU kernel's memory. */
  async readInto(offset: number, out: Uint8Array, signal?: AbortSignal): Promise<void> {
    throwIfAborted(signal);
    const length = out.byteLength;
    checkRange(this.name, this.size, offset, length);
    if (length === 0) return;
    const fh = await this.acquire();
    try {
      // Offsets come from the header read when the job opened the file: bytes of a rewritten (or replaced) file
      // would be read as the wrong tensors (or garbage) without any error, so a changed size or time stops the job.
      const now = await stat(this.path);
      if (now.size !== this.size || (this.mtimeMs !== undefined && now.mtimeMs !== this.mtimeMs))
        throw new MoePruneError(
          'FileChanged',
          `the file changed on disk while the job was using it (${now.size !== this.size ? `${this.size} → ${now.size} bytes` : 'modification time differs'}); ` +
            'leave the checkpoint unchanged while a job runs, then start it again',
          this.name,
        );
      let done = 0;
      while (done < length) {
        throwIfAborted(signal);
        const want = Math.min(MAX_READ_PIECE, length - done);
        const { bytesRead } = await fh.read(out, done, want, offset + done);
        // The file shrank after we measured it.
        if (bytesRead === 0)
          throw new MoePruneError('TruncatedFile', `ended at byte ${offset + done}, expected ${this.size} bytes (changed on disk?)`, this.name);
        done += bytesRead;
      }
    } catch (e) {
      if (e instanceof MoePruneError) throw e;
      throw ioError(e, this.name, `cannot read bytes ${offset}..${offset + length}`);
    } finally {
      this.release();
    }
  }

  private async acquire(): Promise<FileHandle> {
    clearTimeout(this.idle);
    this.idle = undefined;
    this.users++;
    const h = (this.handle ??= open(this.path, 'r'));
    try {
      return await h;
    } catch (e) {
      this.users--;
      if (this.handle === h) this.handle = undefined;
      throw ioError(e, this.name, 'cannot open');
    }
  }

  private release(): void {
    if (--this.users > 0) return;
    const h = this.handle;
    this.idle = setTimeout(() => {
      if (this.users > 0 || this.handle !== h) return;
      this.handle = undefined;
      void h?.then((fh) => fh.close()).catch(() => undefined);
    }, IDLE_CLOSE_MS);
    // A descriptor waiting to be closed never keeps the process alive.
    this.idle.unref?.();
  }
}

/** Regular files under `dir` (following symlinks, as Hub cache snapshots are links), skipping dot-folders. */
async function listFiles(root: string, dir: string, out: string[]): Promise<void> {
  const entries = await readdir(dir, { withFileTypes: true });
  for (const ent of entries) {
    const full = join(dir, ent.name);
    let s;
    try {
      s = await stat(full);
    } catch {
      continue; // dangling link
    }
    if (s.isDirectory()) {
      if (!ent.name.startsWith('.')) await listFiles(root, full, out);
    } else if (s.isFile()) out.push(relative(root, full).split(sep).join('/'));
  }
}

/**
 * The files of a checkpoint on disk. A directory gives every regular file inside (names relative to it);
 * a single .safetensors file gives just it, plus `config.json` beside it if present (or, failing that,
 * `<stem>_config.json`, as single-file test fixtures are stored), under the name `config.json`.
 */
export async function openNodeFileSet(path: string): Promise<FileSet> {
  let s;
  try {
    s = await stat(path);
  } catch (e) {
    throw ioError(e, path, 'cannot open the checkpoint');
  }
  if (s.isDirectory()) {
    const names: string[] = [];
    try {
      await listFiles(path, path, names);
    } catch (e) {
      throw ioError(e, path, 'cannot list the folder');
    }
    return new MapFileSet(await Promise.all(names.map((n) => NodeFileSource.open(join(path, n), n))));
  }
  if (!s.isFile()) throw new MoePruneError('InvalidArgument', 'is neither a folder nor a file', path);
  if (!path.endsWith('.safetensors'))
    throw new MoePruneError('InvalidArgument', 'give a checkpoint folder or a .safetensors file', path);
  const sources: ByteSource[] = [await NodeFileSource.open(path)];
  const dir = dirname(path);
  const stem = basename(path).slice(0, -'.safetensors'.length);
  for (const cfg of [join(dir, 'config.json'), join(dir, `${stem}_config.json`)]) {
    const src = await NodeFileSource.open(cfg, 'config.json').catch(() => undefined);
    if (src) {
      sources.push(src);
      break;
    }
  }
  return new MapFileSet(sources);
}
