import type { ByteSource, FileSet } from '../formats/bytes.ts';
import { openSafetensors } from '../formats/safetensors/reader.ts';
import { CONFIG_FILE } from './catalogue.ts';

/**
 * A single .safetensors file without the config.json beside it (a shard dropped on its own, `moe-prune inspect
 * model.safetensors`). Its header alone says what tensors it holds; the family, the layers and the experts come from
 * config.json, so we list the header and say that, rather than fail with "no file config.json".
 */

export interface LoneTensor {
  readonly name: string;
  readonly dtype: string;
  readonly shape: readonly number[];
  readonly bytes: number;
}

export interface LoneFileSummary {
  /** Tells this apart from a checkpoint summary in `--json` output. */
  readonly kind: 'safetensors-file';
  readonly file: string;
  readonly bytesOnDisk: number;
  /** The 8-byte header length plus the JSON header. */
  readonly headerBytes: number;
  readonly tensorBytes: number;
  readonly tensorCount: number;
  /** Elements over all tensors (a shard's share of the model's parameters). */
  readonly elements: number;
  readonly dtypes: Record<string, number>;
  /** The header's `__metadata__` (string to string), or null when it has none. */
  readonly metadata: Record<string, string> | null;
  /** The strict rules the header passed (the reference reader's, plus unique names). */
  readonly checks: readonly string[];
  /** Why there is no family, layer or expert count: the config is missing. */
  readonly needsConfig: string;
  /** In data order (ascending offsets). */
  readonly tensors: readonly LoneTensor[];
}

/** What openSafetensors enforced before it returned; each is a reason it throws, so a returned file passed them all. */
export const STRICT_CHECKS: readonly string[] = [
  'header length within the file and at most 100,000,000 bytes',
  'header is UTF-8 JSON, one object, no duplicate names',
  'every dtype known, every shape a list of non-negative integers',
  'tensors tile the data from byte 0 with no gap, overlap or alias',
  'each tensor covers exactly the bytes its dtype and shape need',
  'the data ends exactly at the end of the file',
];

export const NEEDS_CONFIG = `the model family, layers and experts come from ${CONFIG_FILE}, which is not with this file; load the whole checkpoint folder (${CONFIG_FILE}, the index and every shard) to see the model`;

/**
 * The file to list on its own: the only file of the set, whatever its name (so a PyTorch .bin, or a config.json
 * given by mistake, is opened and called what it is), or the only .safetensors file of a set with no config.json.
 * Undefined when the set is a checkpoint to catalogue (several files with a config) or holds several weight files
 * without one (a sharded checkpoint missing its config: that error stays).
 */
export function loneWeightsFile(files: FileSet): ByteSource | undefined {
  const names = files.names();
  if (names.length === 1) return files.get(names[0]!);
  if (names.includes(CONFIG_FILE)) return undefined;
  const shards = names.filter((n) => n.endsWith('.safetensors'));
  return shards.length === 1 ? files.get(shards[0]!) : undefined;
}

/** Reads and checks the header of one .safetensors file (no tensor data) and lists it. */
export async function describeSafetensorsFile(src: ByteSource, signal?: AbortSignal): Promise<LoneFileSummary> {
  const st = await openSafetensors(src, signal);
  const tensors = [...st.tensors.values()]
    .sort((a, b) => a.begin - b.begin)
    .map((t) => ({ name: t.name, dtype: t.dtype, shape: [...t.shape], bytes: t.byteLength }));
  const dtypes: Record<string, number> = {};
  for (const t of tensors) dtypes[t.dtype] = (dtypes[t.dtype] ?? 0) + 1;
  let elements = 0;
  for (const t of tensors) elements += t.shape.reduce((a, b) => a * b, 1);
  return {
    kind: 'safetensors-file',
    file: src.name,
    bytesOnDisk: src.size,
    headerBytes: st.dataStart,
    tensorBytes: src.size - st.dataStart,
    tensorCount: tensors.length,
    elements,
    dtypes,
    metadata: st.metadata,
    checks: STRICT_CHECKS,
    needsConfig: NEEDS_CONFIG,
    tensors,
  };
}

