/**
 * Expert-choice criteria (issue: which experts to drop):
 *  - output similarity (HC-SMoE) on the demo model: GPU time per MoE layer of the probe that runs every expert on
 *    every calibration token and reduces their outputs to the Gram of their sums, against the expert forward pass it
 *    needs — the same E experts' gate/up/SiLU·up/down matmuls over the same tokens, with weights of the same dtype
 *    and shapes, and nothing else;
 *  - NAEE exhaustive search (CPU) per layer: 8 experts keeping 4 (C(8,4) = 70 subsets) and 16 keeping 8 (12 870),
 *    softmax top-2 with renormalisation, on 256 calibration tokens.
 */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { openNodeFileSet } from '../src/cli/node-files.ts';
import type { GpuContext } from '../src/gpu/device.ts';
import { siluMul } from '../src/gpu/kernels/elementwise.ts';
import { outputBuffer } from '../src/gpu/kernels/kernel-args.ts';
import { matmul } from '../src/gpu/kernels/matmul.ts';
import { releaseTensor, uploadTensor, type GpuTensor } from '../src/gpu/tensor.ts';
import { route } from '../src/forward/reference/router.ts';
import { moeSpecAt, type RouterSpec } from '../src/models/arch.ts';
import { exhaustiveChoice, subsetCount } from '../src/prune/experts/exhaustive.ts';
import { PruneJob, resolveJobSettings } from '../src/pipeline/job.ts';
import type { BenchRow } from './run.ts';

const DEMO = fileURLToPath(new URL('../public/demo/', import.meta.url));

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (s * 1103515245 + 12345) >>> 0) / 4294967296 - 0.5);
}

/** BF16 bytes of small random values (the top half of each f32). */
function bf16Random(n: number, seed: number): Uint8Array {
  const r = rng(seed);
  const f = Float32Array.from({ length: n }, () => r() * 0.1);
  const u = new Uint32Array(f.buffer);
  const out = new Uint16Array(n);
  for (let i = 0; i < n; i++) out[i] = u[i]! >>> 16;
  return new Uint8Array(out.buffer);
}

async function outputSimilarityRows(gpu: GpuContext): Promise<BenchRow[]> {
  const job = await PruneJob.open(await openNodeFileSet(`${DEMO}model`), gpu);
  const spec = resolveJobSettings({ calibration: { samples: 16, seqLen: 128 } }).calibration;
  const calib = await job.calibrate({ name: 'calibration.txt', bytes: new Uint8Array(await readFile(`${DEMO}calibration.txt`)) }, spec);
  const engine = await job.engine();
  const { arch } = engine;
  const windows = calib.windows.windows;
  await engine.forward(windows.slice(0, 1), { output: 'none' }); // pipelines compiled before timing
  // The expert forward pass alone: every expert's three matmuls over the same tokens, BF16 weights as the demo's.
  const layer = [...arch.moeLayers][0]!;
  const E = moeSpecAt(arch, layer).router.experts;
  const I = moeSpecAt(arch, layer).intermediate;
  const H = arch.hidden;
  const N = windows.length * calib.spec.seqLen;
  const up = async (shape: [number, number], seed: number): Promise<GpuTensor> => uploadTensor(gpu, bf16Random(shape[0] * shape[1], seed), 'BF16', shape);
  const w = await Promise.all(Array.from({ length: E }, async (_, e) => ({ gate: await up([I, H], 3 * e), up: await up([I, H], 3 * e + 1), down: await up([H, I], 3 * e + 2) })));
  const x = await outputBuffer(gpu, N * H, 'bench x');
  const g = await outputBuffer(gpu, N * I, 'bench gate');
  const u = await outputBuffer(gpu, N * I, 'bench up');
  const a = await outputBuffer(gpu, N * I, 'bench act');
  const F = await outputBuffer(gpu, E * N * H, 'bench outputs');
  const expertPass = async (): Promise<number> => {
    const t = performance.now();
    for (let e = 0; e < E; e++) {
      await matmul(gpu, { x, w: w[e]!.gate, y: g, tokens: N });
      await matmul(gpu, { x, w: w[e]!.up, y: u, tokens: N });
      await siluMul(gpu, g, u, a, N * I);
      await matmul(gpu, { x: a, w: w[e]!.down, y: F, yOffset: e * N * H, yStride: H, tokens: N });
    }
    await gpu.device.queue.onSubmittedWorkDone();
    return performance.now() - t;
  };
  await expertPass();
  // Each layer's probe and a reference pass right after it, so a shared machine's load hits both alike.
  const probeMs: number[] = [];
  const refMs: number[] = [];
  await engine.forward(windows, {
    output: 'none',
    sequential: async (c) => {
      if (!c.moe || !c.expertProbe) return;
      // The layer's own dense pass may still be in the queue: the probe's time starts once it is done.
      await gpu.device.queue.onSubmittedWorkDone();
      const t = performance.now();
      await c.expertProbe(); // reads its results back: the GPU work is done
      probeMs.push(performance.now() - t);
      refMs.push(await expertPass());
    },
  });
  const probe = probeMs.reduce((p, q) => p + q, 0) / probeMs.length;
  const ref = refMs.reduce((p, q) => p + q, 0) / refMs.length;
  for (const t of w) for (const m of [t.gate, t.up, t.down]) releaseTensor(gpu, m);
  for (const v of [x, g, u, a, F]) gpu.pool.release(v.buffer);
  return [
    {
      name: 'output similarity: GPU time per MoE layer (demo model)', value: probe, unit: 'ms', ratio: probe / ref,
      ratioOf: `the expert forward pass it needs, timed right after each layer's probe: ${E} experts' gate/up/down matmuls over the same ${N} tokens, BF16 (${ref.toFixed(1)} ms)`,
      note: `mean of ${probeMs.length} MoE layers, ${windows.length} × ${calib.spec.seqLen} tokens; includes the layer's attention, router and block output`,
    },
  ];
}

function exhaustiveRow(E: number, K: number, T: number): BenchRow {
  const router: RouterSpec = { experts: E, topK: 2, scoring: 'softmax', normTopkProb: true, groups: null, routedScalingFactor: 1, correctionBias: false, jitterEps: 0 };
  const r = rng(E * 7919 + K);
  const H = 64;
  const f = Float32Array.from({ length: E * T * H }, () => r());
  const gram = new Float32Array(T * E * E);
  for (let t = 0; t < T; t++)
    for (let i = 0; i < E; i++)
      for (let j = i; j < E; j++) {
        let s = 0;
        for (let h = 0; h < H; h++) s += f[(i * T + t) * H + h]! * f[(j * T + t) * H + h]!;
        gram[t * E * E + i * E + j] = gram[t * E * E + j * E + i] = s;
      }
  const logits = Float32Array.from({ length: T * E }, () => 3 * r());
  let sumSqRef = 0;
  for (let t = 0; t < T; t++) {
    const ro = route(logits.subarray(t * E, (t + 1) * E), router);
    ro.experts.forEach((a, x) => ro.experts.forEach((b, y) => (sumSqRef += ro.weights[x]! * ro.weights[y]! * gram[t * E * E + a * E + b]!)));
  }
  const rule = { n: E, topK: 2 };
  const t0 = performance.now();
  const c = exhaustiveChoice({ tokens: T, experts: E, logits, gram, sumSqRef, router }, K, rule);
  const ms = performance.now() - t0;
  return {
    name: `exhaustive search: one layer, ${E} experts keeping ${K}`, value: ms, unit: 'ms', ratio: null, ratioOf: '',
    note: `${c.subsets} subsets (C(${E},${K}) = ${subsetCount(K, rule)}) × ${T} tokens, softmax top-2 renormalised, CPU`,
  };
}

export async function benchExpertChoice(gpu: GpuContext): Promise<BenchRow[]> {
  return [...(await outputSimilarityRows(gpu)), exhaustiveRow(8, 4, 256), exhaustiveRow(16, 8, 256)];
}
