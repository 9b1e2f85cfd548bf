/**
 * `npm run bench`: every benchmark in one run on one adapter, as ratios measured side by side (absolute times
 * on shared software-GPU machines mean little). Prints a table and writes bench/results.json.
 */
import { copyFile, mkdir, open, readdir, rm, writeFile } from 'node:fs/promises';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { openNodeFileSet } from '../src/cli/node-files.ts';
import { closeNodeGpu, openNodeGpu } from '../src/cli/node-gpu.ts';
import { NodeOutputFolder } from '../src/cli/node-output.ts';
import type { GpuContext } from '../src/gpu/device.ts';
import { copyWords } from '../src/gpu/kernels/copy.ts';
import { STORAGE_USAGE } from '../src/gpu/pool.ts';
import { sqdist } from '../src/gpu/kernels/sqdist.ts';
import { uploadTensor, releaseTensor } from '../src/gpu/tensor.ts';
import { catalogueCheckpoint } from '../src/models/catalogue.ts';
import { exportExpertPruned, routerSquaredDistancesGpu, runStageOne, type RouterLayer } from '../src/pipeline/expert-prune.ts';
import { planExpertPruning } from '../src/prune/experts/plan.ts';
import { benchReplan } from './replan-bench.ts';
import { writeSyntheticMixtral } from './synthetic.ts';
import { benchMatmulPeer } from './matmul-peer.ts';
import { benchEngine } from './engine.ts';
import { benchPruneMask } from './prune-mask-bench.ts';
import { benchStageTwo } from './stage2-bench.ts';
import { benchExpertChoice } from './expert-choice-bench.ts';
import { benchTask } from './task-bench.ts';

export interface BenchRow {
  readonly name: string;
  readonly value: number;
  readonly unit: string;
  readonly ratio: number | null;
  readonly ratioOf: string;
  readonly note: string;
}

const WORK = 'bench/.work';

/** The baseline kernel: copy a buffer's words into a scratch buffer and wait for the GPU. */
async function copyThrough(gpu: GpuContext, src: { buffer: GPUBuffer; byteLength: number }): Promise<void> {
  const dst = await gpu.pool.acquire(src.byteLength, STORAGE_USAGE, 'bench copy');
  await copyWords(gpu, src, { buffer: dst, byteLength: src.byteLength }, Math.floor(src.byteLength / 4));
  await gpu.device.queue.onSubmittedWorkDone();
  gpu.pool.release(dst);
}
const now = () => performance.now();

async function timeIt(f: () => Promise<unknown>, repeats = 3): Promise<number> {
  let best = Infinity;
  for (let i = 0; i < repeats; i++) {
    const t = now();
    await f();
    best = Math.min(best, now() - t);
  }
  return best;
}

function randomRouters(layers: number, n: number, d: number): RouterLayer[] {
  let s = 12345;
  const r = () => ((s = (s * 1103515245 + 12345) >>> 0) / 4294967296 - 0.5) * 0.05;
  return Array.from({ length: layers }, (_, layer) => {
    const rows = new Float32Array(n * d);
    for (let i = 0; i < rows.length; i++) rows[i] = r();
    return { layer, n, d, rows };
  });
}

/** Stage 1 on an Arctic-sized router (35 layers × 128 experts × 7168 hidden): GPU distances + clustering. */
async function benchStageOne(gpu: GpuContext): Promise<BenchRow[]> {
  const routers = randomRouters(35, 128, 7168);
  const t0 = now();
  const sq = await routerSquaredDistancesGpu(gpu, routers); // reads results back, so the GPU work is done
  const t1 = now();
  // Arctic routes top-2 with no groups.
  const inputs = routers.map((r, i) => ({ layer: r.layer, n: r.n, d: r.d, topK: 2, routerRows: r.rows, squaredDistances: sq[i]! }));
  const plan = planExpertPruning(inputs, { mode: 'global', targetTotal: 3570, normalize: false });
  const t2 = now();
  // Baseline: the same router bytes through a plain copy kernel, one layer at a time.
  const copyMs = await timeIt(async () => {
    for (const r of routers) {
      const t = await uploadTensor(gpu, new Uint8Array(r.rows.buffer), 'F32', [r.n, r.d]);
      await copyThrough(gpu, t.parts[0]!);
      releaseTensor(gpu, t);
    }
  }, 1);
  return [
    { name: 'stage 1: router distances (GPU), Arctic-sized', value: (t1 - t0) / 1000, unit: 's', ratio: (t1 - t0) / copyMs, ratioOf: 'upload + plain copy kernel of the same router bytes', note: '35 layers × 128 experts × 7168' },
    { name: 'stage 1: clustering + global τ search', value: (t2 - t1) / 1000, unit: 's', ratio: null, ratioOf: '', note: `kept ${plan.totalKept} of ${plan.totalExperts} (target 3570)` },
  ];
}

/** Export throughput on a synthetic sharded bf16 checkpoint vs plain file copy of the same shards. */
async function benchExport(gpu: GpuContext): Promise<BenchRow[]> {
  const src = join(WORK, 'synthetic');
  await rm(WORK, { recursive: true, force: true });
  const { bytes } = await writeSyntheticMixtral(src, { layers: 4, experts: 8, hidden: 512, intermediate: 1024, vocab: 4096, topK: 2, shardBytes: 32 << 20 });
  const files = await openNodeFileSet(src);
  const cat = await catalogueCheckpoint(files);
  const stage = await runStageOne(cat, { mode: 'uniform', keepPerLayer: 4, normalize: false }, gpu);
  const shards = (await readdir(src)).filter((f) => f.endsWith('.safetensors'));
  const copyMs = await timeIt(async () => {
    await mkdir(join(WORK, 'copy'), { recursive: true });
    for (const f of shards) await copyFile(join(src, f), join(WORK, 'copy', f));
  });
  // A second baseline: the same bytes read and written in 8 MiB pieces from JS, as the export does; copyFile may
  // copy inside the kernel (copy_file_range, reflinks), which no export that edits tensors can match.
  const streamMs = await timeIt(async () => {
    await mkdir(join(WORK, 'stream'), { recursive: true });
    const buf = new Uint8Array(8 << 20);
    for (const f of shards) {
      const [from, to] = [await open(join(src, f), 'r'), await open(join(WORK, 'stream', f), 'w')];
      for (let n; (n = (await from.read(buf, 0, buf.byteLength)).bytesRead) > 0; ) await to.write(buf, 0, n);
      await Promise.all([from.close(), to.close()]);
    }
  });
  let outBytes = 0;
  const exportMs = await timeIt(async () => {
    const r = await exportExpertPruned(cat, files, stage.plan, new NodeOutputFolder(join(WORK, 'out'), true), { tool: 'bench', settings: {} });
    outBytes = r.tensorBytes;
  });
  const copyMBps = bytes / 2 ** 20 / (copyMs / 1000);
  const streamMBps = bytes / 2 ** 20 / (streamMs / 1000);
  const exportMBps = outBytes / 2 ** 20 / (exportMs / 1000);
  await rm(WORK, { recursive: true, force: true });
  const note = `${(bytes / 2 ** 20).toFixed(0)} MiB in, 8 → 4 experts; best of 3`;
  return [
    { name: 'export: pruned checkpoint written', value: exportMBps, unit: 'MB/s', ratio: exportMBps / copyMBps, ratioOf: 'plain file copy of the input shards (fs.copyFile, MB/s)', note },
    { name: 'export: pruned checkpoint written', value: exportMBps, unit: 'MB/s', ratio: exportMBps / streamMBps, ratioOf: 'the input shards read and written in 8 MiB pieces from JS (MB/s)', note },
  ];
}

/** Our reduction kernel (router sqdist) vs the plain copy kernel over the same bytes: kernel overhead on this adapter. */
async function benchKernels(gpu: GpuContext): Promise<BenchRow[]> {
  const [r] = randomRouters(1, 256, 4096);
  const t = await uploadTensor(gpu, new Uint8Array(r!.rows.buffer), 'F32', [256, 4096]);
  const sqMs = await timeIt(async () => {
    const v = await sqdist(gpu, t);
    await gpu.device.queue.onSubmittedWorkDone();
    gpu.pool.release(v.buffer);
  });
  const cpMs = await timeIt(() => copyThrough(gpu, t.parts[0]!));
  releaseTensor(gpu, t);
  const gflops = (256 * 256 * 4096 * 3) / (sqMs / 1000) / 1e9;
  const mm = await benchMatmulPeer(gpu, 128, 1024, 1024, 3);
  const shape = `${mm.shape.tokens}×${mm.shape.in} · (${mm.shape.out}×${mm.shape.in})ᵀ`;
  return [
    { name: `kernel: linear matmul, BF16 weights`, value: mm.oursBf16Gflops, unit: 'GFLOP/s', ratio: mm.oursBf16Gflops / mm.peerGflops, ratioOf: 'tfjs-backend-webgpu matMul (f32) on the same device', note: shape },
    { name: `kernel: linear matmul, F32 weights`, value: mm.oursF32Gflops, unit: 'GFLOP/s', ratio: mm.oursF32Gflops / mm.peerGflops, ratioOf: 'tfjs-backend-webgpu matMul (f32) on the same device', note: `${shape}; peer ${mm.peerGflops.toFixed(2)} GFLOP/s` },
    { name: 'kernel: sqdist 256×4096', value: gflops, unit: 'GFLOP/s', ratio: sqMs / cpMs, ratioOf: 'time of a plain copy kernel over the same 4 MiB', note: '' },
  ];
}

/** Calibration pass throughput and memory at 4 and 16 layers of equal size. */
async function benchForward(gpu: GpuContext): Promise<BenchRow[]> {
  await rm(WORK, { recursive: true, force: true });
  const a = await benchEngine(gpu, WORK, 4);
  const b = await benchEngine(gpu, WORK, 16);
  await rm(WORK, { recursive: true, force: true });
  const mib = (x: number) => `${(x / 2 ** 20).toFixed(1)} MiB`;
  return [
    { name: 'forward: calibration pass (stats + NLL), 16 layers', value: b.tokensPerSecond, unit: 'tokens/s', ratio: b.tokensPerSecond / a.tokensPerSecond, ratioOf: 'tokens/s of the 4-layer model (≈ 4/16 = 0.25 expected: work per token grows with depth)', note: `${b.tokens} tokens, hidden 256, 8 experts` },
    { name: 'forward: peak GPU memory, 16 vs 4 layers', value: b.peakGpuBytes / 2 ** 20, unit: 'MiB', ratio: b.peakGpuBytes / a.peakGpuBytes, ratioOf: `peak at 4 layers (${mib(a.peakGpuBytes)}); weights on disk grow ${(b.checkpointBytes / a.checkpointBytes).toFixed(1)}×`, note: 'buffer pool peak' },
    { name: 'forward: peak JS heap, 16 vs 4 layers', value: b.peakJsHeapBytes / 2 ** 20, unit: 'MiB', ratio: b.peakJsHeapBytes / a.peakJsHeapBytes, ratioOf: `peak at 4 layers (${mib(a.peakJsHeapBytes)})`, note: '' },
  ];
}

export async function runNodeBenchmarks(): Promise<{ adapter: string; rows: BenchRow[] }> {
  const gpu = await openNodeGpu();
  try {
    const rows = [
      ...(await benchKernels(gpu)), ...(await benchPruneMask(gpu, copyThrough)), ...(await benchStageOne(gpu)), ...benchReplan(), ...(await benchExport(gpu)),
      ...(await benchForward(gpu)), ...(await benchStageTwo(gpu)), ...(await benchExpertChoice(gpu)), ...(await benchTask(gpu)),
    ];
    return { adapter: gpu.adapter.label, rows };
  } finally {
    closeNodeGpu(gpu);
  }
}

export function formatTable(rows: readonly BenchRow[]): string {
  const head = '| benchmark | value | ratio | ratio of |\n|---|---|---|---|';
  const body = rows.map((r) => `| ${r.name}${r.note ? ` (${r.note})` : ''} | ${r.value.toFixed(r.value < 10 ? 2 : 1)} ${r.unit} | ${r.ratio === null ? '—' : r.ratio.toFixed(2)} | ${r.ratioOf || '—'} |`);
  return [head, ...body].join('\n');
}

export function machine(): Record<string, unknown> {
  return { cpus: cpus().length, cpuModel: cpus()[0]?.model, memoryGiB: Math.round(totalmem() / 2 ** 30), node: process.version, platform: process.platform };
}

export async function writeResults(path: string, data: unknown): Promise<void> {
  await writeFile(path, JSON.stringify(data, null, 2) + '\n');
}

/** Opt-in (`npm run bench -- --scale`): the whole stage-1 job on a 6.33 GB checkpoint; see scale-bench.ts. */
export { benchScale } from './scale-bench.ts';
