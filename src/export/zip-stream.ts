/**
 * A streaming ZIP writer, entries stored uncompressed (safetensors do not compress, and storing keeps the archive a
 * byte-for-byte carrier of what the export wrote). One pass, nothing held back: each entry's size and CRC-32 are not
 * known when its header goes out, so they follow its data in a data descriptor (general-purpose flag bit 3) and are
 * repeated in the central directory, which readers use. Every size and offset is ZIP64 (shards and whole checkpoints
 * pass 4 GiB), always, so there is one layout to get right. Layout: APPNOTE.TXT 6.3 sections 4.3 and 4.5.3.
 */
import { MoePruneError } from '../core/errors.ts';
import type { ByteSink } from '../formats/safetensors/writer.ts';

/** Where the archive's bytes go, in order. */
export interface ArchiveSink {
  write(bytes: Uint8Array): Promise<void>;
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** Continues a CRC-32 (the ZIP / zlib polynomial) over `bytes`; start with 0. */
export function crc32(bytes: Uint8Array, crc = 0): number {
  let c = ~crc >>> 0;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

const VERSION = 45; // 4.5: ZIP64
const FLAGS = 0x0008 | 0x0800; // sizes in a data descriptor; names are UTF-8
const U32_MAX = 0xffffffff;

/** MS-DOS time and date fields (local time, 2-second steps, years from 1980). */
function dosDateTime(d: Date): { time: number; date: number } {
  const year = Math.min(Math.max(d.getFullYear(), 1980), 2107);
  return {
    time: (d.getHours() << 11) | (d.getMinutes() << 5) | (d.getSeconds() >> 1),
    date: ((year - 1980) << 9) | ((d.getMonth() + 1) << 5) | d.getDate(),
  };
}

class Bytes {
  readonly buf: Uint8Array;
  private readonly view: DataView;
  private at = 0;
  constructor(size: number) {
    this.buf = new Uint8Array(size);
    this.view = new DataView(this.buf.buffer);
  }
  u16(v: number): this {
    this.view.setUint16(this.at, v, true);
    this.at += 2;
    return this;
  }
  u32(v: number): this {
    this.view.setUint32(this.at, v >>> 0, true);
    this.at += 4;
    return this;
  }
  u64(v: number): this {
    this.view.setBigUint64(this.at, BigInt(v), true);
    this.at += 8;
    return this;
  }
  raw(b: Uint8Array): this {
    this.buf.set(b, this.at);
    this.at += b.length;
    return this;
  }
}

interface Entry {
  readonly name: Uint8Array;
  readonly offset: number;
  size: number;
  crc: number;
}

/** One archive: entries are written one after another (open the next only after closing the last). */
export class ZipWriter {
  private readonly entries: Entry[] = [];
  private readonly names = new Set<string>();
  private offset = 0;
  private open: Entry | null = null;
  private finished = false;
  private readonly stamp: { time: number; date: number };

  constructor(
    private readonly sink: ArchiveSink,
    modified: Date = new Date(),
  ) {
    this.stamp = dosDateTime(modified);
  }

  /** Bytes written so far. */
  get bytes(): number {
    return this.offset;
  }

  /** The entries closed so far, with their sizes: what the archive holds. */
  get files(): Array<{ name: string; bytes: number }> {
    const dec = new TextDecoder();
    return this.entries.filter((e) => e !== this.open).map((e) => ({ name: dec.decode(e.name), bytes: e.size }));
  }

  private async emit(b: Uint8Array): Promise<void> {
    await this.sink.write(b);
    this.offset += b.length;
  }

  /** Starts entry `name` (a relative path with `/` separators) and returns the sink for its bytes. */
  async add(name: string): Promise<ByteSink> {
    if (this.finished) throw new MoePruneError('InvalidArgument', 'the archive is already finished', name);
    if (this.open) throw new MoePruneError('InvalidArgument', 'the previous archive entry is still open', name);
    if (!name || name.startsWith('/') || name.split('/').some((p) => p === '..' || p === '')) throw new MoePruneError('InvalidArgument', 'not a relative file path', name);
    if (this.names.has(name)) throw new MoePruneError('InvalidArgument', 'the archive already holds this file', name);
    this.names.add(name);
    const encoded = new TextEncoder().encode(name);
    const entry: Entry = { name: encoded, offset: this.offset, size: 0, crc: 0 };
    this.entries.push(entry);
    this.open = entry;
    // Local header: sizes say "see ZIP64 extra", whose zeros (like CRC-32 here) are replaced by the data descriptor.
    const h = new Bytes(30 + encoded.length + 20)
      .u32(0x04034b50)
      .u16(VERSION)
      .u16(FLAGS)
      .u16(0) // stored
      .u16(this.stamp.time)
      .u16(this.stamp.date)
      .u32(0)
      .u32(U32_MAX)
      .u32(U32_MAX)
      .u16(encoded.length)
      .u16(20)
      .raw(encoded)
      .u16(0x0001)
      .u16(16)
      .u64(0)
      .u64(0);
    await this.emit(h.buf);
    let closed = false;
    return {
      write: async (bytes) => {
        if (closed) throw new MoePruneError('InvalidArgument', 'write after close', name);
        entry.crc = crc32(bytes, entry.crc);
        entry.size += bytes.length;
        await this.emit(bytes);
      },
      close: async () => {
        if (closed) return;
        closed = true;
        const d = new Bytes(24).u32(0x08074b50).u32(entry.crc).u64(entry.size).u64(entry.size);
        await this.emit(d.buf);
        this.open = null;
      },
    };
  }

  /** Writes the central directory and the ZIP64 end records: only now is the archive readable. */
  async finish(): Promise<void> {
    if (this.open) throw new MoePruneError('InvalidArgument', 'an archive entry is still open', new TextDecoder().decode(this.open.name));
    if (this.finished) return;
    this.finished = true;
    const start = this.offset;
    for (const e of this.entries) {
      const c = new Bytes(46 + e.name.length + 28)
        .u32(0x02014b50)
        .u16((3 << 8) | VERSION) // made by: Unix, so the mode in the external attributes is read
        .u16(VERSION)
        .u16(FLAGS)
        .u16(0)
        .u16(this.stamp.time)
        .u16(this.stamp.date)
        .u32(e.crc)
        .u32(U32_MAX)
        .u32(U32_MAX)
        .u16(e.name.length)
        .u16(28)
        .u16(0) // comment
        .u16(0) // disk
        .u16(0) // internal attributes
        .u32((0o100644 << 16) >>> 0) // a regular file, rw-r--r--
        .u32(U32_MAX)
        .raw(e.name)
        .u16(0x0001)
        .u16(24)
        .u64(e.size)
        .u64(e.size)
        .u64(e.offset);
      await this.emit(c.buf);
    }
    const size = this.offset - start;
    const end64 = this.offset;
    const n = this.entries.length;
    const tail = new Bytes(56 + 20 + 22)
      // ZIP64 end of central directory record
      .u32(0x06064b50)
      .u64(44)
      .u16((3 << 8) | VERSION)
      .u16(VERSION)
      .u32(0)
      .u32(0)
      .u64(n)
      .u64(n)
      .u64(size)
      .u64(start)
      // its locator
      .u32(0x07064b50)
      .u32(0)
      .u64(end64)
      .u32(1)
      // end of central directory: every field points to the ZIP64 record
      .u32(0x06054b50)
      .u16(0)
      .u16(0)
      .u16(0xffff)
      .u16(0xffff)
      .u32(U32_MAX)
      .u32(U32_MAX)
      .u16(0);
    await this.emit(tail.buf);
  }
}
