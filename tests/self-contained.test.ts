import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { codeOnly, insideRepo, langOf, matchesOf, readSource, REPO_ROOT, sourceFiles, type Finding } from './source-scan.ts';

/**
 * A clone of the repository alone must run its tests, tools and demo: no code path may read a file outside the
 * repository (the team's shared reference folder beside it is not there in a user's clone). Comments and
 * docstrings may still cite a source document.
 */

/** Where project code lives (fixtures/ and public/ are data; docs may cite anything). */
const SCANNED = ['src', 'tests', 'oracle', 'tools', 'e2e', 'scripts', 'bench', 'bin', '.ci', 'index.html', 'vite.config.ts', 'vitest.config.ts', 'package.json', 'tsconfig.json'];

/** Names this project gives the repository root in code. */
const ROOT_NAMES = '(?:ROOT|REPO|REPO_ROOT)';

function outsideByUrl(file: string, rel: string): boolean {
  const literal = rel.split('${')[0]!; // a template's fixed prefix decides where it points
  return !insideRepo(fileURLToPath(new URL(literal, pathToFileURL(join(REPO_ROOT, file)))));
}

/** Every place in one file's code that reads, or builds a path to, something outside the repository. */
function outsideReads(file: string, src: string): Finding[] {
  const lang = langOf(file);
  if (!lang) return [];
  const code = codeOnly(lang, src);
  const found: Finding[] = [];
  const add = (re: RegExp, rule: string, keep?: (m: RegExpExecArray) => boolean): void => {
    found.push(...matchesOf(file, src, code, re, rule, keep));
  };

  add(/\.\.\/shared\b|\bshared\/(?:data|reference)\b/g, 'names the shared folder beside the repository');
  if (lang === 'json') add(/"\.\.\/[^"]*"/g, 'a path that climbs out of the repository root');
  if (lang === 'js') {
    add(/new URL\(\s*(['"`])(\.[^'"`]*)\1\s*,\s*import\.meta\.url\s*\)/g, 'a URL relative to this file that leaves the repository', (m) => outsideByUrl(file, m[2]!));
    const dir = '(?:import\\.meta\\.dirname|dirname\\(fileURLToPath\\(import\\.meta\\.url\\)\\))';
    add(
      new RegExp(`(?:resolve|join)\\(\\s*${dir}\\s*,\\s*(['"\`])(\\.[^'"\`]*)\\1`, 'g'),
      'a path relative to this file that leaves the repository',
      (m) => !insideRepo(resolve(dirname(join(REPO_ROOT, file)), m[2]!.split('${')[0]!)),
    );
    add(new RegExp(`(?:resolve|join)\\(\\s*${ROOT_NAMES}\\s*,\\s*['"\`]\\.\\.(?:[/'"\`])`, 'g'), 'a path above the repository root');
  }
  if (lang === 'py') {
    const depth = file.split('/').length - 1; // folders between the root and this file
    add(/Path\(__file__\)(?:\.resolve\(\))?((?:\.parent\b)+|\.parents\[(\d+)\])/g, 'a folder above the repository root', (m) => {
      const up = m[2] !== undefined ? Number(m[2]) : m[1]!.split('.parent').length - 2; // as an index into .parents
      return up > depth;
    });
    add(new RegExp(`\\b${ROOT_NAMES}\\.parent\\b|\\b${ROOT_NAMES}\\s*/\\s*['"]\\.\\.['"]`, 'g'), 'a folder above the repository root');
  }
  return found;
}

describe('the repository is self-contained', () => {
  it('no project file reads outside the repository', () => {
    const files = sourceFiles(SCANNED);
    expect(files.length).toBeGreaterThan(100); // the scan really walked the project
    expect(files).toContain('tools/demo/settings.json');
    expect(files).toContain('oracle/make_eval_fixtures.py');
    // This file is left out: its examples below spell out the forbidden paths on purpose.
    const found = files.filter((f) => f !== 'tests/self-contained.test.ts').flatMap((f) => outsideReads(f, readSource(f)));
    expect(found.map((f) => `${f.file}:${f.line}: ${f.rule}: ${f.text}`)).toEqual([]);
  });

  it('the check catches each way of reaching out, and ignores comments and docstrings', () => {
    const hits = (file: string, src: string): number => outsideReads(file, src).length;
    // The folder beside a clone, spelled in pieces so this file itself names no path outside the repository.
    const OUT = ['..', 'shared'].join('/');
    // The forms the tests and tools used before their inputs were copied into fixtures/.
    expect(hits('src/cli/eval.test.ts', `const T = fileURLToPath(new URL('../../${OUT}/data/austen/emma.txt', import.meta.url));`)).toBe(2);
    expect(hits('src/models/x.test.ts', `const M = resolve(ROOT, '${OUT}/reference/model-metadata');`)).toBe(2);
    expect(hits('tools/demo/settings.json', `{ "data": { "dir": "${OUT}/data/austen" } }`)).toBe(2);
    expect(hits('oracle/make_eval_fixtures.py', 'REPO = Path(__file__).resolve().parent.parent\nAUSTEN = REPO.parent / "shared" / "data" / "austen"\n')).toBe(1);
    // Other ways out of the root, with no "shared" in sight.
    expect(hits('src/a/b.test.ts', "readFileSync(new URL('../../../elsewhere/x.json', import.meta.url))")).toBe(1);
    expect(hits('src/a/b.test.ts', "readFileSync(new URL('../../fixtures/x.json', import.meta.url))")).toBe(0);
    expect(hits('src/a/b.test.ts', "readFileSync(new URL(`../../../fixtures/${n}.json`, import.meta.url))")).toBe(1);
    expect(hits('src/cli/x.test.ts', "const root = resolve(import.meta.dirname, '../../..');")).toBe(1);
    expect(hits('src/cli/x.test.ts', "const root = resolve(import.meta.dirname, '../..');")).toBe(0);
    expect(hits('oracle/tests/t.py', 'ROOT = Path(__file__).resolve().parents[3]\n')).toBe(1);
    expect(hits('oracle/tests/t.py', 'ROOT = Path(__file__).resolve().parents[2]\n')).toBe(0);
    expect(hits('oracle/t.py', 'ROOT = Path(__file__).resolve().parent.parent.parent\n')).toBe(1);
    expect(hits('oracle/t.py', 'ROOT = Path(__file__).resolve().parent.parent\n')).toBe(0);
    expect(hits('scripts/x.sh', `cat ${OUT}/data/austen/emma.txt\n`)).toBe(1);
    // Prose may cite the source documents.
    expect(hits('src/models/families.ts', `/**\n * Sources: ${OUT}/reference/moe-checkpoints.md §2\n */\nexport const A = 1;\n`)).toBe(0);
    expect(hits('src/x.ts', `const a = 1; // from ${OUT}/reference/x.md\n`)).toBe(0);
    expect(hits('oracle/stun_reference.py', '"""Method as in\n(shared/reference/stun-method.md §2.3)."""\nimport json\n')).toBe(0);
    expect(hits('oracle/t.py', `x = 1  # see ${OUT}/data/austen\n`)).toBe(0);
    expect(hits('scripts/x.sh', `# data came from ${OUT}/data\necho ok\n`)).toBe(0);
  });
});
