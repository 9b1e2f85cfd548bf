import { MoePruneError } from '../../core/errors.ts';
import { readJson, type ByteSource } from '../bytes.ts';

export const INDEX_FILE = 'model.safetensors.index.json';
export const SINGLE_FILE = 'model.safetensors';

export interface ShardIndex {
  readonly metadata: Record<string, unknown>;
  /** tensor name → shard file name */
  readonly weightMap: ReadonlyMap<string, string>;
}

/** Shard names must be plain relative file names (the Hub's own rules: no absolute paths, "..", backslashes or schemes). */
function checkShardName(file: string, shard: string): void {
  if (!shard || shard.startsWith('/') || shard.includes('..') || shard.includes('\\') || /^[a-z][a-z0-9+.-]*:/i.test(shard) || /[\x00-\x1f]/.test(shard))
    throw new MoePruneError('InvalidIndex', `weight_map names an unsafe shard file "${shard}"`, file);
}

export function parseShardIndex(file: string, json: unknown): ShardIndex {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new MoePruneError('InvalidIndex', 'index must be a JSON object', file);
  const o = json as Record<string, unknown>;
  const wm = o.weight_map;
  if (typeof wm !== 'object' || wm === null || Array.isArray(wm)) throw new MoePruneError('InvalidIndex', 'index has no "weight_map" object', file);
  const weightMap = new Map<string, string>();
  for (const [k, v] of Object.entries(wm as Record<string, unknown>)) {
    if (typeof v !== 'string') throw new MoePruneError('InvalidIndex', `weight_map["${k}"] must be a file name`, file);
    checkShardName(file, v);
    weightMap.set(k, v);
  }
  const md = o.metadata;
  const metadata = typeof md === 'object' && md !== null && !Array.isArray(md) ? (md as Record<string, unknown>) : {};
  return { metadata, weightMap };
}

export async function readShardIndex(src: ByteSource, signal?: AbortSignal): Promise<ShardIndex> {
  return parseShardIndex(src.name, await readJson(src, signal));
}

/** Shards in the order transformers loads them: sorted unique file names. */
export function shardFiles(index: ShardIndex): string[] {
  return [...new Set(index.weightMap.values())].sort();
}

export function shardFileName(i: number, n: number): string {
  return `model-${String(i + 1).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.safetensors`;
}

/** The index as transformers writes it: metadata.total_size = tensor bytes, weight_map sorted, indent 2. */
export function formatShardIndex(weightMap: ReadonlyMap<string, string>, totalSize: number, extraMetadata: Record<string, unknown> = {}): string {
  const sorted: Record<string, string> = {};
  for (const k of [...weightMap.keys()].sort()) sorted[k] = weightMap.get(k)!;
  return JSON.stringify({ metadata: { ...extraMetadata, total_size: totalSize }, weight_map: sorted }, null, 2) + '\n';
}

/** Greedy split of tensors (in the given order) into shards of at most maxBytes each (a bigger tensor gets its own). */
export function planShards<T extends { byteLength: number }>(tensors: readonly T[], maxBytes: number): T[][] {
  const shards: T[][] = [];
  let cur: T[] = [];
  let size = 0;
  for (const t of tensors) {
    if (cur.length && size + t.byteLength > maxBytes) {
      shards.push(cur);
      cur = [];
      size = 0;
    }
    cur.push(t);
    size += t.byteLength;
  }
  if (cur.length || !shards.length) shards.push(cur);
  return shards;
}
