import { readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Helpers for the tests that read the project's own source as text (self-containment, unsafe DOM/eval use).
 * They look at code only: comments, and Python's triple-quoted docstrings, are blanked first, because prose may
 * cite a document or name an API while code may not use it.
 */

export const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));

/** Folders that are data, build output or third-party code, never project source. */
const SKIP_DIRS = new Set(['node_modules', '.git', '.venv', '.artifacts', '.work', '.partial', '__pycache__', 'dist', '.vite', '.test-results']);
const SOURCE_EXT = new Set(['.ts', '.tsx', '.mts', '.mjs', '.js', '.cjs', '.py', '.sh', '.json', '.html']);

export type Lang = 'js' | 'py' | 'sh' | 'json' | 'html';

export function langOf(path: string): Lang | null {
  const ext = extname(path);
  if (['.ts', '.tsx', '.mts', '.mjs', '.js', '.cjs'].includes(ext)) return 'js';
  if (ext === '.py') return 'py';
  if (ext === '.sh' || ext === '') return 'sh'; // extensionless files here are scripts (.ci/run)
  if (ext === '.json') return 'json';
  if (ext === '.html') return 'html';
  return null;
}

/** Project source files under the given folders (repo-relative, '/'-separated), skipping data and build output. */
export function sourceFiles(dirs: readonly string[]): string[] {
  const out: string[] = [];
  const walk = (rel: string): void => {
    const abs = join(REPO_ROOT, rel);
    let st;
    try {
      st = statSync(abs);
    } catch {
      return; // a folder this checkout lacks
    }
    if (st.isFile()) {
      if (SOURCE_EXT.has(extname(rel)) || (extname(rel) === '' && rel.startsWith('.ci/'))) out.push(rel);
      return;
    }
    for (const name of readdirSync(abs)) if (!SKIP_DIRS.has(name)) walk(rel ? `${rel}/${name}` : name);
  };
  for (const d of dirs) walk(d);
  return out.map((p) => p.split(sep).join('/')).sort();
}

const blank = (s: string): string => s.replace(/[^\n]/g, ' ');

/** JS/TS: blanks // and /* *\/ comments; strings, template literals and regex literals are kept as code. */
function jsCode(src: string): string {
  let out = '';
  let prev = ''; // last non-space character of code, to tell a regex literal from a division
  let i = 0;
  while (i < src.length) {
    const c = src[i]!;
    const d = src[i + 1];
    if (c === '/' && d === '/') {
      const nl = src.indexOf('\n', i);
      const end = nl < 0 ? src.length : nl;
      out += blank(src.slice(i, end));
      i = end;
    } else if (c === '/' && d === '*') {
      const close = src.indexOf('*/', i + 2);
      const end = close < 0 ? src.length : close + 2;
      out += blank(src.slice(i, end));
      i = end;
    } else if (c === '"' || c === "'" || c === '`' || (c === '/' && (prev === '' || '(,=:[!&|?{};+-*%<>~^'.includes(prev)))) {
      // A string, template or regex literal runs to its unescaped closing quote (a plain string or a regex stops at a
      // line end, so a stray apostrophe in JSX text cannot swallow the rest of the file).
      let j = i + 1;
      let inClass = false;
      while (j < src.length) {
        const e = src[j]!;
        if (e === '\\') j += 2;
        else if (e === '\n' && c !== '`') break;
        else if (c === '/' && e === '[') (inClass = true), j++;
        else if (c === '/' && e === ']') (inClass = false), j++;
        else if (e === c && !inClass) break;
        else j++;
      }
      out += src.slice(i, j + 1);
      prev = c;
      i = j + 1;
    } else {
      out += c;
      if (!/\s/.test(c)) prev = c;
      i++;
    }
  }
  return out;
}

/** Python: blanks # comments and triple-quoted strings (docstrings are prose); one-line strings are kept. */
function pyCode(src: string): string {
  let out = '';
  let i = 0;
  while (i < src.length) {
    const c = src[i]!;
    if (c === '#') {
      const nl = src.indexOf('\n', i);
      const end = nl < 0 ? src.length : nl;
      out += blank(src.slice(i, end));
      i = end;
    } else if (c === '"' || c === "'") {
      const triple = src.startsWith(c.repeat(3), i);
      const q = triple ? c.repeat(3) : c;
      let j = i + q.length;
      while (j < src.length && !src.startsWith(q, j) && (triple || src[j] !== '\n')) j += src[j] === '\\' ? 2 : 1;
      const end = Math.min(src.length, j + q.length);
      out += triple ? blank(src.slice(i, end)) : src.slice(i, end);
      i = end;
    } else {
      out += c;
      i++;
    }
  }
  return out;
}

/** Shell: blanks a # comment that starts a word outside quotes. */
function shCode(src: string): string {
  return src
    .split('\n')
    .map((line) => {
      let quote = '';
      for (let i = 0; i < line.length; i++) {
        const c = line[i]!;
        if (quote) {
          if (c === quote) quote = '';
        } else if (c === '"' || c === "'") quote = c;
        else if (c === '#' && (i === 0 || /\s/.test(line[i - 1]!))) return line.slice(0, i) + blank(line.slice(i));
      }
      return line;
    })
    .join('\n');
}

/** HTML: blanks <!-- --> comments. */
function htmlCode(src: string): string {
  return src.replace(/<!--[\s\S]*?-->/g, blank);
}

/** The text of a source file with its comments blanked, line numbers kept. */
export function codeOnly(lang: Lang, src: string): string {
  switch (lang) {
    case 'js':
      return jsCode(src);
    case 'py':
      return pyCode(src);
    case 'sh':
      return shCode(src);
    case 'html':
      return htmlCode(src);
    case 'json':
      return src;
  }
}

export interface Finding {
  readonly file: string;
  readonly line: number;
  readonly rule: string;
  readonly text: string;
}

/** Every match of `re` (global) in `code` that `keep` accepts, as findings with 1-based lines and the original line. */
export function matchesOf(file: string, src: string, code: string, re: RegExp, rule: string, keep: (m: RegExpExecArray) => boolean = () => true): Finding[] {
  const lines = src.split('\n');
  const out: Finding[] = [];
  for (const m of code.matchAll(re)) {
    if (!keep(m)) continue;
    const line = code.slice(0, m.index).split('\n').length;
    out.push({ file, line, rule, text: (lines[line - 1] ?? '').trim() });
  }
  return out;
}

export function readSource(rel: string): string {
  return readFileSync(join(REPO_ROOT, rel), 'utf8');
}

/** `abs` is the repository root or inside it. */
export function insideRepo(abs: string): boolean {
  const r = relative(REPO_ROOT, abs);
  return r === '' || (!r.startsWith('..') && !r.startsWith(sep) && !/^[A-Za-z]:/.test(r));
}
