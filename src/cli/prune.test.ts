import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { openReferenceModel, referenceForward } from '../forward/reference/forward.ts';
import { loadTokenizer } from '../eval/tokenizer.ts';
import { windowsOfText } from '../eval/windows.ts';
import { main } from './main.ts';
import { openNodeFileSet } from './node-files.ts';
import { rawTensors } from '../../tests/export-helpers.ts';
import type { PruneReport } from '../export/report.ts';
import { collectIo, expectRefused } from '../../tests/cli-io.ts';

const MODELS = fileURLToPath(new URL('../../fixtures/models', import.meta.url));
const MIXTRAL = join(MODELS, 'mixtral');
const TMP = mkdtempSync(join(tmpdir(), 'moe-prune-cli-'));
afterAll(() => rmSync(TMP, { recursive: true, force: true }));

describe('moe-prune prune: refusals (exit 2, one stderr line)', () => {
  const out = join(TMP, 'refused');

  it('bad flags', async () => {
    await expectRefused('prune', [MIXTRAL, '--out', out, '--experts-per-layer', '2', '--yaml'], /unknown option "--yaml"/, out);
    await expectRefused('prune', [MIXTRAL, '--experts-per-layer', '2'], /usage: moe-prune prune/, out);
    await expectRefused('prune', [MIXTRAL, '--out', out], /give --experts-per-layer K or --expert-sparsity E \(expert pruning\), --sparsity S or --nm N:M/, out);
    await expectRefused('prune', [MIXTRAL, '--out', out, '--experts-per-layer', '2', '--expert-sparsity', '0.5'], /at most one of/, out);
    await expectRefused('prune', [MIXTRAL, '--out', out, '--experts-per-layer', 'two'], /--experts-per-layer.*positive integer/, out);
    await expectRefused('prune', [MIXTRAL, '--out', out, '--experts-per-layer', '2', '--reconstruct', 'mean'], /--reconstruct/, out);
    await expectRefused('prune', [MIXTRAL, '--out', out, '--experts-per-layer', '2', '--mode', 'global'], /--mode global takes --expert-sparsity/, out);
  });

  it('stage-2 flags that contradict each other or miss what they need', async () => {
    const calib = join(TMP, 'calib-refusals.txt');
    writeFileSync(calib, 'one two three four five six seven eight nine ten '.repeat(20));
    await expectRefused('prune', [MIXTRAL, '--out', out, '--sparsity', '0.5'], /--method wanda needs --calib-text/, out);
    await expectRefused('prune', [MIXTRAL, '--out', out, '--sparsity', '0.5', '--nm', '2:4', '--calib-text', calib], /either --sparsity or --nm/, out);
    await expectRefused('prune', [MIXTRAL, '--out', out, '--nm', '4:4', '--calib-text', calib], /1 ≤ n < m/, out);
    await expectRefused('prune', [MIXTRAL, '--out', out, '--method', 'owl', '--experts-per-layer', '2'], /--method belongs to unstructured pruning/, out);
    await expectRefused('prune', [MIXTRAL, '--out', out, '--sparsity', '0.5', '--owl-m', '3', '--calib-text', calib], /--owl-m only applies to --method owl/, out);
    await expectRefused('prune', [MIXTRAL, '--out', out, '--sparsity', '0.5', '--method', 'magnitude', '--calib-text', calib], /--calib-text is only used by/, out);
    await expectRefused('prune', [MIXTRAL, '--out', out, '--sparsity', '0.5', '--method', 'magnitude', '--cpu'], /runs on a WebGPU adapter/, out);
    await expectRefused('prune', [MIXTRAL, '--out', out, '--sparsity', '0.5', '--scope', 'everything', '--method', 'magnitude'], /--scope must be one of experts, experts\+shared, all/, out);
    await expectRefused('prune', [MIXTRAL, '--out', out, '--experts-per-layer', '2', '--sparsity', '0.3', '--calib-text', calib], /total sparsity 0\.3 is below what expert pruning alone removes \(0\.5000/, out);
  });

  it('K below top-k, K above the expert count, K breaking grouped routing', async () => {
    await expectRefused('prune', [MIXTRAL, '--out', out, '--experts-per-layer', '1', '--cpu'], /^layer 0: keeping 1 experts is below the router's top-k floor of 2 \[InvalidPlan\]$/, out);
    await expectRefused('prune', [MIXTRAL, '--out', out, '--experts-per-layer', '5', '--cpu'], /\[1, 4\], got 5/, out);
    await expectRefused('prune', [join(MODELS, 'deepseek_v2'), '--out', out, '--experts-per-layer', '3', '--cpu'], /multiple of n_group = 2/, out);
  });

  it('a missing checkpoint folder or a missing shard names the file', async () => {
    await expectRefused('prune', [join(TMP, 'no-such-checkpoint'), '--out', out, '--experts-per-layer', '2', '--cpu'], /no-such-checkpoint/, out);
    const broken = join(TMP, 'broken');
    cpSync(MIXTRAL, broken, { recursive: true });
    rmSync(join(broken, 'model-00002-of-00003.safetensors'));
    await expectRefused('prune', [broken, '--out', out, '--experts-per-layer', '2', '--cpu'], /model-00002-of-00003\.safetensors/, out);
  });

  it('an existing non-empty output folder is refused without --force', async () => {
    const taken = join(TMP, 'taken');
    mkdirSync(taken, { recursive: true });
    writeFileSync(join(taken, 'keep-me.txt'), 'mine');
    const io = collectIo();
    expect(await main(['prune', MIXTRAL, '--out', taken, '--experts-per-layer', '3', '--cpu', '--quiet'], io)).toBe(2);
    expect(io.err().trimEnd().split('\n').at(-1)).toMatch(/exists and is not empty \(use --force/);
    expect(readdirSync(taken)).toEqual(['keep-me.txt']);
    expect(existsSync(`${taken}.partial`)).toBe(false);
  });
});

describe('moe-prune prune: runs', () => {
  it('prunes a fixture into a new folder (--json), leaving no .partial', async () => {
    const out = join(TMP, 'ok');
    const io = collectIo();
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
    const io = collectIo();
    expect(await main(['prune', MIXTRAL, '--out', out, '--experts-per-layer', '3', '--cpu', '--quiet'], io)).toBe(0);
    expect(existsSync(`${out}.partial`)).toBe(false);
    expect(readFileSync(join(out, 'model-00001-of-00003.safetensors')).byteLength).toBeGreaterThan(1000);
  });

  it('a cancel during the export (Ctrl-C) leaves neither the output folder nor its .partial', async () => {
    const out = join(TMP, 'cancelled');
    const ac = new AbortController();
    let partialSeen = false;
    const io = collectIo({
      signal: ac.signal,
      onErr: (line) => {
        // Progress lines (not --quiet) come from inside the export: the .partial folder exists at that point.
        if (!ac.signal.aborted && line.includes('export')) {
          partialSeen = existsSync(`${out}.partial`);
          ac.abort();
        }
      },
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
    await expectRefused('prune', [MIXTRAL, '--out', out, '--experts-per-layer', '3', '--similarity', 'coactivation', '--cpu'], /^--similarity coactivation needs --calib-text <file>/, out);
    await expectRefused('prune', [MIXTRAL, '--out', out, '--experts-per-layer', '3', '--similarity', 'mixed', '--cpu'], /^--similarity mixed needs --calib-text/, out);
    await expectRefused('prune', [MIXTRAL, '--out', out, '--experts-per-layer', '3', '--calib-text', calib, '--cpu'], /--calib-text is only used by --similarity coactivation or mixed/, out);
    await expectRefused('prune', [MIXTRAL, '--out', out, '--experts-per-layer', '3', '--mix-weight', '2', '--cpu'], /--mix-weight only applies to --similarity mixed/, out);
    await expectRefused('prune', [MIXTRAL, '--out', out, '--experts-per-layer', '3', '--similarity', 'cosine'], /--similarity must be one of router, coactivation, mixed/, out);
    await expectRefused('prune', [MIXTRAL, '--out', out, '--experts-per-layer', '3', '--similarity', 'coactivation', '--calib-text', join(TMP, 'nope.txt'), '--cpu'], /nope\.txt/, out);
  });

  it('clusters the pair of experts chosen together most often and records the calibration in the report', async () => {
    const dir = join(TMP, 'coact');
    const io = collectIo();
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
    const io = collectIo();
    const args = ['prune', MIXTRAL, '--out', join(TMP, 'mixed'), '--experts-per-layer', '3', '--similarity', 'mixed', '--mix-weight', '0.5', '--calib-text', calib, '--calib-seq-len', '12', '--cpu', '--json'];
    expect(await main(args, io)).toBe(0);
    const s = (JSON.parse(io.out()) as { report: { settings: Record<string, unknown> } }).report.settings;
    expect(s).toMatchObject({ similarity: 'mixed', mixWeight: 0.5, calibration: { samples: 16, requested_samples: 16, seq_len: 12, tokens: 192 } });
    const io2 = collectIo();
    expect(await main(['prune', MIXTRAL, '--out', join(TMP, 'router'), '--experts-per-layer', '3', '--cpu', '--json'], io2)).toBe(0);
    const s2 = (JSON.parse(io2.out()) as { report: { settings: Record<string, unknown> } }).report.settings;
    expect(s2).toMatchObject({ similarity: 'router', mixWeight: 1 });
    expect(s2['calibration']).toBeNull();
  });
});

describe('moe-prune prune: stage 2 and repeating a run from its report', () => {
  it('STUN (K = 3, Wanda) writes zeros where the report says, and --from-report repeats it byte for byte', async () => {
    const calib = join(TMP, 'stage2-calib.txt');
    writeFileSync(calib, 'the quick brown fox jumps over the lazy dog and then some more words follow here '.repeat(30));
    const first = join(TMP, 'stage2-a');
    const io = collectIo();
    const args = [MIXTRAL, '--out', first, '--experts-per-layer', '3', '--sparsity', '0.6', '--calib-text', calib, '--calib-samples', '3', '--calib-seq-len', '12', '--json'];
    expect(await main(['prune', ...args], io)).toBe(0);
    const report = (JSON.parse(io.out()) as { report: PruneReport }).report;
    const sp = report.sparsity!;
    expect(sp.expert).toBeCloseTo(0.25, 12);
    expect(sp.unstructured).toBeCloseTo((0.6 - 0.25) / 0.75, 12);
    // Each row drops ⌊in · s_u⌋: 14 of 32 (gate/up, in = hidden) and 7 of 16 (down, in = intermediate), both 0.4375.
    expect(sp.achieved).toBeCloseTo(0.25 + 0.75 * (14 / 32), 12);
    expect(report.params.nonzeroAfter).toBe(report.params.after - sp.counts.zeros);
    expect(report.settings).toMatchObject({ keepPerLayer: 3, unstructured: { method: 'wanda', sparsity: 0.6, scope: 'experts', unrouted: 'all-tokens', nm: null }, calibration: { sampling: 'first', samples: 3, seq_len: 12 } });
    expect((report.settings['calibration'] as { sha256: string }).sha256).toMatch(/^[0-9a-f]{64}$/);
    // Zeros in the files: per expert matrix of the export, the count stage 2 reports (plus none elsewhere).
    const shards = readdirSync(first).filter((f) => f.endsWith('.safetensors')).sort();
    let zeros = 0;
    for (const f of shards)
      for (const [name, t] of rawTensors(new Uint8Array(readFileSync(join(first, f))))) {
        const v = new Float32Array(t.bytes.slice().buffer);
        const z = v.filter((x) => x === 0).length;
        if (!name.includes('.experts.')) expect(z, name).toBe(0);
        zeros += z;
      }
    expect(zeros).toBe(sp.counts.zeros);
    // The report alone (and the same calibration text beside it) repeats the run.
    copyFileSync(calib, join(first, 'stage2-calib.txt'));
    const second = join(TMP, 'stage2-b');
    const io2 = collectIo();
    expect(await main(['prune', MIXTRAL, '--out', second, '--from-report', join(first, 'prune-report.json'), '--quiet'], io2)).toBe(0);
    for (const f of shards) expect(readFileSync(join(second, f)).equals(readFileSync(join(first, f))), f).toBe(true);
    // A different text under the same name is refused by its digest; shaping flags cannot be mixed in.
    writeFileSync(join(first, 'stage2-calib.txt'), 'something else entirely '.repeat(40));
    await expectRefused('prune', [MIXTRAL, '--out', join(TMP, 'stage2-c'), '--from-report', join(first, 'prune-report.json')], /not the calibration text the report was made with/);
    await expectRefused('prune', [MIXTRAL, '--out', join(TMP, 'stage2-c'), '--from-report', join(first, 'prune-report.json'), '--sparsity', '0.5'], /drop --sparsity/);
  });
});

describe('moe-prune prune: seeded random calibration windows', () => {
  it('are recorded in the report and repeated by --from-report', async () => {
    const calib = join(TMP, 'random-calib.txt');
    writeFileSync(calib, 'every window may start anywhere in this text, drawn from a seeded generator. '.repeat(30));
    const first = join(TMP, 'random-a');
    const io = collectIo();
    const args = [MIXTRAL, '--out', first, '--sparsity', '0.5', '--calib-text', calib, '--calib-samples', '3', '--calib-seq-len', '12', '--calib-sampling', 'random', '--calib-seed', '7', '--json'];
    expect(await main(['prune', ...args], io)).toBe(0);
    const report = (JSON.parse(io.out()) as { report: PruneReport }).report;
    expect(report.settings['calibration']).toMatchObject({ sampling: 'random', seed: 7, samples: 3 });
    copyFileSync(calib, join(first, 'random-calib.txt'));
    const second = join(TMP, 'random-b');
    expect(await main(['prune', MIXTRAL, '--out', second, '--from-report', join(first, 'prune-report.json'), '--quiet'], collectIo())).toBe(0);
    for (const f of readdirSync(first).filter((x) => x.endsWith('.safetensors'))) expect(readFileSync(join(second, f)).equals(readFileSync(join(first, f))), f).toBe(true);
    await expectRefused('prune', [MIXTRAL, '--out', join(TMP, 'random-c'), '--sparsity', '0.5', '--calib-text', calib, '--calib-seed', '7'], /--calib-seed only applies to --calib-sampling random/);
  });
});
