import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { main, type CliIo } from './main.ts';

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
