import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { openReferenceModel, referenceForward } from '../eval/reference/forward.ts';
import { loadTokenizer } from '../eval/tokenizer.ts';
import { windowsOfText } from '../eval/windows.ts';
import { main, type CliIo } from './main.ts';
import { openNodeFileSet } from './node-files.ts';

const MODELS = fileURLToPath(new URL('../../fixtures/models', import.meta.url));
const MIXTRAL = join(MODELS, 'mixtral');
const TMP = mkdtempSync(join(tmpdir(), 'moe-prune-cli-'));
afterAll(() => rmSync(TMP, { recursive: true, force: true }));

function collect(signal?: AbortSignal, onErr?: (line: string) => void): CliIo & { out: () => string; err: () => string } {
  let out = '';
  let err = '';
  return {
    stdout: { write: (s: string) => (out += s) },
    stderr: {
      write: (s: string) => {
        err += s;
        onErr?.(s);
      },
    },
    ...(signal && { signal }),
    out: () => out,
    err: () => err,
  };
}

/** Exit 2 with exactly one line on stderr, nothing on stdout, and no output (nor `.partial`) left behind. */
async function expectRefused(args: string[], message: RegExp, out?: string): Promise<void> {
  const io = collect();
  expect(await main(['prune', ...args], io)).toBe(2);
  const lines = io.err().trimEnd().split('\n').filter((l) => !l.startsWith('moe-prune: --cpu') && !l.startsWith('  '));
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(message);
  expect(io.out()).toBe('');
  if (out) expect([existsSync(out), existsSync(`${out}.partial`)]).toEqual([false, false]);
}

describe('moe-prune prune: refusals (exit 2, one stderr line)', () => {
  const out = join(TMP, 'refused');

  it('bad flags', async () => {
    await expectRefused([MIXTRAL, '--out', out, '--experts-per-layer', '2', '--yaml'], /unknown option "--yaml"/, out);
    await expectRefused([MIXTRAL, '--experts-per-layer', '2'], /usage: moe-prune prune/, out);
    await expectRefused([MIXTRAL, '--out', out], /exactly one of --experts-per-layer and --expert-sparsity/, out);
    await expectRefused([MIXTRAL, '--out', out, '--experts-per-layer', '2', '--expert-sparsity', '0.5'], /exactly one of/, out);
    await expectRefused([MIXTRAL, '--out', out, '--experts-per-layer', 'two'], /--experts-per-layer.*positive integer/, out);
    await expectRefused([MIXTRAL, '--out', out, '--experts-per-layer', '2', '--reconstruct', 'mean'], /--reconstruct/, out);
    await expectRefused([MIXTRAL, '--out', out, '--experts-per-layer', '2', '--mode', 'global'], /--mode global takes --expert-sparsity/, out);
  });

  it('K below top-k, K above the expert count, K breaking grouped routing', async () => {
    await expectRefused([MIXTRAL, '--out', out, '--experts-per-layer', '1', '--cpu'], /^layer 0: keeping 1 experts is below the router's top-k floor of 2 \[InvalidPlan\]$/, out);
    await expectRefused([MIXTRAL, '--out', out, '--experts-per-layer', '5', '--cpu'], /\[1, 4\], got 5/, out);
    await expectRefused([join(MODELS, 'deepseek_v2'), '--out', out, '--experts-per-layer', '3', '--cpu'], /multiple of n_group = 2/, out);
  });

  it('a missing checkpoint folder or a missing shard names the file', async () => {
    await expectRefused([join(TMP, 'no-such-checkpoint'), '--out', out, '--experts-per-layer', '2', '--cpu'], /no-such-checkpoint/, out);
    const broken = join(TMP, 'broken');
    cpSync(MIXTRAL, broken, { recursive: true });
    rmSync(join(broken, 'model-00002-of-00003.safetensors'));
    await expectRefused([broken, '--out', out, '--experts-per-layer', '2', '--cpu'], /model-00002-of-00003\.safetensors/, out);
  });

  it('an existing non-empty output folder is refused without --force', async () => {
    const taken = join(TMP, 'taken');
    mkdirSync(taken, { recursive: true });
    writeFileSync(join(taken, 'keep-me.txt'), 'mine');
    const io = collect();
    expect(await main(['prune', MIXTRAL, '--out', taken, '--experts-per-layer', '3', '--cpu', '--quiet'], io)).toBe(2);
    expect(io.err().trimEnd().split('\n').at(-1)).toMatch(/exists and is not empty \(use --force/);
    expect(readdirSync(taken)).toEqual(['keep-me.txt']);
    expect(existsSync(`${taken}.partial`)).toBe(false);
  });
});

describe('moe-prune prune: runs', () => {
  it('prunes a fixture into a new folder (--json), leaving no .partial', async () => {
    const out = join(TMP, 'ok');
    const io = collect();
    expect(await main(['prune', MIXTRAL, '--out', out, '--experts-per-layer', '2', '--cpu', '--json'], io)).toBe(0);
    const j = JSON.parse(io.out()) as { out: string; files: Array<{ name: string; bytes: number }>; report: { keptExperts: Record<string, number[]>; expertsPerLayer: { after: number } } };
    expect(j.out).toBe(out);
    expect(j.report.expertsPerLayer.after).toBe(2);
    expect(Object.values(j.report.keptExperts).every((k) => k.length === 2)).toBe(true);
    expect(readdirSync(out).sort()).toEqual(j.files.map((f) => f.name).sort());
    for (const f of ['config.json', 'model.safetensors.index.json', 'prune-report.json', 'README.md', 'tokenizer.json', 'model-00001-of-00003.safetensors'])
      expect(existsSync(join(out, f))).toBe(true);
    expect(JSON.parse(readFileSync(join(out, 'prune-report.json'), 'utf8'))).toEqual(j.report);
    expect(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'))).toMatchObject({ num_local_experts: 2, router_jitter_noise: 0 });
    expect(readFileSync(join(out, 'config.json'), 'utf8')).toContain('"router_jitter_noise": 0.0');
    expect(existsSync(`${out}.partial`)).toBe(false);
    expect(io.err()).toBe('moe-prune: --cpu: computing distances on the CPU\n');
  });

  it('a stale .partial from a killed run is not an output and is replaced by the next run', async () => {
    const out = join(TMP, 'after-kill');
    mkdirSync(`${out}.partial`, { recursive: true });
    writeFileSync(join(`${out}.partial`, 'model-00001-of-00003.safetensors'), 'half a shard');
    expect(existsSync(out)).toBe(false);
    const io = collect();
    expect(await main(['prune', MIXTRAL, '--out', out, '--experts-per-layer', '3', '--cpu', '--quiet'], io)).toBe(0);
    expect(existsSync(`${out}.partial`)).toBe(false);
    expect(readFileSync(join(out, 'model-00001-of-00003.safetensors')).byteLength).toBeGreaterThan(1000);
  });

  it('a cancel during the export (Ctrl-C) leaves neither the output folder nor its .partial', async () => {
    const out = join(TMP, 'cancelled');
    const ac = new AbortController();
    let partialSeen = false;
    const io = collect(ac.signal, (line) => {
      // Progress lines (not --quiet) come from inside the export: the .partial folder exists at that point.
      if (!ac.signal.aborted && line.includes('export')) {
        partialSeen = existsSync(`${out}.partial`);
        ac.abort();
      }
    });
    expect(await main(['prune', MIXTRAL, '--out', out, '--experts-per-layer', '3', '--cpu'], io)).toBe(2);
    expect(partialSeen).toBe(true);
    expect(io.err().trimEnd().split('\n').at(-1)).toBe('cancelled by the user [Cancelled]');
    expect(io.out()).toBe('');
    expect([existsSync(out), existsSync(`${out}.partial`)]).toEqual([false, false]);
  });
});

describe('moe-prune prune: co-activation similarity from calibration text', () => {
  const out = join(TMP, 'coact-refused');
  const calib = join(TMP, 'calib.txt');
  writeFileSync(calib, 'It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife. '.repeat(4));

  it('refuses co-activation without --calib-text and calibration flags without it', async () => {
    await expectRefused([MIXTRAL, '--out', out, '--experts-per-layer', '3', '--similarity', 'coactivation', '--cpu'], /^--similarity coactivation needs --calib-text <file>/, out);
    await expectRefused([MIXTRAL, '--out', out, '--experts-per-layer', '3', '--similarity', 'mixed', '--cpu'], /^--similarity mixed needs --calib-text/, out);
    await expectRefused([MIXTRAL, '--out', out, '--experts-per-layer', '3', '--calib-text', calib, '--cpu'], /--calib-text is only used by --similarity coactivation or mixed/, out);
    await expectRefused([MIXTRAL, '--out', out, '--experts-per-layer', '3', '--mix-weight', '2', '--cpu'], /--mix-weight only applies to --similarity mixed/, out);
    await expectRefused([MIXTRAL, '--out', out, '--experts-per-layer', '3', '--similarity', 'cosine'], /--similarity must be one of router, coactivation, mixed/, out);
    await expectRefused([MIXTRAL, '--out', out, '--experts-per-layer', '3', '--similarity', 'coactivation', '--calib-text', join(TMP, 'nope.txt'), '--cpu'], /nope\.txt/, out);
  });

  it('clusters the pair of experts chosen together most often and records the calibration in the report', async () => {
    const dir = join(TMP, 'coact');
    const io = collect();
    const args = ['prune', MIXTRAL, '--out', dir, '--experts-per-layer', '3', '--similarity', 'coactivation', '--calib-text', calib, '--calib-samples', '3', '--calib-seq-len', '12', '--cpu', '--json'];
    expect(await main(args, io)).toBe(0);
    const j = JSON.parse(io.out()) as { report: { settings: Record<string, unknown>; keptExperts: Record<string, number[]> } };
    expect(j.report.settings).toMatchObject({ similarity: 'coactivation', mode: 'uniform', keepPerLayer: 3, calibration: { text: 'calib.txt', samples: 3, requested_samples: 3, seq_len: 12, tokens: 36 } });
    // Independent count from the reference routing: the removed expert belongs to a pair with the largest a_ij.
    const files = await openNodeFileSet(MIXTRAL);
    const tok = await loadTokenizer(files);
    const windows = windowsOfText(tok, readFileSync(calib, 'utf8'), 'calib.txt', { count: 3, length: 12 });
    const ref = await referenceForward(await openReferenceModel(files), windows.windows, { output: 'nll' });
    for (const r of ref.routing) {
      const a = new Array<number>(16).fill(0);
      for (let t = 0; t < r.experts.length / 2; t++) {
        const [x, y] = [r.experts[2 * t]!, r.experts[2 * t + 1]!];
        a[x * 4 + y]!++;
        a[y * 4 + x]!++;
      }
      const kept = j.report.keptExperts[String(r.layer)]!;
      const removed = [0, 1, 2, 3].filter((e) => !kept.includes(e));
      expect(removed).toHaveLength(1);
      const best = Math.max(...a);
      expect(Math.max(...kept.map((k) => a[removed[0]! * 4 + k]!)), `layer ${r.layer}`).toBe(best);
    }
    const readme = readFileSync(join(dir, 'README.md'), 'utf8');
    expect(readme).toContain('| `similarity` | `"coactivation"` |');
  });

  it('mixed records μ; router runs keep the default settings without a calibration entry', async () => {
    const io = collect();
    const args = ['prune', MIXTRAL, '--out', join(TMP, 'mixed'), '--experts-per-layer', '3', '--similarity', 'mixed', '--mix-weight', '0.5', '--calib-text', calib, '--calib-seq-len', '12', '--cpu', '--json'];
    expect(await main(args, io)).toBe(0);
    const s = (JSON.parse(io.out()) as { report: { settings: Record<string, unknown> } }).report.settings;
    expect(s).toMatchObject({ similarity: 'mixed', mixWeight: 0.5, calibration: { samples: 16, requested_samples: 16, seq_len: 12, tokens: 192 } });
    const io2 = collect();
    expect(await main(['prune', MIXTRAL, '--out', join(TMP, 'router'), '--experts-per-layer', '3', '--cpu', '--json'], io2)).toBe(0);
    const s2 = (JSON.parse(io2.out()) as { report: { settings: Record<string, unknown> } }).report.settings;
    expect(s2).toMatchObject({ similarity: 'router', mixWeight: 1 });
    expect(s2).not.toHaveProperty('calibration');
  });
});
