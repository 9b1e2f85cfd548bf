/** "0-3, 5, 7-9" for a sorted list of indices (layers, experts); `dash` joins a run's ends. */
export function formatRanges(xs: readonly number[], dash = '-'): string {
  if (xs.length === 0) return 'none';
  const parts: string[] = [];
  let start = xs[0]!;
  let prev = start;
  for (const x of [...xs.slice(1), Number.NaN]) {
    if (x === prev + 1) {
      prev = x;
      continue;
    }
    parts.push(start === prev ? String(start) : `${start}${dash}${prev}`);
    start = prev = x;
  }
  return parts.join(', ');
}
