/**
 * Patches top-level numbers of a JSON text in place, keeping every other byte. Re-serialising a parsed config is not
 * safe: JavaScript has one number type, so `0.0` would come back as `0`, and transformers 5 validates config fields
 * strictly (a float field given an int fails to load, e.g. Mixtral's `router_jitter_noise`).
 */
import { MoePruneError } from '../core/errors.ts';
import { topLevelMembers } from '../formats/json-members.ts';

const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;

/** Replaces the values of the given keys of the top-level object; each must exist and hold a number. */
export function patchTopLevelNumbers(text: string, patch: Readonly<Record<string, number>>, file = 'config.json'): string {
  const pending = new Map(Object.entries(patch));
  const edits: Array<{ from: number; to: number; value: string }> = [];
  try {
    JSON.parse(text);
  } catch (e) {
    throw new MoePruneError('InvalidConfig', `not valid JSON (${(e as Error).message})`, file);
  }
  for (const { key, valueAt } of topLevelMembers(text)) {
    const value = pending.get(key);
    if (value === undefined) continue;
    NUMBER.lastIndex = valueAt;
    if (!NUMBER.test(text)) throw new MoePruneError('InvalidConfig', `"${key}" is not a number`, file);
    edits.push({ from: valueAt, to: NUMBER.lastIndex, value: String(value) });
    pending.delete(key);
  }
  if (pending.size) throw new MoePruneError('InvalidConfig', `no top-level "${[...pending.keys()].join('", "')}" to update`, file);
  let out = text;
  for (const e of edits.sort((a, b) => b.from - a.from)) out = out.slice(0, e.from) + e.value + out.slice(e.to);
  return out;
}
