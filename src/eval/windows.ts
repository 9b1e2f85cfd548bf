/**
 * Calibration and evaluation windows: a text → N windows of L token ids. The same rules serve both uses.
 *
 * Text: plain text is one document; JSONL (one JSON object per line with a string "text" field) is one document
 * per line. Each document is tokenized on its own with the tokenizer's special-token rule (so each starts with
 * BOS when the tokenizer adds one) and the token streams are concatenated in file order.
 *
 * Sampling:
 *  - 'first' (default, deterministic): windows i = tokens[i·L, (i+1)·L) for i = 0..N−1 — the first N
 *    non-overlapping windows. Only as much text as needed is tokenized (growing prefixes cut at line ends,
 *    keeping a margin of tokens so the kept ones equal those of tokenizing the whole document).
 *  - 'random' (as in Wanda's calibration loader): N independent windows whose starts are drawn uniformly from
 *    0..T−L with the mulberry32 PRNG seeded by `seed` (start = floor(u · (T − L + 1)), u in [0, 1)); windows
 *    may overlap.
 */
import { MoePruneError } from '../core/errors.ts';
import type { CheckpointTokenizer } from './tokenizer.ts';

export type Sampling = 'first' | 'random';

export interface WindowOptions {
  /** N: number of windows wanted. */
  readonly count: number;
  /** L: tokens per window. */
  readonly length: number;
  readonly sampling?: Sampling;
  /** Seed of the 'random' sampling (default 0). */
  readonly seed?: number;
}

export interface Windows {
  /** The windows, each exactly L token ids. May be fewer than requested when the text is too short. */
  readonly windows: Int32Array[];
  readonly requested: number;
  readonly length: number;
  /** Tokens the text was tokenized into (for 'first': the tokenized prefix only). */
  readonly tokensSeen: number;
  readonly sampling: Sampling;
  readonly seed: number | null;
}

/** Documents of a calibration file: JSONL (by name or content) → the "text" field of each line; else the whole text. */
export function parseCalibrationText(content: string, fileName = 'text'): string[] {
  const lines = content.split(/\r?\n/).filter((l) => l.trim() !== '');
  const looksJsonl = /\.jsonl$/i.test(fileName) || (lines.length > 0 && lines[0]!.trimStart().startsWith('{') && lines.every((l) => l.trim().endsWith('}')));
  if (!looksJsonl) return [content];
  return lines.map((line, i) => {
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (e) {
      throw new MoePruneError('InvalidArgument', `line ${i + 1} is not valid JSON (${(e as Error).message})`, fileName);
    }
    const text = (v as { text?: unknown } | null)?.text;
    if (typeof text !== 'string') throw new MoePruneError('InvalidArgument', `line ${i + 1} has no string "text" field`, fileName);
    return text;
  });
}

/** mulberry32: a small, fast 32-bit PRNG; returns a function giving floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Tokens dropped at the end of a prefix's encoding: they may depend on text after the cut. */
const PREFIX_MARGIN = 64;
const FIRST_PREFIX_CHARS = 16384;

/**
 * The first `need` tokens of one document, tokenizing as little of it as possible. Returns all its tokens when
 * the document is shorter than that.
 */
export function tokenizePrefix(tok: CheckpointTokenizer, text: string, need: number, firstChars = FIRST_PREFIX_CHARS): number[] {
  let chars = Math.max(firstChars, need * 2);
  for (;;) {
    if (chars >= text.length) return tok.encode(text);
    const cut = text.lastIndexOf('\n', chars);
    const end = cut > chars / 2 ? cut + 1 : chars;
    const ids = tok.encode(text.slice(0, end));
    if (ids.length >= need + PREFIX_MARGIN) return ids.slice(0, need);
    chars *= 2;
  }
}

function checkOptions(o: WindowOptions): void {
  if (!Number.isInteger(o.count) || o.count < 1) throw new MoePruneError('InvalidArgument', `the number of windows must be a positive integer (got ${o.count})`);
  if (!Number.isInteger(o.length) || o.length < 2) throw new MoePruneError('InvalidArgument', `the window length must be an integer ≥ 2 (got ${o.length})`);
}

/** Cuts windows out of an already tokenized stream. */
export function windowsFromTokens(tokens: ArrayLike<number>, o: WindowOptions): Windows {
  checkOptions(o);
  const L = o.length;
  const sampling = o.sampling ?? 'first';
  const out: Int32Array[] = [];
  if (sampling === 'first') {
    for (let i = 0; i < o.count && (i + 1) * L <= tokens.length; i++) out.push(Int32Array.from({ length: L }, (_, j) => tokens[i * L + j]!));
  } else if (tokens.length >= L) {
    const rand = mulberry32(o.seed ?? 0);
    for (let i = 0; i < o.count; i++) {
      const start = Math.floor(rand() * (tokens.length - L + 1));
      out.push(Int32Array.from({ length: L }, (_, j) => tokens[start + j]!));
    }
  }
  return { windows: out, requested: o.count, length: L, tokensSeen: tokens.length, sampling, seed: sampling === 'random' ? (o.seed ?? 0) : null };
}

/**
 * Tokenizes documents (see parseCalibrationText) and cuts N windows of L tokens from the concatenated stream. A text
 * long enough for fewer than N windows gives the windows it has (`windows.length < requested`, which reports show); a
 * text shorter than one window is refused with both numbers, naming `fileName` when given.
 */
export function makeWindows(tok: CheckpointTokenizer, documents: readonly string[], o: WindowOptions, fileName?: string): Windows {
  checkOptions(o);
  const stream: number[] = [];
  if ((o.sampling ?? 'first') === 'first') {
    const need = o.count * o.length;
    for (const doc of documents) {
      if (stream.length >= need) break;
      for (const id of tokenizePrefix(tok, doc, need - stream.length)) stream.push(id);
    }
  } else for (const doc of documents) for (const id of tok.encode(doc)) stream.push(id);
  const w = windowsFromTokens(stream, o);
  if (!w.windows.length)
    throw new MoePruneError(
      'InvalidArgument',
      `the text has ${stream.length} tokens, fewer than one window of ${o.length}; give a longer text or a shorter window length (sequence length)`,
      fileName,
    );
  return w;
}

/** Windows of a text file's content (plain text or JSONL by `fileName`): the one rule the CLI and the page share. */
export function windowsOfText(tok: CheckpointTokenizer, content: string, fileName: string, o: WindowOptions): Windows {
  return makeWindows(tok, parseCalibrationText(content, fileName), o, fileName);
}
