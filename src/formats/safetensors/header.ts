import { MoePruneError } from '../../core/errors.ts';
import { DTYPE_BITS, isDType, type DType } from '../dtype.ts';
import { topLevelMembers } from '../json-members.ts';

/** The reference reader's limit (safetensors 0.8, Rust): a larger header is rejected as a likely attack. */
export const MAX_HEADER_BYTES = 100_000_000;

export interface TensorInfo {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
  /** Byte offsets relative to the start of the data buffer (8 + header length); end is exclusive. */
  readonly begin: number;
  readonly end: number;
  readonly byteLength: number;
}

export interface ParsedHeader {
  readonly headerLength: number;
  readonly metadata: Record<string, string> | null;
  /** In data order (ascending offsets). */
  readonly tensors: readonly TensorInfo[];
}

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isUsize = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0;

/**
 * Validates a safetensors header exactly as the reference Rust reader does (moe-checkpoints.md §3.3), plus the
 * duplicate-name rule the spec states but the reference does not enforce. `fileSize` is the whole file's size.
 */
export function parseHeader(file: string, prefix: Uint8Array, headerBytes: Uint8Array | null, fileSize: number): ParsedHeader {
  if (fileSize < 8 || prefix.byteLength < 8) throw new MoePruneError('HeaderTooSmall', `file is ${fileSize} bytes, shorter than the 8-byte header length`, file);
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) throw new MoePruneError('HeaderTooLarge', `header length ${n} exceeds the limit of ${MAX_HEADER_BYTES} bytes`, file);
  const headerLength = Number(n);
  if (8 + headerLength > fileSize)
    throw new MoePruneError('InvalidHeaderLength', `header length ${headerLength} runs past the end of the ${fileSize}-byte file`, file);
  if (!headerBytes) throw new MoePruneError('InvalidHeaderLength', 'header bytes missing', file);

  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
  } catch {
    throw new MoePruneError('InvalidHeader', 'header is not valid UTF-8', file);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new MoePruneError('InvalidHeaderDeserialization', `header is not a JSON object (${(e as Error).message})`, file);
  }
  const bad = (why: string): never => {
    throw new MoePruneError('InvalidHeaderDeserialization', why, file);
  };
  if (!isPlainObject(json)) bad('header JSON must be an object');
  const obj = json as Record<string, unknown>;

  const seen = new Set<string>();
  // JSON.parse silently keeps the last of duplicate keys (as serde does); the spec forbids duplicates.
  for (const { key: k } of topLevelMembers(text)) {
    if (seen.has(k)) throw new MoePruneError('DuplicateTensor', `tensor "${k}" appears twice in the header`, file);
    seen.add(k);
  }

  let metadata: Record<string, string> | null = null;
  const tensors: TensorInfo[] = [];
  for (const [name, v] of Object.entries(obj)) {
    if (name === '__metadata__') {
      if (v === null) continue;
      if (!isPlainObject(v)) bad('__metadata__ must be an object of strings');
      const md = v as Record<string, unknown>;
      for (const [k, s] of Object.entries(md))
        if (typeof s !== 'string') throw new MoePruneError('InvalidMetadata', `__metadata__["${k}"] must be a string, got ${JSON.stringify(s)}`, file);
      metadata = md as Record<string, string>;
      continue;
    }
    if (!isPlainObject(v)) bad(`tensor "${name}" must be an object with dtype, shape and data_offsets`);
    const e = v as Record<string, unknown>;
    if (typeof e.dtype !== 'string') bad(`tensor "${name}" has no dtype`);
    if (!isDType(e.dtype as string)) throw new MoePruneError('UnknownDtype', `tensor "${name}" has unknown dtype "${String(e.dtype)}"`, file);
    if (!Array.isArray(e.shape) || !e.shape.every(isUsize))
      throw new MoePruneError('InvalidShape', `tensor "${name}" shape must be a list of non-negative integers, got ${JSON.stringify(e.shape)}`, file);
    const off = e.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every(isUsize))
      bad(`tensor "${name}" data_offsets must be two non-negative integers, got ${JSON.stringify(off)}`);
    const [begin, end] = off as [number, number];
    tensors.push({ name, dtype: e.dtype as DType, shape: e.shape as number[], begin, end, byteLength: end - begin });
  }

  // Same order and checks as the reference: sort by (begin, end), then require exact tiling from 0.
  tensors.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let start = 0;
  const U64_MAX = (1n << 64n) - 1n;
  for (const t of tensors) {
    if (t.begin !== start || t.end < t.begin)
      throw new MoePruneError(
        'InvalidOffset',
        `tensor "${t.name}" has data_offsets [${t.begin}, ${t.end}] but the previous tensor ends at ${start} (tensors must tile the data with no gap, overlap or alias)`,
        file,
      );
    let nelem = 1n;
    for (const d of t.shape) {
      nelem *= BigInt(d);
      if (nelem > U64_MAX) throw new MoePruneError('ValidationOverflow', `tensor "${t.name}" shape overflows`, file);
    }
    const nbits = nelem * BigInt(DTYPE_BITS[t.dtype]);
    if (nbits > U64_MAX) throw new MoePruneError('ValidationOverflow', `tensor "${t.name}" size overflows`, file);
    if (nbits % 8n !== 0n)
      throw new MoePruneError('MisalignedSlice', `tensor "${t.name}" (${t.dtype} ${JSON.stringify(t.shape)}) is not a whole number of bytes`, file);
    if (BigInt(t.end - t.begin) !== nbits / 8n)
      throw new MoePruneError(
        'TensorInvalidInfo',
        `tensor "${t.name}" covers ${t.end - t.begin} bytes but ${t.dtype} ${JSON.stringify(t.shape)} needs ${nbits / 8n}`,
        file,
      );
    start = t.end;
  }
  if (8 + headerLength + start !== fileSize)
    throw new MoePruneError(
      'MetadataIncompleteBuffer',
      `tensor data ends at byte ${8 + headerLength + start} but the file has ${fileSize} bytes (${fileSize > 8 + headerLength + start ? 'trailing bytes' : 'truncated'})`,
      file,
    );
  return { headerLength, metadata, tensors };
}
