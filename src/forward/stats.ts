/**
 * Calibration statistics gathered during the GPU forward pass: per MoE layer the router-logit summary,
 * tokens per expert, the co-activation matrix and unrouted experts; for every linear map the per-input-
 * channel sums of squares ‖X_j‖² of its input (Wanda/OWL), for experts over the tokens routed to them only.
 * Sums live on the GPU during a layer (colSumSq / coactivation kernels) and are read back once per layer.
 */
import { MoePruneError } from '../core/errors.ts';
import type { GpuContext } from '../gpu/device.ts';
import type { BufferView } from '../gpu/dispatch.ts';
import { readBuffer } from '../gpu/pool.ts';
import { zeroedBuffer } from '../gpu/kernels/kernel-args.ts';
import { colSumSq } from '../gpu/kernels/stats.ts';

export interface RouterLogitSummary {
  /** Per expert over all calibration tokens (raw router logits, before any plan's −∞). Std is the population std. */
  readonly mean: Float32Array;
  readonly std: Float32Array;
  readonly max: Float32Array;
}

export interface MoeLayerStats {
  readonly layer: number;
  readonly experts: number;
  readonly topK: number;
  readonly tokens: number;
  readonly routerLogits: RouterLogitSummary;
  /** Tokens routed to each expert (any of the top-k slots). */
  readonly tokensPerExpert: Uint32Array;
  /** [experts, experts]: co[a·E + b] = tokens that chose both a and b (a ≠ b); the diagonal = tokensPerExpert. */
  readonly coactivation: Uint32Array;
  /** Experts that exist in the plan but got no calibration token, by module name (e.g. `model.layers.1.mlp.experts.3`). */
  readonly unrouted: string[];
  /** Experts removed by the plan (never routed). */
  readonly removed: number[];
}

export interface InputNorm {
  /** Rows (tokens) summed: all tokens, or an expert's routed tokens. */
  readonly rows: number;
  /** Σ_rows x_j² per input channel j. */
  readonly sumSq: Float32Array;
}

export interface CalibrationStats {
  readonly format: 'moe-prune-calibration-stats';
  readonly version: 1;
  readonly windows: number;
  readonly seqLen: number;
  readonly tokens: number;
  readonly moeLayers: MoeLayerStats[];
  /** By weight tensor name (reference names; fused experts `…gate_up_proj[e].gate` etc.). */
  readonly inputNorms: Record<string, InputNorm>;
}

/** JSON form: typed arrays become plain number arrays. */
export type CalibrationStatsJson = Omit<CalibrationStats, 'moeLayers' | 'inputNorms'> & {
  moeLayers: Array<Omit<MoeLayerStats, 'routerLogits' | 'tokensPerExpert' | 'coactivation'> & {
    routerLogits: { mean: number[]; std: number[]; max: number[] };
    tokensPerExpert: number[];
    coactivation: number[];
  }>;
  inputNorms: Record<string, { rows: number; sumSq: number[] }>;
};

export function calibrationStatsToJson(s: CalibrationStats): CalibrationStatsJson {
  return {
    ...s,
    moeLayers: s.moeLayers.map((l) => ({
      ...l,
      routerLogits: { mean: Array.from(l.routerLogits.mean), std: Array.from(l.routerLogits.std), max: Array.from(l.routerLogits.max) },
      tokensPerExpert: Array.from(l.tokensPerExpert),
      coactivation: Array.from(l.coactivation),
    })),
    inputNorms: Object.fromEntries(Object.entries(s.inputNorms).map(([k, v]) => [k, { rows: v.rows, sumSq: Array.from(v.sumSq) }])),
  };
}

export function calibrationStatsFromJson(j: CalibrationStatsJson): CalibrationStats {
  if (j.format !== 'moe-prune-calibration-stats' || j.version !== 1)
    throw new MoePruneError('InvalidArgument', 'not a moe-prune calibration statistics file (format/version)');
  return {
    ...j,
    moeLayers: j.moeLayers.map((l) => ({
      ...l,
      routerLogits: { mean: Float32Array.from(l.routerLogits.mean), std: Float32Array.from(l.routerLogits.std), max: Float32Array.from(l.routerLogits.max) },
      tokensPerExpert: Uint32Array.from(l.tokensPerExpert),
      coactivation: Uint32Array.from(l.coactivation),
    })),
    inputNorms: Object.fromEntries(Object.entries(j.inputNorms).map(([k, v]) => [k, { rows: v.rows, sumSq: Float32Array.from(v.sumSq) }])),
  };
}

/** Running router-logit moments of one layer (f64 on the CPU from the logits read back per chunk). */
export class LogitMoments {
  private readonly sum: Float64Array;
  private readonly sumSq: Float64Array;
  private readonly maxV: Float64Array;
  private n = 0;
  constructor(private readonly experts: number) {
    this.sum = new Float64Array(experts);
    this.sumSq = new Float64Array(experts);
    this.maxV = new Float64Array(experts).fill(-Infinity);
  }
  add(logits: Float32Array, rows: number): void {
    const E = this.experts;
    for (let t = 0; t < rows; t++)
      for (let e = 0; e < E; e++) {
        const z = logits[t * E + e]!;
        this.sum[e]! += z;
        this.sumSq[e]! += z * z;
        if (z > this.maxV[e]!) this.maxV[e] = z;
      }
    this.n += rows;
  }
  summary(): RouterLogitSummary {
    const n = Math.max(1, this.n);
    const mean = Float32Array.from(this.sum, (s) => s / n);
    const std = Float32Array.from(this.sumSq, (q, e) => Math.sqrt(Math.max(0, q / n - (this.sum[e]! / n) ** 2)));
    return { mean, std, max: Float32Array.from(this.maxV) };
  }
}

/**
 * GPU accumulators of ‖X_j‖² for one decoder layer. Linear maps that read the same input (q/k/v, gate/up)
 * share one accumulator. `read` returns them by tensor name and releases the buffers.
 */
export class InputNormAccumulators {
  private readonly accs = new Map<string, { view: BufferView; cols: number; rows: number; names: readonly string[] }>();
  constructor(private readonly ctx: GpuContext) {}

  /** Adds rows of x (optionally an expert's gathered tokens) to the accumulator shared by `names`. */
  async add(names: readonly string[], x: BufferView, rows: number, cols: number, gather?: { ids: BufferView; offset: number }): Promise<void> {
    const key = names.join('|');
    let a = this.accs.get(key);
    if (!a) this.accs.set(key, (a = { view: await zeroedBuffer(this.ctx, cols, 'input norms'), cols, rows: 0, names }));
    if (a.cols !== cols) throw new MoePruneError('InvalidShape', `input of ${names[0]} has ${cols} channels, earlier ${a.cols}`);
    await colSumSq(this.ctx, { x, rows, cols, acc: a.view, ...(gather ? { gather } : {}) });
    a.rows += rows;
  }

  async read(into: Record<string, InputNorm>): Promise<void> {
    try {
      for (const a of this.accs.values()) {
        const b = await readBuffer(this.ctx, a.view.buffer, a.cols * 4);
        const sumSq = new Float32Array(b.buffer, b.byteOffset, a.cols);
        for (const n of a.names) into[n] = { rows: a.rows, sumSq };
      }
    } finally {
      this.release();
    }
  }

  release(): void {
    for (const a of this.accs.values()) this.ctx.pool.release(a.view.buffer);
    this.accs.clear();
  }
}
