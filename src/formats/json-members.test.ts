import { expect, it } from 'vitest';
import { topLevelMembers } from './json-members.ts';

it('lists top-level members in order, duplicates kept, nested keys and string values ignored, value positions exact', () => {
  const text = ' {"a": 0.0, "b":{"a":1,"c":[{"a":2}]} ,"s":"x\\":y", "a" :\t-1e3 }';
  const m = topLevelMembers(text);
  expect(m.map((x) => x.key)).toEqual(['a', 'b', 's', 'a']);
  expect(m.map((x) => text.slice(x.valueAt, x.valueAt + 3))).toEqual(['0.0', '{"a', '"x\\', '-1e']);
});
