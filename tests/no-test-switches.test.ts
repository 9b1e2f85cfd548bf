import { describe, expect, it } from 'vitest';
import { codeOnly, langOf, matchesOf, readSource, sourceFiles, type Finding } from './source-scan.ts';

/**
 * The product has no test-only switches: a test that passes through a switch inside the product (a query parameter
 * that swaps a store, a demo path or a picker; a window hook that skips the drop code) would still pass with the
 * user's path broken. Tests stub browser APIs from the test side instead (addInitScript, page.route, IndexedDB read by
 * the test; a lost GPU by destroying the page's own devices, caught by wrapping requestDevice). So no page code reads
 * the page's query string, and no page code installs a `window.__moePrune` hook. The end-to-end tests open the page
 * at its plain address, as a user does.
 */
const RULES: ReadonlyArray<readonly [RegExp, string]> = [
  [/\blocation\s*\.\s*(?:search|href|hash)\b|\bnew\s+URLSearchParams\s*\(|\bsearchParams\b/g, 'reads the page URL (a query switch)'],
  [/[?&](?:test|demo|chunk|slowIngest|exportTo|slowExport)=/g, 'names a test query switch'],
  [/\b__moePrune\b/g, 'a window hook for tests'],
  [/\bimport\s*\(\s*['"`][^'"`]*\bbench\//g, 'loads the benchmark from the app'],
];

function switches(file: string, src: string): Finding[] {
  const lang = langOf(file);
  if (lang !== 'js' && lang !== 'html') return [];
  const code = codeOnly(lang, src);
  return RULES.flatMap(([re, rule]) => matchesOf(file, src, code, re, rule));
}

describe('no test-only switches in the product', () => {
  it('page code (src/, index.html, public/) reads no query switch and installs no test hook', () => {
    const files = sourceFiles(['src', 'index.html', 'public']).filter((f) => !/\.test\.tsx?$/.test(f));
    expect(files.length).toBeGreaterThan(50);
    expect(files).toContain('src/ui/demo.ts');
    expect(files).toContain('src/ui/services.ts');
    const found = files.flatMap((f) => switches(f, readSource(f)));
    expect(found.map((f) => `${f.file}:${f.line}: ${f.rule}: ${f.text}`)).toEqual([]);
  });

  it('the end-to-end tests open the page at its plain address (no query switch, not even an ignored one)', () => {
    const files = sourceFiles(['e2e']).filter((f) => langOf(f) === 'js');
    expect(files.length).toBeGreaterThan(10);
    const found = files.flatMap((f) => matchesOf(f, readSource(f), codeOnly('js', readSource(f)), /[?&](?:test|demo|chunk|slowIngest|exportTo|slowExport)=/g, 'names a test query switch'));
    expect(found.map((f) => `${f.file}:${f.line}: ${f.text}`)).toEqual([]);
  });

  it('the scan finds each kind of switch, and ignores comments', () => {
    const rules = (src: string): string[] => switches('src/ui/X.ts', src).map((f) => f.rule);
    expect(rules("const q = new URLSearchParams(location.search);")).toEqual(['reads the page URL (a query switch)', 'reads the page URL (a query switch)']);
    expect(rules("if (url.searchParams.get('test') === '1') x();")).toEqual(['reads the page URL (a query switch)']);
    expect(rules('const u = `/?test=1&chunk=4096`;')).toEqual(['names a test query switch', 'names a test query switch']);
    expect(rules('window.__moePrune = { dropHandle };')).toEqual(['a window hook for tests']);
    expect(rules("const { runIngestBench } = await import('../../bench/ingest-bench.ts');")).toEqual(['loads the benchmark from the app']);
    expect(rules('// tests used to pass ?test=1 and window.__moePrune here')).toEqual([]);
    expect(rules("const base = `${import.meta.env.BASE_URL}demo/model/`;")).toEqual([]);
  });
});
