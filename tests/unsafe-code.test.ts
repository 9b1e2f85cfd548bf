import { describe, expect, it } from 'vitest';
import { codeOnly, langOf, matchesOf, readSource, sourceFiles, type Finding } from './source-scan.ts';

/**
 * The page handles untrusted input (a dropped checkpoint's JSON, tensor names, text files). No page code may turn
 * text into code or markup: no eval or new Function (the Content-Security-Policy forbids them at run time too), no
 * string timers, and no innerHTML, outerHTML, insertAdjacentHTML, document.write or dangerouslySetInnerHTML (React
 * escapes what it renders; these would not). Comments may name them.
 */
const RULES: ReadonlyArray<readonly [RegExp, string]> = [
  [/(?<![\w$.])eval\s*\(/g, 'eval'],
  [/\bnew\s+Function\s*\(|(?<![\w$.])Function\s*\(\s*['"`]/g, 'new Function'],
  [/\b(?:setTimeout|setInterval)\s*\(\s*['"`]/g, 'a timer given a string of code'],
  [/\.(?:innerHTML|outerHTML)\b|\binsertAdjacentHTML\b|\bdocument\.write(?:ln)?\s*\(/g, 'HTML written from a string'],
  [/\bdangerouslySetInnerHTML\b/g, 'dangerouslySetInnerHTML'],
];

function unsafeUses(file: string, src: string): Finding[] {
  const lang = langOf(file);
  if (lang !== 'js' && lang !== 'html') return [];
  const code = codeOnly(lang, src);
  return RULES.flatMap(([re, rule]) => matchesOf(file, src, code, re, rule));
}

describe('no page code turns text into code or markup', () => {
  it('src/ and index.html use none of eval, new Function, string timers, innerHTML and friends', () => {
    const files = sourceFiles(['src', 'index.html']);
    expect(files.length).toBeGreaterThan(50);
    expect(files).toContain('src/ui/ModelSummary.tsx');
    const found = files.flatMap((f) => unsafeUses(f, readSource(f)));
    expect(found.map((f) => `${f.file}:${f.line}: ${f.rule}: ${f.text}`)).toEqual([]);
  });

  it('the scan finds each of them, and ignores comments and look-alike names', () => {
    const rules = (src: string): string[] => unsafeUses('src/ui/X.tsx', src).map((f) => f.rule);
    expect(rules('const v = eval(text);')).toEqual(['eval']);
    expect(rules('const f = new Function("a", body);')).toEqual(['new Function']);
    expect(rules("const f = Function('return this')();")).toEqual(['new Function']);
    expect(rules("setTimeout('alert(1)', 10);")).toEqual(['a timer given a string of code']);
    expect(rules('el.innerHTML = name;')).toEqual(['HTML written from a string']);
    expect(rules("el.insertAdjacentHTML('beforeend', name);")).toEqual(['HTML written from a string']);
    expect(rules('document.write(name);')).toEqual(['HTML written from a string']);
    expect(rules('<div dangerouslySetInnerHTML={{ __html: name }} />')).toEqual(['dangerouslySetInnerHTML']);
    expect(rules('// never use eval( or el.innerHTML here\n/* new Function( */\nconst n = 1;')).toEqual([]);
    expect(rules('const r = runEval(args); model.eval(); const t = evalPerplexity(x); setTimeout(() => go(), 5); el.textContent = name;')).toEqual([]);
  });
});
