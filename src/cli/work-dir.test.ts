import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, expect, it } from 'vitest';
import { describeGpu } from '../../tests/gpu-harness.ts';
import { rejection } from '../../tests/errors.ts';
import { PruneJob, resolveJobSettings, type JobSettingsInput } from '../pipeline/job.ts';
import type { StageTwoResult } from '../pipeline/unstructured.ts';
import { openNodeFileSet } from './node-files.ts';
import { NodeOutputFolder } from './node-output.ts';
import { NodeWorkDir } from './work-dir.ts';

const MODELS = fileURLToPath(new URL('../../fixtures/models', import.meta.url));
const REPO = fileURLToPath(new URL('../..', import.meta.url));
const TMP = mkdtempSync(join(tmpdir(), 'moe-prune-workdir-'));
afterAll(() => rmSync(TMP, { recursive: true, force: true }));
const TEXT = { name: 'calib.txt', bytes: new TextEncoder().encode('a stitch in time saves nine, and many hands make light work of it. '.repeat(30)) };

describeGpu('stage 2 resumes from a work folder after an interruption', (gpu) => {
  async function run(fixture: string, input: JobSettingsInput, workDir: string | null, stopAtLayer: number | null): Promise<{ result: StageTwoResult; shards: Map<string, Buffer> }> {
    const job = await PruneJob.open(await openNodeFileSet(join(MODELS, fixture)), gpu());
    const settings = resolveJobSettings(input);
    const calib = await job.calibrate(TEXT, settings.calibration);
    const plan = await job.planExperts(settings.experts, calib);
    const controller = new AbortController();
    const store = workDir ? await NodeWorkDir.open(workDir, await job.fingerprint(settings, calib)) : undefined;
    const result = await job.unstructured(plan, settings.unstructured!, calib, {
      signal: controller.signal,
      // The mask step of a layer reports when it is done; stopping there loses that layer's output pass.
      onProgress: (p) => {
        if (stopAtLayer !== null && p.phase.endsWith('masks') && p.done === stopAtLayer + 1) controller.abort();
      },
      ...(store ? { progressStore: store } : {}),
    });
    const out = join(TMP, `out-${Math.random().toString(36).slice(2)}`);
    await job.export(new NodeOutputFolder(out, true), { plan, stage2: result, settings, calibration: calib, tool: 'test' });
    const shards = new Map(readdirSync(out).filter((f) => f.endsWith('.safetensors')).map((f) => [f, readFileSync(join(out, f))]));
    return { result, shards };
  }

  it.each([
    { fixture: 'qwen2_moe', input: { experts: { keepPerLayer: 4 }, unstructured: { sparsity: 0.6, scope: 'all' as const }, calibration: { samples: 3, seqLen: 12 } } },
    { fixture: 'deepseek_v2-bf16', input: { experts: { keepPerLayer: 4 }, unstructured: { sparsity: 0.6, method: 'owl' as const }, calibration: { samples: 3, seqLen: 12 } } },
  ])('$fixture: stopped in layer 1, resumed: the same masks, report numbers and shards as an uninterrupted run', async ({ fixture, input }) => {
    const whole = await run(fixture, input, null, null);
    const dir = join(TMP, `work-${fixture}`);
    const stopped = await rejection(run(fixture, input, dir, 1));
    expect(stopped.code).toBe('Cancelled');
    // Layer 0 finished before the stop: its masks and the hidden states entering layer 1 are on disk.
    const job = JSON.parse(readFileSync(join(dir, 'job.json'), 'utf8')) as { layers: unknown[]; hidden: string };
    expect(job.layers).toHaveLength(1);
    expect(readdirSync(dir).sort()).toEqual(['hidden-0.f32', 'job.json', 'masks-0.bin']);
    const resumed = await run(fixture, input, dir, null);
    expect([...resumed.result.masks.keys()].sort()).toEqual([...whole.result.masks.keys()].sort());
    for (const [n, b] of whole.result.masks) expect(Buffer.from(resumed.result.masks.get(n)!.buffer).equals(Buffer.from(b.buffer)), n).toBe(true);
    expect(resumed.result.sparsity).toEqual(whole.result.sparsity);
    expect(resumed.result.owl).toEqual(whole.result.owl);
    expect(resumed.result.unrouted).toEqual(whole.result.unrouted);
    for (const [f, b] of whole.shards) expect(resumed.shards.get(f)!.equals(b), f).toBe(true);
  });

  it('a work folder of another job (other settings) or an unrelated non-empty folder is refused by name', async () => {
    const input = { experts: { keepPerLayer: 4 }, unstructured: { sparsity: 0.5 }, calibration: { samples: 2, seqLen: 12 } };
    const dir = join(TMP, 'work-refuse');
    await rejection(run('mixtral', input, dir, 1));
    const other = await rejection(run('mixtral', { ...input, unstructured: { sparsity: 0.4 } }, dir, null));
    expect(other.message).toMatch(/holds a different job/);
    expect(other.file).toBe(dir);
    const junk = join(TMP, 'junk');
    rmSync(junk, { recursive: true, force: true });
    mkdirSync(junk);
    writeFileSync(join(junk, 'notes.txt'), 'mine');
    expect((await rejection(NodeWorkDir.open(junk, 'x'))).message).toMatch(/holds no moe-prune job \(notes\.txt\)/);
  });
});

describeGpu('moe-prune prune --work-dir: a process killed mid-job', () => {
  // The demo model takes long enough per layer (seconds on a software adapter, weights streamed per layer) that the
  // kill lands between two recorded layers; the test checks that it did.
  const demo = join(REPO, 'public', 'demo', 'model');
  const text = join(REPO, 'public', 'demo', 'calibration.txt');
  const args = (out: string, work: string | null) => [
    join(REPO, 'bin', 'moe-prune.mjs'), 'prune', demo, '--out', out, '--experts-per-layer', '6', '--sparsity', '0.55',
    '--calib-text', text, '--calib-samples', '4', '--calib-seq-len', '64', '--quiet', ...(work ? ['--work-dir', work] : []),
  ];
  const shards = (dir: string) => new Map(readdirSync(dir).filter((f) => f !== 'prune-report.json').map((f) => [f, readFileSync(join(dir, f))]));
  const savedLayers = (work: string): number => {
    try {
      return (JSON.parse(readFileSync(join(work, 'job.json'), 'utf8')) as { layers: unknown[] }).layers.length;
    } catch {
      return 0; // not written yet
    }
  };

  it('SIGKILL after a recorded layer, the same command again: it resumes and writes the shards of an uninterrupted run', { timeout: 600_000 }, async () => {
    const whole = join(TMP, 'kill-whole');
    const r = spawnSync(process.execPath, args(whole, null), { cwd: REPO, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const layers = (JSON.parse(readFileSync(join(demo, 'config.json'), 'utf8')) as { num_hidden_layers: number }).num_hidden_layers;

    const work = join(TMP, 'kill-work');
    const out = join(TMP, 'kill-out');
    const child = spawn(process.execPath, args(out, work), { cwd: REPO, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<NodeJS.Signals | number | null>((resolve) => child.on('exit', (code, signal) => resolve(signal ?? code)));
    let seen = 0;
    for (const t0 = Date.now(); Date.now() - t0 < 300_000 && child.exitCode === null; await new Promise((res) => setTimeout(res, 10))) {
      seen = savedLayers(work);
      if (seen >= 1) break;
    }
    child.kill('SIGKILL');
    expect(await exited, stderr).toBe('SIGKILL');
    const recorded = savedLayers(work);
    expect(recorded).toBeGreaterThanOrEqual(1);
    expect(recorded, 'the kill landed before the last layer').toBeLessThan(layers);
    expect(existsSync(join(out, 'prune-report.json')), 'no finished export from the killed run').toBe(false);

    const again = spawnSync(process.execPath, args(out, work).filter((a) => a !== '--quiet').concat('--force'), { cwd: REPO, encoding: 'utf8' });
    expect(again.status, again.stderr).toBe(0);
    expect(again.stderr).toMatch(new RegExp(`resuming unstructured pruning from layer ${recorded + 1} of ${layers} \\(${recorded} finished layer`));
    expect(savedLayers(work)).toBe(layers);
    const a = shards(whole);
    const b = shards(out);
    expect([...b.keys()].sort()).toEqual([...a.keys()].sort());
    for (const [f, bytes] of a) expect(b.get(f)!.equals(bytes), f).toBe(true);
    const rep = (d: string) => JSON.parse(readFileSync(join(d, 'prune-report.json'), 'utf8')) as Record<string, unknown>;
    expect(rep(out)['sparsity']).toEqual(rep(whole)['sparsity']);
  });
});
