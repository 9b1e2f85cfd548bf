/**
 * NaN and ±Inf in stored weights. A damaged or badly converted checkpoint can hold them; the forward pass would turn
 * them into a perplexity of NaN with no hint of where they came from. Scanning every weight on every pass would cost a
 * read of the whole checkpoint, so the scan runs only once a result came out non-finite (perplexity.ts): it then names
 * the tensors, their layers and shards, and the first bad element.
 */
import { MoePruneError, throwIfAborted } from '../core/errors.ts';
import type { SafetensorsFile } from '../formats/safetensors/reader.ts';

export interface NonFiniteTensor {
  readonly tensor: string;
  /** The shard that holds it. */
  readonly file: string;
  /** Decoder layer from the name (`…layers.N.…`), or null (embedding, head, final norm). */
  readonly layer: number | null;
  /** Element index of the first bad value. */
  readonly index: number;
  readonly value: 'NaN' | 'Inf';
  /** Bad values in the tensor. */
  readonly count: number;
}

/** What the scan needs of a checkpoint's tensors (CheckpointWeights). */
export interface TensorLocator {
  names(): string[];
  file(name: string): SafetensorsFile;
}

const PIECE_BYTES = 8 << 20;

/** Exponent field mask (all ones: Inf or NaN) and mantissa mask (non-zero: NaN) per float dtype, by element bytes. */
const FLOAT_BITS: Readonly<Record<string, { readonly bytes: 1 | 2 | 4; readonly exp: number; readonly man: number }>> = {
  F32: { bytes: 4, exp: 0x7f800000, man: 0x007fffff },
  F16: { bytes: 2, exp: 0x7c00, man: 0x03ff },
  BF16: { bytes: 2, exp: 0x7f80, man: 0x007f },
  // E4M3 (fn) has no infinities: only S.1111.111 is NaN.
  F8_E4M3: { bytes: 1, exp: 0x7f, man: 0x7f },
  F8_E5M2: { bytes: 1, exp: 0x7c, man: 0x03 },
};

/** The layer a tensor name belongs to (`model.layers.12.…` → 12). */
export function layerOfTensor(name: string): number | null {
  const m = /(?:^|\.)(?:layers|h|blocks)\.(\d+)\./.exec(name);
  return m ? Number(m[1]) : null;
}

/** First bad element and count of bad elements among values already widened to float32; null when all are finite. */
export function nonFiniteValues(v: Float32Array): { index: number; value: 'NaN' | 'Inf'; count: number } | null {
  let first = -1;
  let count = 0;
  for (let i = 0; i < v.length; i++) if (!Number.isFinite(v[i]!)) (count++, first < 0 && (first = i));
  return first < 0 ? null : { index: first, value: Number.isNaN(v[first]!) ? 'NaN' : 'Inf', count };
}

/** First bad element and count of bad elements in raw little-endian bytes of `dtype`; null for an all-finite piece or a non-float dtype. */
export function scanNonFinite(dtype: string, bytes: Uint8Array): { index: number; value: 'NaN' | 'Inf'; count: number } | null {
  let first = -1;
  let value: 'NaN' | 'Inf' = 'NaN';
  let count = 0;
  const note = (i: number, nan: boolean): void => {
    if (first < 0) {
      first = i;
      value = nan ? 'NaN' : 'Inf';
    }
    count++;
  };
  if (dtype === 'F64') {
    const v = new Float64Array(bytes.byteOffset % 8 ? bytes.slice().buffer : bytes.buffer, bytes.byteOffset % 8 ? 0 : bytes.byteOffset, bytes.byteLength >>> 3);
    for (let i = 0; i < v.length; i++) if (!Number.isFinite(v[i]!)) note(i, Number.isNaN(v[i]!));
  } else {
    const f = FLOAT_BITS[dtype];
    if (!f) return null;
    const aligned = bytes.byteOffset % f.bytes ? bytes.slice() : bytes;
    const n = aligned.byteLength / f.bytes;
    const v = f.bytes === 4 ? new Uint32Array(aligned.buffer, aligned.byteOffset, n) : f.bytes === 2 ? new Uint16Array(aligned.buffer, aligned.byteOffset, n) : aligned;
    for (let i = 0; i < n; i++) {
      const x = v[i]!;
      if ((x & f.exp) === f.exp && (dtype !== 'F8_E4M3' || (x & f.man) === f.man)) note(i, dtype === 'F8_E4M3' || (x & f.man) !== 0);
    }
  }
  return first < 0 ? null : { index: first, value, count };
}

/** Every tensor holding NaN or ±Inf, in name order (reads each tensor once, in bounded pieces). */
export async function findNonFiniteTensors(w: TensorLocator, signal?: AbortSignal): Promise<NonFiniteTensor[]> {
  const out: NonFiniteTensor[] = [];
  for (const name of w.names()) {
    const f = w.file(name);
    const info = f.info(name);
    const elem = info.dtype === 'F64' ? 8 : FLOAT_BITS[info.dtype]?.bytes;
    if (!elem) continue;
    const step = PIECE_BYTES - (PIECE_BYTES % elem);
    let found: NonFiniteTensor | null = null;
    let count = 0;
    for (let off = 0; off < info.byteLength; off += step) {
      throwIfAborted(signal);
      const hit = scanNonFinite(info.dtype, await f.readRange(name, off, Math.min(step, info.byteLength - off), signal));
      if (!hit) continue;
      count += hit.count;
      found ??= { tensor: name, file: f.name, layer: layerOfTensor(name), index: off / elem + hit.index, value: hit.value, count: 0 };
    }
    if (found) out.push({ ...found, count });
  }
  return out;
}

/** The user-facing error for a non-finite result: the tensors that caused it, or (none found) where it arose. */
export function nonFiniteError(found: readonly NonFiniteTensor[], what: string): MoePruneError {
  const [t] = found;
  if (!t)
    return new MoePruneError(
      'NonFinite',
      `${what} came out as NaN or infinite although every stored weight is finite: the activations overflowed (the model's values are out of range for float32)`,
    );
  const where = (x: NonFiniteTensor) => `"${x.tensor}"${x.layer !== null ? ` (layer ${x.layer})` : ''}`;
  const more = found.length > 1 ? `; also ${found.slice(1, 4).map(where).join(', ')}${found.length > 4 ? `, and ${found.length - 4} more tensor(s)` : ''}` : '';
  return new MoePruneError(
    'NonFinite',
    `weight ${where(t)} holds ${t.count} ${t.value === 'NaN' ? 'NaN' : 'infinite'} value(s) (the first at element ${t.index})${more}, so ${what} would be NaN; ` +
      'the checkpoint is damaged or was converted with overflowing values: download or convert it again',
    t.file,
  );
}
