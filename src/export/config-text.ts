/**
 * Patches top-level values of a JSON text in place, keeping every other byte. Re-serialising a parsed config is not
 * safe: JavaScript has one number type, so `0.0` would come back as `0`, and transformers 5 validates config fields
 * strictly (a float field given an int fails to load, e.g. Mixtral's `router_jitter_noise`).
 */
import { MoePruneError } from '../core/errors.ts';
import { topLevelMembers } from '../formats/json-members.ts';

function assertJson(text: string, file: string): void {
  try {
    JSON.parse(text);
  } catch (e) {
    throw new MoePruneError('InvalidConfig', `not valid JSON (${(e as Error).message})`, file);
  }
}

const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const STRING = /"(?:[^"\\]|\\.)*"/y;

/**
 * Replaces the values of the given keys of the top-level object; each must exist and already hold a value of the
 * same JSON type (a number stays a number, a string a string).
 */
export function patchTopLevelValues(text: string, patch: Readonly<Record<string, number | string>>, file = 'config.json'): string {
  const pending = new Map(Object.entries(patch));
  const edits: Array<{ from: number; to: number; value: string }> = [];
  assertJson(text, file);
  for (const { key, valueAt } of topLevelMembers(text)) {
    const value = pending.get(key);
    if (value === undefined) continue;
    const token = typeof value === 'number' ? NUMBER : STRING;
    token.lastIndex = valueAt;
    if (!token.test(text)) throw new MoePruneError('InvalidConfig', `"${key}" is not a ${typeof value}`, file);
    edits.push({ from: valueAt, to: token.lastIndex, value: JSON.stringify(value) });
    pending.delete(key);
  }
  if (pending.size) throw new MoePruneError('InvalidConfig', `no top-level "${[...pending.keys()].join('", "')}" to update`, file);
  let out = text;
  for (const e of edits.sort((a, b) => b.from - a.from)) out = out.slice(0, e.from) + e.value + out.slice(e.to);
  return out;
}

/**
 * Appends a member to the top-level object of a JSON text, keeping every other byte: after the last member, with
 * the same indentation as the first one. Refuses a key that is already there.
 */
export function appendTopLevelMember(text: string, key: string, value: unknown, file = 'config.json'): string {
  assertJson(text, file);
  const members = topLevelMembers(text);
  if (members.some((m) => m.key === key)) throw new MoePruneError('InvalidConfig', `already has a top-level "${key}"`, file);
  // Where the last member ends (before the closing brace and any whitespace), and the whitespace that precedes the
  // first member: its last line is the indentation a new member gets.
  const end = text.slice(0, text.lastIndexOf('}')).trimEnd().length;
  const open = text.indexOf('{');
  const lead = /^[ \t\r\n]*/.exec(text.slice(open + 1))![0];
  const nl = lead.lastIndexOf('\n');
  const sep = members.length === 0 ? (nl >= 0 ? lead : '') : nl >= 0 ? `,\n${lead.slice(nl + 1)}` : ', ';
  return text.slice(0, end) + sep + `${JSON.stringify(key)}: ${JSON.stringify(value)}` + text.slice(end);
}
