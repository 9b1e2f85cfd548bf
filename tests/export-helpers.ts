/** Test helpers for exports: an output folder in memory and a raw safetensors parser independent of the reader under test. */
import type { OutputFolder } from '../src/export/write-checkpoint.ts';
import { MemorySink } from '../src/formats/safetensors/writer.ts';

/** An output folder in memory: files become visible only on commit; abort drops them. */
export class MemoryFolder implements OutputFolder {
  readonly sinks = new Map<string, MemorySink>();
  committed = false;
  aborted = false;
  async create(name: string): Promise<MemorySink> {
    if (this.committed || this.aborted) throw new Error(`create(${name}) after the folder was closed`);
    const s = new MemorySink();
    this.sinks.set(name, s);
    return s;
  }
  async commit(): Promise<void> {
    if ([...this.sinks.values()].some((s) => !s.closed)) throw new Error('commit with an open file');
    this.committed = true;
  }
  /** Files still open when abort() ran (a real folder could not delete them on every OS, and leaks handles). */
  openAtAbort: string[] = [];
  async abort(): Promise<void> {
    this.aborted = true;
    this.openAtAbort = [...this.sinks].filter(([, s]) => !s.closed).map(([n]) => n);
    this.sinks.clear();
  }
  /** What a user would see: nothing until committed. */
  visible(): Map<string, Uint8Array> {
    return this.committed ? new Map([...this.sinks].map(([n, s]) => [n, s.bytes()])) : new Map();
  }
}

/** Raw tensors of a .safetensors image, parsed here (not with the reader under test). */
export function rawTensors(file: Uint8Array): Map<string, { dtype: string; shape: number[]; bytes: Uint8Array }> {
  const n = Number(new DataView(file.buffer, file.byteOffset).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(file.subarray(8, 8 + n))) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const out = new Map<string, { dtype: string; shape: number[]; bytes: Uint8Array }>();
  for (const [name, h] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    out.set(name, { dtype: h.dtype, shape: h.shape, bytes: file.subarray(8 + n + h.data_offsets[0], 8 + n + h.data_offsets[1]) });
  }
  return out;
}

export function rawFolder(files: Map<string, Uint8Array>): Map<string, { dtype: string; shape: number[]; bytes: Uint8Array; file: string }> {
  const all = new Map<string, { dtype: string; shape: number[]; bytes: Uint8Array; file: string }>();
  for (const [name, bytes] of files) if (name.endsWith('.safetensors')) for (const [t, v] of rawTensors(bytes)) all.set(t, { ...v, file: name });
  return all;
}
