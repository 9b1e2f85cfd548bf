/**
 * Patches top-level numbers of a JSON text in place, keeping every other byte. Re-serialising a parsed config is not
 * safe: JavaScript has one number type, so `0.0` would come back as `0`, and transformers 5 validates config fields
 * strictly (a float field given an int fails to load, e.g. Mixtral's `router_jitter_noise`).
 */
import { MoePruneError } from '../core/errors.ts';

const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const SPACE = /[ \t\r\n]*/y;

/** End index (exclusive) of the JSON string token starting at `i` (a `"`). */
function stringEnd(text: string, i: number, file: string): number {
  for (let j = i + 1; j < text.length; j++) {
    if (text[j] === '\\') j++;
    else if (text[j] === '"') return j + 1;
  }
  throw new MoePruneError('InvalidConfig', 'unterminated string', file);
}

function skipSpace(text: string, i: number): number {
  SPACE.lastIndex = i;
  SPACE.test(text);
  return SPACE.lastIndex;
}

/** Replaces the values of the given keys of the top-level object; each must exist and hold a number. */
export function patchTopLevelNumbers(text: string, patch: Readonly<Record<string, number>>, file = 'config.json'): string {
  const pending = new Map(Object.entries(patch));
  const edits: Array<{ from: number; to: number; value: string }> = [];
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') depth--;
    else if (c === '"') {
      const end = stringEnd(text, i, file);
      const colon = skipSpace(text, end);
      if (depth === 1 && text[colon] === ':') {
        const key = JSON.parse(text.slice(i, end)) as string;
        const value = pending.get(key);
        if (value !== undefined) {
          const at = skipSpace(text, colon + 1);
          NUMBER.lastIndex = at;
          if (!NUMBER.test(text)) throw new MoePruneError('InvalidConfig', `"${key}" is not a number`, file);
          edits.push({ from: at, to: NUMBER.lastIndex, value: String(value) });
          pending.delete(key);
        }
      }
      i = end - 1;
    }
  }
  if (pending.size) throw new MoePruneError('InvalidConfig', `no top-level "${[...pending.keys()].join('", "')}" to update`, file);
  let out = text;
  for (const e of edits.sort((a, b) => b.from - a.from)) out = out.slice(0, e.from) + e.value + out.slice(e.to);
  return out;
}
