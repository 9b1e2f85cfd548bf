/**
 * The members of a JSON object text's top level, in order, duplicates kept, with where each value starts. For what
 * JSON.parse hides or loses: duplicate keys (it keeps the last) and the exact text of a value (it has one number
 * type, so `0.0` would come back as `0`). The text must be valid JSON whose top level is an object.
 */
export interface JsonMember {
  readonly key: string;
  /** Index of the first character of the member's value. */
  readonly valueAt: number;
}

const SPACE = /[ \t\r\n]*/y;

export function topLevelMembers(text: string): JsonMember[] {
  const out: JsonMember[] = [];
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') depth--;
    else if (c === '"') {
      let end = i + 1;
      while (text[end] !== '"') end += text[end] === '\\' ? 2 : 1;
      end++;
      SPACE.lastIndex = end;
      SPACE.test(text);
      // At depth 1 a string followed by ':' is a key; any other string is a value.
      if (depth === 1 && text[SPACE.lastIndex] === ':') {
        SPACE.lastIndex++;
        SPACE.test(text);
        out.push({ key: JSON.parse(text.slice(i, end)) as string, valueAt: SPACE.lastIndex });
      }
      i = end - 1;
    }
  }
  return out;
}
