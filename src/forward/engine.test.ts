import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { describeGpu } from '../../tests/gpu-harness.ts';
import { openNodeFileSet } from '../cli/node-files.ts';
import { MoePruneError } from '../core/errors.ts';
import { openSafetensors } from '../formats/safetensors/reader.ts';
import { perplexity, referenceNll } from '../eval/perplexity.ts';
import { openReferenceModel, referenceForward, type ForwardResult, type ReferenceModel } from './reference/forward.ts';
import { overlayWeights } from './reference/weights.ts';
import { GpuForwardEngine, type GpuForwardResult } from './engine.ts';
import { gpuPerplexity } from '../eval/gpu-perplexity.ts';
import { expertPlanEdits, referencePlan } from './plan.ts';
import { calibrationStatsFromJson, calibrationStatsToJson } from './stats.ts';

const REPO = join(import.meta.dirname, '..', '..');
const MODELS = join(REPO, 'fixtures', 'models');
const FIXTURES = existsSync(MODELS) ? readdirSync(MODELS).filter((d) => existsSync(join(MODELS, d, 'config.json'))).sort() : [];
const WINDOWS = [
  [1, 17, 42, 5, 99, 23, 64, 8, 3, 77, 120, 56],
  [1, 100, 7, 45, 88, 12, 63, 27, 110, 4, 9, 71],
];

/** max |a − b| / max |b| per row of `width`. */
function rowRelErr(a: Float32Array, b: Float32Array, width: number): number {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let r = 0; r < a.length / width; r++) {
    let scale = 0;
    let diff = 0;
    for (let i = r * width; i < (r + 1) * width; i++) {
      scale = Math.max(scale, Math.abs(b[i]!));
      diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    }
    worst = Math.max(worst, diff / Math.max(scale, 1e-30));
  }
  return worst;
}

function sameRouting(gpu: GpuForwardResult, ref: ForwardResult): void {
  expect(gpu.routing.map((r) => r.layer)).toEqual(ref.routing.map((r) => r.layer));
  gpu.routing.forEach((g, i) => {
    const r = ref.routing[i]!;
    expect(Array.from(g.experts)).toEqual(Array.from(r.experts));
    expect(rowRelErr(g.weights, r.weights, g.topK)).toBeLessThan(1e-4);
    expect(rowRelErr(g.logits, r.logits, g.logits.length / (WINDOWS.length * WINDOWS[0]!.length))).toBeLessThan(1e-4);
  });
}

describeGpu('GPU forward engine vs the CPU reference', (gpu) => {
  it.each(FIXTURES)('%s: logits, NLL and routing', async (name) => {
    const files = await openNodeFileSet(join(MODELS, name));
    const ref = await referenceForward(await openReferenceModel(files), WINDOWS, { output: 'both' });
    const engine = await GpuForwardEngine.open(gpu(), files);
    const res = await engine.forward(WINDOWS, { output: 'both', routing: true });
    expect(rowRelErr(res.logits!, ref.logits!, engine.arch.vocab)).toBeLessThan(1e-4);
    for (let i = 0; i < ref.nll!.length; i++) expect(Math.abs(res.nll![i]! - ref.nll![i]!)).toBeLessThan(1e-4 * Math.max(1, ref.nll![i]!));
    sameRouting(res, ref);
    expect(res.layers).toHaveLength(engine.arch.layers);
    expect(res.peakLayerWeightBytes).toBeGreaterThan(0);
  });

  it('statistics match the reference observer (input norms, router summary, counts, co-activation)', async () => {
    for (const name of ['qwen2_moe', 'deepseek_v3', 'qwen3_moe-fused', 'arctic']) {
      const files = await openNodeFileSet(join(MODELS, name));
      const sums = new Map<string, { rows: number; s: Float64Array }>();
      const ref = await referenceForward(await openReferenceModel(files), WINDOWS, {
        output: 'logits',
        observer: {
          linearInput: (t, x, rows, inDim) => {
            let a = sums.get(t);
            if (!a) sums.set(t, (a = { rows: 0, s: new Float64Array(inDim) }));
            a.rows += rows;
            for (let r = 0; r < rows; r++) for (let c = 0; c < inDim; c++) a.s[c]! += x[r * inDim + c]! ** 2;
          },
        },
      });
      const engine = await GpuForwardEngine.open(gpu(), files);
      const res = await engine.forward(WINDOWS, { output: 'none', stats: true });
      expect(res.logits).toBeNull();
      const stats = calibrationStatsFromJson(JSON.parse(JSON.stringify(calibrationStatsToJson(res.stats!))));
      for (const [t, want] of sums) {
        if (t.endsWith('lm_head.weight')) continue;
        const got = stats.inputNorms[t];
        expect(got, `${name}: ${t}`).toBeDefined();
        expect(got!.rows, t).toBe(want.rows);
        expect(rowRelErr(got!.sumSq, Float32Array.from(want.s), want.s.length), t).toBeLessThan(1e-4);
      }
      expect(stats.moeLayers.map((l) => l.layer)).toEqual(ref.routing.map((r) => r.layer));
      for (const [i, l] of stats.moeLayers.entries()) {
        const r = ref.routing[i]!;
        const E = l.experts;
        const N = r.experts.length / r.topK;
        const count = new Uint32Array(E);
        const co = new Uint32Array(E * E);
        for (let t = 0; t < N; t++)
          for (let a = 0; a < r.topK; a++) {
            count[r.experts[t * r.topK + a]!]!++;
            for (let b = 0; b < r.topK; b++) if (a !== b) co[r.experts[t * r.topK + a]! * E + r.experts[t * r.topK + b]!]!++;
          }
        for (let e = 0; e < E; e++) co[e * E + e] = count[e]!;
        expect(Array.from(l.tokensPerExpert)).toEqual(Array.from(count));
        expect(Array.from(l.coactivation)).toEqual(Array.from(co));
        expect(l.unrouted).toEqual(Array.from(count.entries()).filter(([, c]) => c === 0).map(([e]) => `model.layers.${l.layer}.${engine.arch.names.moeBlock}.experts.${e}`));
        for (let e = 0; e < E; e++) {
          const z = Array.from({ length: N }, (_, t) => r.logits[t * E + e]!);
          const mean = z.reduce((a, b) => a + b, 0) / N;
          const std = Math.sqrt(z.reduce((a, b) => a + (b - mean) ** 2, 0) / N);
          expect(l.routerLogits.mean[e]).toBeCloseTo(mean, 4);
          expect(l.routerLogits.std[e]).toBeCloseTo(std, 4);
          expect(l.routerLogits.max[e]).toBeCloseTo(Math.max(...z), 4);
        }
      }
    }
  });

  it('chunks of one window, spilled hidden states and weights split in parts give the same result', async () => {
    const files = await openNodeFileSet(join(MODELS, 'deepseek_v2-bf16'));
    const engine = await GpuForwardEngine.open(gpu(), files);
    const a = await engine.forward(WINDOWS, { output: 'both', routing: true });
    const b = await engine.forward(WINDOWS, { output: 'both', routing: true, chunkWindows: 1, budgets: { hiddenBytes: 0, headBytes: 1000 }, maxBindingBytes: 512 });
    expect(b.chunkWindows).toBe(1);
    expect(b.hiddenSpilled).toBe(true);
    expect(rowRelErr(b.logits!, a.logits!, engine.arch.vocab)).toBeLessThan(1e-5);
    b.routing.forEach((r, i) => expect(Array.from(r.experts)).toEqual(Array.from(a.routing[i]!.experts)));
  });

  it('deepseek_v3-fp8 is uploaded as stored (FP8 bytes + f32 block scales) and splits into parts inside scale blocks', async () => {
    const files = await openNodeFileSet(join(MODELS, 'deepseek_v3-fp8'));
    const engine = await GpuForwardEngine.open(gpu(), files);
    const a = await engine.forward(WINDOWS, { output: 'both', routing: true });
    // Layer 0 is dense, so every one of its tensors is uploaded: exactly their stored bytes (fp8 weights, f32
    // scale_inv, bf16 norms), no CPU-widened copy.
    let stored = 0;
    for (const shard of files.names().filter((n) => n.endsWith('.safetensors'))) {
      const st = await openSafetensors(files.get(shard)!);
      for (const name of st.tensors.keys()) if (name.startsWith('model.layers.0.')) stored += st.info(name).byteLength;
    }
    expect(a.layers[0]!.weightBytes).toBe(stored);
    // Rows of 160 fp8 bytes, parts of 2 rows: part boundaries fall inside the 128-row scale blocks.
    const b = await engine.forward(WINDOWS, { output: 'both', routing: true, chunkWindows: 1, maxBindingBytes: 320 });
    expect(rowRelErr(b.logits!, a.logits!, engine.arch.vocab)).toBeLessThan(1e-5);
    b.routing.forEach((r, i) => expect(Array.from(r.experts)).toEqual(Array.from(a.routing[i]!.experts)));
  });

  it('a plan applies on the fly: removed experts, merged experts and masks equal the reference on rewritten weights', async () => {
    const files = await openNodeFileSet(join(MODELS, 'mixtral'));
    const model = await openReferenceModel(files);
    const engine = await GpuForwardEngine.open(gpu(), files);
    // Layer 0: expert 3 removed; layer 1: experts 0 and 2 merged into 0 (2 removed). One weight masked out.
    const plan = expertPlanEdits([
      { layer: 0, kept: [0, 1, 2], removed: [3], merges: [] },
      { layer: 1, kept: [0, 1, 3], removed: [2], merges: [{ slot: 0, members: [0, 2] }] },
    ]);
    const maskName = 'model.layers.0.self_attn.q_proj.weight';
    const [out, inp] = model.weights.shape(maskName)! as [number, number];
    const mask = new Uint32Array(Math.ceil((out * inp) / 32)).fill(0xffffffff);
    for (const e of [0, 5, 33, 100]) mask[e >>> 5]! &= ~(1 << (e & 31));
    const masked = { ...plan, mask: (t: string) => (t === maskName ? mask : undefined) };
    const blk = 'model.layers.1.block_sparse_moe';
    const rewritten: ReferenceModel = {
      arch: model.arch,
      weights: overlayWeights(model.weights, async (t, v) => {
        const mean = async (a: string, b: string) => {
          const x = await model.weights.read(a);
          const y = await model.weights.read(b);
          return x.map((q, i) => (q + y[i]!) * 0.5);
        };
        if (t === maskName) return v.map((q, i) => ((mask[i >>> 5]! >>> (i & 31)) & 1 ? q : 0));
        for (const p of ['w1', 'w2', 'w3']) if (t === `${blk}.experts.0.${p}.weight`) return mean(t, `${blk}.experts.2.${p}.weight`);
        if (t === `${blk}.gate.weight`) {
          const H = model.arch.hidden;
          const out2 = v.slice();
          for (let i = 0; i < H; i++) out2[i] = (v[i]! + v[2 * H + i]!) * 0.5;
          return out2;
        }
        return v;
      }),
    };
    const removedExperts = (l: number) => (l === 0 ? new Set([3]) : new Set([2]));
    const ref = await referenceForward(rewritten, WINDOWS, { output: 'both', removedExperts });
    const res = await engine.forward(WINDOWS, { output: 'both', routing: true, plan: masked, stats: true });
    expect(rowRelErr(res.logits!, ref.logits!, engine.arch.vocab)).toBeLessThan(1e-4);
    sameRouting(res, ref);
    expect(res.stats!.moeLayers[0]!.removed).toEqual([3]);
    expect(res.stats!.moeLayers[0]!.tokensPerExpert[3]).toBe(0);
    expect(res.stats!.moeLayers[0]!.unrouted).not.toContain('model.layers.0.block_sparse_moe.experts.3');
    // Perplexity of the plan through the GPU engine equals the reference's on the rewritten weights.
    const windows = WINDOWS.map((w) => Int32Array.from(w));
    const g = await gpuPerplexity(engine, windows, { plan: masked });
    const c = await perplexity(windows, referenceNll(rewritten, { removedExperts }));
    expect(Math.abs(g.perplexity - c.perplexity) / c.perplexity).toBeLessThan(1e-4);
    expect(g.tokens).toBe(c.tokens);
    // The same plan on the CPU reference (the `--cpu` path of the CLI).
    const rp = referencePlan(model, masked);
    const cp = await perplexity(windows, referenceNll(rp.model, { removedExperts: rp.removedExperts }));
    expect(Math.abs(cp.perplexity - c.perplexity) / c.perplexity).toBeLessThan(1e-6);
  });

  it('cancels between layers', async () => {
    const files = await openNodeFileSet(join(MODELS, 'olmoe'));
    const engine = await GpuForwardEngine.open(gpu(), files);
    const ac = new AbortController();
    const run = engine.forward(WINDOWS, { output: 'nll', signal: ac.signal, onProgress: (p) => p.done >= 2 && ac.abort() });
    await expect(run).rejects.toSatisfy((e: unknown) => e instanceof MoePruneError && e.code === 'Cancelled');
    expect(gpu().pool.stats().bytesInUse).toBe(0);
  });
});

describeGpu('GPU forward engine: sequential pruning hook', (gpu) => {
  /** Deterministic pseudo-random keep bits (about 3 in 4 kept). */
  function randomMask(elems: number, seed: number): Uint32Array {
    const out = new Uint32Array(Math.ceil(elems / 32));
    let s = seed >>> 0 || 1;
    for (let i = 0; i < elems; i++) {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      if (s >>> 30 !== 0) out[i >>> 5]! |= 1 << (i & 31);
    }
    return out;
  }

  it.each(['mixtral', 'qwen3_moe-fused', 'deepseek_v2-bf16', 'arctic'])(
    '%s: masks set layer by layer between the dense and the output pass give the logits of a plain run with all masks',
    async (name) => {
      const files = await openNodeFileSet(join(MODELS, name));
      const engine = await GpuForwardEngine.open(gpu(), files);
      const masks = new Map<string, Uint32Array>();
      const seen: number[] = [];
      const plan = { mask: (n: string) => masks.get(n) };
      let allTokenRows = 0;
      await engine.forward(WINDOWS, {
        output: 'none',
        plan,
        sequential: async (c) => {
          seen.push(c.layer);
          // Nothing of this layer is masked yet, and every later layer is still untouched.
          for (const n of masks.keys()) expect(n.startsWith(`model.layers.${c.layer}.`)).toBe(false);
          const names = new Set(Object.keys(c.inputNorms));
          if (c.moe) {
            expect(c.tokensPerExpert.reduce((a, b) => a + b, 0)).toBe(WINDOWS.length * WINDOWS[0]!.length * engine.arch.moe.router.topK);
            const cold = [0, c.experts - 1];
            const all = await c.allTokenNorms(cold);
            for (const ex of cold) {
              expect(all.get(ex)!.gateUp.rows).toBe(WINDOWS.length * WINDOWS[0]!.length);
              expect(all.get(ex)!.down.sumSq.some((v) => v > 0)).toBe(true);
              allTokenRows += all.get(ex)!.down.rows;
            }
            for (let ex = 0; ex < c.experts; ex++) for (const n of c.expertNames(ex)) names.add(n);
          }
          let i = 0;
          for (const n of [...names].sort()) {
            const w = await c.weight(n);
            const [o, inDim] = w.t.shape as [number, number];
            const norm = c.inputNorms[n];
            if (norm) expect(norm.sumSq.length).toBe(inDim);
            masks.set(n, randomMask(o * inDim, 1000 * c.layer + i++));
          }
        },
      });
      expect(seen).toEqual(Array.from({ length: engine.arch.layers }, (_, l) => l));
      expect(allTokenRows).toBeGreaterThan(0);
      expect(masks.size).toBeGreaterThan(4);
      const seq = await engine.forward(WINDOWS, { output: 'logits', plan, sequential: async () => undefined });
      const plain = await engine.forward(WINDOWS, { output: 'logits', plan });
      const dense = await engine.forward(WINDOWS, { output: 'logits' });
      expect(rowRelErr(seq.logits!, plain.logits!, engine.arch.vocab)).toBeLessThan(1e-6);
      // The masks did change the model (the comparison above could not pass by ignoring them).
      expect(rowRelErr(plain.logits!, dense.logits!, engine.arch.vocab)).toBeGreaterThan(1e-3);
    },
  );
});
