/**
 * "Try the demo model": fetches the checkpoint shipped with the app (public/demo/model/) from the page's own
 * origin and loads it exactly as a dropped folder (Files → loadPicked). The shard names come from the index.
 */
import { MoePruneError } from '../core/errors.ts';
import { INDEX_FILE, SINGLE_FILE } from '../formats/safetensors/index-file.ts';
import type { PickedFile } from '../store/source-files.ts';
import { loadPicked } from './state.ts';

/** The folder name the demo appears under (and its exports are named after). */
export const DEMO_NAME = 'moe-demo';
const OPTIONAL = ['tokenizer_config.json', 'generation_config.json', 'special_tokens_map.json', 'README.md'];

/** Where the demo checkpoint is served: on this origin, beside the page (the page never fetches from anywhere else). */
export function demoBaseUrl(): string {
  return `${import.meta.env.BASE_URL}demo/model/`;
}

/** A static server's SPA fallback answers a missing file with index.html and 200; that is not the file. */
export function isRealFile(res: Response): boolean {
  return res.ok && !(res.headers.get('content-type') ?? '').includes('text/html');
}

async function fetchFile(base: string, name: string, signal?: AbortSignal): Promise<File | null> {
  const res = await fetch(base + name, { signal }).catch((e: unknown) => {
    throw new MoePruneError('IoError', `cannot fetch the demo model (${(e as Error).message})`, name);
  });
  if (!isRealFile(res)) return null;
  return new File([await res.blob()], name);
}

/** Whether this build ships a demo model (its config.json answers). */
export async function demoAvailable(base = demoBaseUrl()): Promise<boolean> {
  try {
    const res = await fetch(base + 'config.json', { method: 'HEAD' });
    return isRealFile(res);
  } catch {
    return false;
  }
}

/** Fetches every demo file; `onFile` reports how many of how many are in. */
export async function fetchDemoFiles(base = demoBaseUrl(), onFile?: (done: number, total: number) => void): Promise<PickedFile[]> {
  const config = await fetchFile(base, 'config.json');
  if (!config) throw new MoePruneError('MissingFile', `this build ships no demo model (nothing at ${base}config.json)`, 'config.json');
  const index = await fetchFile(base, INDEX_FILE);
  let shards: string[];
  if (index) {
    const json = JSON.parse(await index.text()) as { weight_map?: Record<string, string> };
    shards = [...new Set(Object.values(json.weight_map ?? {}))].sort();
    if (shards.length === 0) throw new MoePruneError('InvalidIndex', 'the demo index names no shard', INDEX_FILE);
  } else shards = [SINGLE_FILE];
  const names = [...shards, 'tokenizer.json', ...OPTIONAL];
  const files: File[] = [config, ...(index ? [index] : [])];
  const total = names.length + files.length;
  let asked = files.length;
  onFile?.(asked, total);
  for (const name of names) {
    const f = await fetchFile(base, name);
    if (!f && shards.includes(name)) throw new MoePruneError('MissingFile', 'the demo model lacks a shard its index names', name);
    if (f) files.push(f);
    onFile?.(++asked, total);
  }
  return files.map((file) => ({ file, path: `${DEMO_NAME}/${file.name}` }));
}

export async function loadDemo(onFile?: (done: number, total: number) => void): Promise<void> {
  await loadPicked(await fetchDemoFiles(demoBaseUrl(), onFile));
}
