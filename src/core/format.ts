/** Formatting shared by the page, the CLI and the model card: sizes, counts, rates, durations, index ranges. */

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

/** Human-readable sizes for progress lines and error messages (decimal units, as disks are sold). */
/** "4" when every count is the same, else "3–5" (smallest–largest): experts kept per layer, for one. */
export function formatCountRange(counts: Iterable<number>, dash = '–'): string {
  const xs = [...counts];
  const [lo, hi] = [Math.min(...xs), Math.max(...xs)];
  return lo === hi ? String(lo) : `${lo}${dash}${hi}`;
}

export function formatBytes(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let v = Math.abs(n);
  let u = 0;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  const s = u === 0 ? String(Math.round(v)) : v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
  return `${n < 0 ? '-' : ''}${s} ${units[u]}`;
}

/** Parameter and token counts: "1.23 B", "45.60 M", "7.5 k" (decimal, as model cards write them). */
export function formatCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} k`;
  return String(n);
}

/** Always in MB/s above 1 MB/s (comparable between runs); smaller rates in the unit that shows digits. */
export function formatRate(bytesPerSec: number): string {
  return bytesPerSec >= 1e6 ? `${(bytesPerSec / 1e6).toFixed(1)} MB/s` : `${formatBytes(bytesPerSec)}/s`;
}

export function formatEta(sec: number | undefined): string {
  if (sec === undefined || !Number.isFinite(sec)) return '–';
  if (sec < 60) return `${Math.ceil(sec)} s`;
  const m = Math.floor(sec / 60);
  if (m < 60) return `${m} min ${Math.round(sec - m * 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}
