/**
 * Score-and-mask kernels of STUN stage 2 (unstructured pruning): per-row Wanda/magnitude masks, N:M masks, one
 * threshold per matrix, OWL score statistics and a popcount. Masks are new pooled u32 buffers of
 * ceil(out·in / 32) words, bit o·in + i LSB first, 1 = keep — the `mask` matmul consumes.
 */
import { MoePruneError } from '../../core/errors.ts';
import { assertAlive, type GpuContext } from '../device.ts';
import { grid2d, submitDispatches, uniformParams, workgroupSize, type BufferView, type Dispatch } from '../dispatch.ts';
import { readBuffer, STORAGE_USAGE } from '../pool.ts';
import type { GpuTensor, GpuTensorPart } from '../tensor.ts';
import { f32Bits, needElems, needInt, placeholder, weightLayout } from './kernel-args.ts';
import type { BlockScale } from './matmul.ts';
import kernel from '../../../shaders/prune_mask.wgsl?raw';
import widen from '../../../shaders/lib/widen.wgsl?raw';

/** The kernel reads stored-dtype weights through lib/widen.wgsl (appended, so line numbers hold). */
const code = `${kernel}\n${widen}`;

export interface ScoreSource {
  /** Weight [out, in] (F32/F16/BF16/F8_E4M3, any number of dim-0 parts). */
  readonly w: GpuTensor;
  /** FP8 block scales, as matmul. */
  readonly scale?: BlockScale;
  /** f32 [in]: Σ over calibration tokens of x_j² (Wanda); absent → magnitude. */
  readonly normSq?: BufferView;
}

/** Histogram bins of a radix pass. */
const BINS = 256;
/** (shift, bits) of the four radix passes over the 31 significant key bits (bit 31 of a key is always 0). */
const PASSES = [
  { shift: 23, bits: 8 },
  { shift: 15, bits: 8 },
  { shift: 7, bits: 8 },
  { shift: 0, bits: 7 },
] as const;
/** Aim for at least this many workgroups in the whole-matrix passes before giving invocations more words. */
const MATRIX_WORKGROUPS = 1024;
/** Mask words (32 keys each) per invocation of row_select on software adapters. */
const SOFTWARE_ROW_WORDS = 4;
/** Most mask words (× 32 weights) per invocation in the whole-matrix passes. */
const MAX_WPT = 16;
/** Mask words per invocation of count_kept. */
const COUNT_WPT = 4;
const MODE_KEEP_ALL = 0;
const MODE_ABOVE = 1;
const MODE_RANK = 2;
/** Largest N:M group (nm_select keeps a group's keys in a private array of 32). */
export const NM_MAX_M = 32;

// ---------------------------------------------------------------------------------------------- CPU reference

const MIN_NORMAL = 2 ** -126;
const INF_BITS = 0x7f800000;
const bitsF32 = new Float32Array(1);
const bitsU32 = new Uint32Array(bitsF32.buffer);

/**
 * The selection key of weight w in input channel with norm n (undefined: magnitude) as u32 bits, exactly as the
 * kernel: (w·w)·n in f32; subnormal or negative factors and products count as 0, NaN as +inf.
 */
export function selectionKey(w: number, n: number | undefined): number {
  let s = Math.fround(w * w);
  if (s < MIN_NORMAL) s = 0;
  if (n !== undefined) {
    s = Math.fround(s * (n < MIN_NORMAL ? 0 : n));
    if (s < MIN_NORMAL) s = 0;
  }
  if (Number.isNaN(s)) return INF_BITS;
  bitsF32[0] = s;
  return bitsU32[0]!;
}

function referenceKeys(w: Float32Array, outDim: number, inDim: number, normSq: Float32Array | undefined): Uint32Array {
  const numel = outDim * inDim;
  if (w.length < numel) throw new MoePruneError('InvalidArgument', `reference weight has ${w.length} values, [${outDim}, ${inDim}] needs ${numel}`);
  if (normSq && normSq.length < inDim) throw new MoePruneError('InvalidArgument', `reference normSq has ${normSq.length} values, in = ${inDim}`);
  const keys = new Uint32Array(numel);
  for (let o = 0; o < outDim; o++)
    for (let i = 0; i < inDim; i++) keys[o * inDim + i] = selectionKey(w[o * inDim + i]!, normSq ? normSq[i]! : undefined);
  return keys;
}

function swap(a: Uint32Array, i: number, j: number): void {
  const t = a[i]!;
  a[i] = a[j]!;
  a[j] = t;
}

/** The k-th smallest value (0-based) of `a`, which is reordered: quickselect with a three-way partition (ties). */
function kthSmallest(a: Uint32Array, k: number): number {
  let lo = 0;
  let hi = a.length - 1;
  while (lo < hi) {
    const [x, y, z] = [a[lo]!, a[(lo + hi) >>> 1]!, a[hi]!];
    const pivot = Math.max(Math.min(x, y), Math.min(Math.max(x, y), z));
    let lt = lo;
    let gt = hi;
    let i = lo;
    while (i <= gt) {
      const v = a[i]!;
      if (v < pivot) swap(a, lt++, i++);
      else if (v > pivot) swap(a, i, gt--);
      else i++;
    }
    if (k < lt) hi = lt - 1;
    else if (k > gt) lo = gt + 1;
    else return pivot;
  }
  return a[lo]!;
}

/**
 * Sets the keep bits (from bit `bitBase`) of keys[start, start + len) except the `prune` lowest by (key, index):
 * keys below the prune-th lowest key T go, then keys equal to T in index order until `prune` are gone.
 */
function keepAllButLowest(keys: Uint32Array, start: number, len: number, prune: number, mask: Uint32Array, bitBase: number): void {
  let thr = -1;
  let need = 0;
  if (prune > 0) {
    thr = kthSmallest(keys.slice(start, start + len), prune - 1);
    let less = 0;
    for (let i = start; i < start + len; i++) if (keys[i]! < thr) less++;
    need = prune - less;
  }
  for (let i = 0; i < len; i++) {
    const k = keys[start + i]!;
    let keep = k > thr;
    if (k === thr) keep = need-- <= 0;
    if (keep) {
      const b = bitBase + i;
      mask[b >>> 5] = (mask[b >>> 5]! | (1 << (b & 31))) >>> 0;
    }
  }
}

/** CPU reference of rowMask on f32 [out, in] (an FP8 weight already dequantised, as fp8Reference). */
export function rowMaskReference(w: Float32Array, outDim: number, inDim: number, normSq: Float32Array | undefined, prunePerRow: number): Uint32Array {
  if (!(prunePerRow >= 0 && prunePerRow <= inDim)) throw new MoePruneError('InvalidArgument', `prunePerRow ${prunePerRow} is outside 0..${inDim}`);
  const keys = referenceKeys(w, outDim, inDim, normSq);
  const mask = new Uint32Array(Math.ceil((outDim * inDim) / 32));
  for (let o = 0; o < outDim; o++) keepAllButLowest(keys, o * inDim, inDim, prunePerRow, mask, o * inDim);
  return mask;
}

/** CPU reference of nmMask: in each row's groups of m consecutive inputs, the n lowest (key, index) are pruned. */
export function nmMaskReference(w: Float32Array, outDim: number, inDim: number, normSq: Float32Array | undefined, n: number, m: number): Uint32Array {
  if (!(m >= 1 && n >= 0 && n <= m && inDim % m === 0)) throw new MoePruneError('InvalidArgument', `N:M ${n}:${m} does not fit in = ${inDim}`);
  const keys = referenceKeys(w, outDim, inDim, normSq);
  const mask = new Uint32Array(Math.ceil((outDim * inDim) / 32));
  for (let g = 0; g < keys.length; g += m) keepAllButLowest(keys, g, m, n, mask, g);
  return mask;
}

/** CPU reference of matrixMask: the `prune` lowest (key, flat index) of the whole matrix are pruned. */
export function matrixMaskReference(w: Float32Array, outDim: number, inDim: number, normSq: Float32Array | undefined, prune: number): Uint32Array {
  if (!(prune >= 0 && prune <= outDim * inDim)) throw new MoePruneError('InvalidArgument', `prune ${prune} is outside 0..${outDim * inDim}`);
  const keys = referenceKeys(w, outDim, inDim, normSq);
  const mask = new Uint32Array(Math.ceil(keys.length / 32));
  keepAllButLowest(keys, 0, keys.length, prune, mask, 0);
  return mask;
}

/**
 * CPU reference of scoreStats: a = |w|·sqrt(normSq[i]·normScale) in f32 (normSq ≡ 1 when absent), the f64 sum
 * of all a and how many exceed `above` (rounded to f32, as the kernel compares).
 */
export function scoreStatsReference(
  w: Float32Array, outDim: number, inDim: number, normSq: Float32Array | undefined, normScale: number, above?: number,
): { sum: number; count: number; numel: number } {
  const ns = Math.fround(normScale);
  const thr = above === undefined ? Infinity : Math.fround(above);
  const root = Float32Array.from({ length: inDim }, (_, i) => Math.sqrt(Math.fround((normSq ? normSq[i]! : 1) * ns)));
  let sum = 0;
  let count = 0;
  for (let o = 0; o < outDim; o++)
    for (let i = 0; i < inDim; i++) {
      const a = Math.fround(Math.abs(w[o * inDim + i]!) * root[i]!);
      sum += a;
      if (a > thr) count++;
    }
  return { sum, count, numel: outDim * inDim };
}

/** Kept bits among the first `numel` of a mask (CPU). */
export function countKeptReference(mask: Uint32Array, numel: number): number {
  let c = 0;
  for (let b = 0; b < numel; b++) c += (mask[b >>> 5]! >>> (b & 31)) & 1;
  return c;
}

// ------------------------------------------------------------------------------------------------ GPU kernels

interface Prepared {
  readonly what: string;
  readonly w: GpuTensor;
  readonly outDim: number;
  readonly inDim: number;
  readonly numel: number;
  readonly constants: Readonly<Record<string, number>>;
  readonly scale?: BufferView;
  readonly normSq?: BufferView;
  readonly scaleCols: number;
  readonly rowOffset: number;
  readonly wg: number;
}

function prepare(ctx: GpuContext, a: ScoreSource, kind: string): Prepared {
  const { w } = a;
  const what = `${kind} ${w.dtype}${JSON.stringify(w.shape)}`;
  const sc = a.scale;
  const { outDim, inDim, dtype, scaleCols, rowOffset } = weightLayout(w, sc, what);
  const numel = outDim * inDim;
  if (numel > 0xffffffff) throw new MoePruneError('InvalidShape', `${what}: more than 2³² − 1 weights in one tensor`);
  if (a.normSq) needElems(a.normSq, inDim, `${what}: normSq`);
  const wg = workgroupSize(ctx, 256);
  return {
    what, w, outDim, inDim, numel, scaleCols, rowOffset, wg,
    constants: {
      DTYPE: dtype,
      HAS_SCALE: sc ? 1 : 0,
      HAS_NORM: a.normSq ? 1 : 0,
      SCALE_BR: sc?.block[0] ?? 128,
      SCALE_BC: sc?.block[1] ?? 128,
      WG: wg,
      ALIGNED: inDim % 32 === 0 ? 1 : 0,
    },
    ...(sc ? { scale: sc.view } : {}),
    ...(a.normSq ? { normSq: a.normSq } : {}),
  };
}

interface ParamFields {
  k?: number; mode?: number; thr?: number; need?: number; shift?: number; pmask?: number; prefix?: number;
  invBase?: number; wpt?: number; above?: number; normScale?: number;
}

/** The kernel's Params block for one part (field order as in prune_mask.wgsl). */
function partParams(ctx: GpuContext, s: Prepared, part: GpuTensorPart, f: ParamFields): Promise<GPUBuffer> {
  return uniformParams(ctx, [
    part.rows, s.inDim, part.rowStart * s.inDim, s.rowOffset + part.rowStart, s.scaleCols,
    f.k ?? 0, f.mode ?? 0, f.thr ?? 0, f.need ?? 0, f.shift ?? 0, f.pmask ?? 0, f.prefix ?? 0,
    f.invBase ?? 0, f.wpt ?? 1, f.above ?? 0, f.normScale ?? 0,
  ]);
}

/** A zeroed pooled mask of ceil(numel / 32) words (cleared on the GPU: no host copy of a large zero array). */
async function newMask(ctx: GpuContext, numel: number): Promise<BufferView> {
  const byteLength = Math.max(4, Math.ceil(numel / 32) * 4);
  return clearedBuffer(ctx, byteLength, 'prune mask');
}

async function clearedBuffer(ctx: GpuContext, byteLength: number, label: string): Promise<BufferView> {
  const buffer = await ctx.pool.acquire(byteLength, STORAGE_USAGE, label);
  clear(ctx, { buffer, byteLength });
  return { buffer, byteLength };
}

function clear(ctx: GpuContext, v: BufferView): void {
  assertAlive(ctx);
  const enc = ctx.device.createCommandEncoder({ label: 'prune clear' });
  enc.clearBuffer(v.buffer, 0, Math.ceil(v.byteLength / 4) * 4);
  ctx.device.queue.submit([enc.finish()]);
}

/** Mask words a part's bits touch (its first and last word may be shared with the neighbouring parts). */
function partWords(s: Prepared, part: GpuTensorPart): number {
  const n = part.rows * s.inDim;
  if (n === 0) return 0;
  const g0 = part.rowStart * s.inDim;
  return Math.floor((g0 + n - 1) / 32) - Math.floor(g0 / 32) + 1;
}

/**
 * How the whole-matrix passes split the weight: `wpt` mask words per invocation (more only once there are
 * enough workgroups to fill a GPU) and the invocations of each part.
 */
function matrixLayout(s: Prepared): { wpt: number; invocations: (part: GpuTensorPart) => number; total: number } {
  const words = s.w.parts.reduce((t, p) => t + partWords(s, p), 0);
  const wpt = Math.min(MAX_WPT, Math.max(1, Math.ceil(words / (s.wg * MATRIX_WORKGROUPS))));
  const invocations = (part: GpuTensorPart): number => Math.ceil(partWords(s, part) / wpt);
  return { wpt, invocations, total: s.w.parts.reduce((t, p) => t + invocations(p), 0) };
}

/**
 * Runs one entry point over every non-empty part, all in one submission. `perPart` gives the part's params,
 * its invocations (numbered on from the previous parts', for per-invocation outputs) and its workgroups.
 */
async function runParts(
  ctx: GpuContext, s: Prepared, entryPoint: string, extra: Readonly<Record<string, number>>,
  perPart: (part: GpuTensorPart) => { fields: ParamFields; invocations: number; workgroups: number },
  bindings: { mask?: BufferView; ghist?: BufferView; bases?: BufferView; outv?: BufferView },
): Promise<void> {
  const pipeline = await ctx.pipelines.get({ name: 'prune_mask', code, entryPoint, constants: { ...s.constants, ...extra } });
  const dummy = await placeholder(ctx);
  const params: GPUBuffer[] = [];
  try {
    const dispatches: Dispatch[] = [];
    let invBase = 0;
    for (const part of s.w.parts) {
      if (part.rows === 0) continue;
      const { fields, invocations, workgroups } = perPart(part);
      invBase += invocations;
      if (workgroups === 0) continue;
      const u = await partParams(ctx, s, part, { ...fields, invBase: invBase - invocations });
      params.push(u);
      const keyInputs = [padded(s, part, 'a weight part'), s.scale ?? dummy, s.normSq ? padded(s, s.normSq, 'normSq') : dummy];
      // mat_mark references `bases` in every mode; it must not alias the mask it writes.
      const bases = bindings.bases ?? (entryPoint === 'mat_mark' ? dummy : undefined);
      dispatches.push({ pipeline, bindings: [...keyInputs, bindings.mask, u, bindings.ghist, bases, bindings.outv], workgroups: grid2d(ctx, workgroups) });
    }
    if (dispatches.length > 0) await submitDispatches(ctx, `prune ${entryPoint}`, dispatches);
  } finally {
    for (const u of params) ctx.pool.release(u);
    ctx.pool.release(dummy.buffer);
  }
}

/**
 * The kernel reads W and normSq as vec4s, so their bindings cover the last partial 16 bytes too. Pooled buffers
 * are multiples of 256 bytes, so this only refuses buffers made some other way.
 */
function padded(s: Prepared, v: BufferView, what: string): BufferView {
  const byteLength = Math.max(16, Math.ceil(v.byteLength / 16) * 16);
  if (v.buffer.size < byteLength)
    throw new MoePruneError('InvalidArgument', `${s.what}: ${what} lies in a buffer of ${v.buffer.size} bytes, not padded to 16 bytes (use pooled buffers)`);
  return { buffer: v.buffer, byteLength };
}

/**
 * row_select's workgroup size. Software adapters run best with few invocations doing more each (a barrier
 * switches between all of them), GPUs with one mask word per invocation; at most 256 either way.
 */
function rowWorkgroup(ctx: GpuContext, inDim: number): number {
  const rowWords = Math.ceil(inDim / 32) + (inDim % 32 === 0 ? 0 : 1);
  const perInvocation = ctx.adapter.isFallbackAdapter ? SOFTWARE_ROW_WORDS : 1;
  return workgroupSize(ctx, Math.max(4, 2 ** Math.ceil(Math.log2(Math.ceil(rowWords / perInvocation)))));
}

/** Runs a whole-matrix entry point over every part with the layout's invocations. */
function runMatrix(
  ctx: GpuContext, s: Prepared, entryPoint: string, fields: ParamFields,
  bindings: { mask?: BufferView; ghist?: BufferView; bases?: BufferView; outv?: BufferView },
): Promise<void> {
  const lay = matrixLayout(s);
  return runParts(ctx, s, entryPoint, {}, (part) => {
    const invocations = lay.invocations(part);
    return { fields: { ...fields, wpt: lay.wpt }, invocations, workgroups: Math.ceil(invocations / s.wg) };
  }, bindings);
}

/** Sets every weight's keep bit (nothing to prune). */
function markAll(ctx: GpuContext, s: Prepared, mask: BufferView): Promise<void> {
  return runMatrix(ctx, s, 'mat_mark', { mode: MODE_KEEP_ALL }, { mask });
}

async function withMask(ctx: GpuContext, numel: number, fill: (mask: BufferView) => Promise<void>): Promise<BufferView> {
  const mask = await newMask(ctx, numel);
  try {
    await fill(mask);
  } catch (e) {
    ctx.pool.release(mask.buffer);
    throw e;
  }
  return mask;
}

/** Per output row: prune exactly `prunePerRow` entries (0 ≤ prunePerRow ≤ in) with the lowest keys. Wanda. */
export async function rowMask(ctx: GpuContext, a: ScoreSource & { readonly prunePerRow: number }): Promise<BufferView> {
  const s = prepare(ctx, a, 'row mask');
  const k = a.prunePerRow;
  needInt(k, `${s.what}: prunePerRow`);
  if (k > s.inDim) throw new MoePruneError('InvalidArgument', `${s.what}: cannot prune ${k} weights per row of ${s.inDim}`);
  return withMask(ctx, s.numel, async (mask) => {
    if (s.numel === 0 || k === s.inDim) return;
    if (k === 0) return markAll(ctx, s, mask);
    await runParts(ctx, s, 'row_select', { WG: rowWorkgroup(ctx, s.inDim) }, (part) => ({ fields: { k }, invocations: 0, workgroups: part.rows }), { mask });
  });
}

/** N:M: in every row, in each group of m consecutive inputs [g·m, g·m+m), prune the n lowest keys; in % m must be 0. */
export async function nmMask(ctx: GpuContext, a: ScoreSource & { readonly n: number; readonly m: number }): Promise<BufferView> {
  const s = prepare(ctx, a, `${a.n}:${a.m} mask`);
  needInt(a.m, `${s.what}: m`, 1);
  needInt(a.n, `${s.what}: n`);
  if (a.n > a.m) throw new MoePruneError('InvalidArgument', `${s.what}: n = ${a.n} is more than m = ${a.m}`);
  if (a.m > NM_MAX_M) throw new MoePruneError('InvalidArgument', `${s.what}: groups of more than ${NM_MAX_M} inputs are not supported (m = ${a.m})`);
  if (s.inDim % a.m !== 0)
    throw new MoePruneError('InvalidArgument', `${s.what}: N:M needs the input size to be a multiple of m, but ${s.inDim} is not a multiple of ${a.m}`);
  return withMask(ctx, s.numel, async (mask) => {
    if (s.numel === 0 || a.n === a.m) return;
    if (a.n === 0) return markAll(ctx, s, mask);
    const per = Math.max(1, Math.floor(32 / a.m));
    await runParts(ctx, s, 'nm_select', { NM_M: a.m }, (part) => {
      const invocations = Math.ceil((part.rows * s.inDim) / a.m / per);
      return { fields: { k: a.n }, invocations, workgroups: Math.ceil(invocations / s.wg) };
    }, { mask });
  });
}

/**
 * Whole matrix: prune exactly `prune` entries (0 ≤ prune ≤ out·in) with the lowest keys over the matrix (ties:
 * lower flat index o·in+i first). Magnitude, as the official code (one threshold per matrix). Four radix passes
 * with global histograms read back between passes; if keys equal to the threshold must be split, their counts
 * per invocation are prefixed on the CPU before marking.
 */
export async function matrixMask(ctx: GpuContext, a: ScoreSource & { readonly prune: number }): Promise<BufferView> {
  const s = prepare(ctx, a, 'matrix mask');
  needInt(a.prune, `${s.what}: prune`);
  if (a.prune > s.numel) throw new MoePruneError('InvalidArgument', `${s.what}: cannot prune ${a.prune} of ${s.numel} weights`);
  return withMask(ctx, s.numel, async (mask) => {
    if (s.numel === 0 || a.prune === s.numel) return;
    if (a.prune === 0) return markAll(ctx, s, mask);
    let prefix = 0;
    let pmask = 0;
    let rank = a.prune - 1; // of the threshold key among the keys matching the prefix
    let less = 0;
    let eq = 0;
    const ghist = await clearedBuffer(ctx, BINS * 4, 'prune histogram');
    try {
      for (const { shift, bits } of PASSES) {
        if (shift !== PASSES[0].shift) clear(ctx, ghist);
        await runMatrix(ctx, s, 'mat_hist', { shift, pmask, prefix }, { ghist });
        const b = await readBuffer(ctx, ghist.buffer, BINS * 4);
        const h = new Uint32Array(b.buffer, b.byteOffset, BINS);
        let cum = 0;
        let bin = 0;
        while (bin < BINS - 1 && cum + h[bin]! <= rank) cum += h[bin++]!;
        if (cum + h[bin]! <= rank) throw new MoePruneError('GpuValidation', `${s.what}: the key histogram lost counts (pass at bit ${shift})`);
        prefix = (prefix | (bin << shift)) >>> 0;
        pmask = (pmask | (((1 << bits) - 1) << shift)) >>> 0;
        rank -= cum;
        less += cum;
        eq = h[bin]!;
        if (rank + 1 === eq) {
          // T is the bin's largest key: the whole bin is pruned, the bits below need no pass.
          prefix = (prefix | ((1 << shift) - 1)) >>> 0;
          break;
        }
      }
    } finally {
      ctx.pool.release(ghist.buffer);
    }
    const thr = prefix;
    const need = a.prune - less;
    if (need === eq) {
      await runMatrix(ctx, s, 'mat_mark', { mode: MODE_ABOVE, thr }, { mask });
      return;
    }
    // Ties at the threshold are split in flat order: count them per invocation, prefix the counts here.
    const { total } = matrixLayout(s);
    const counts = await clearedBuffer(ctx, total * 4, 'prune tie counts');
    try {
      await runMatrix(ctx, s, 'mat_eq', { thr }, { outv: counts });
      const b = await readBuffer(ctx, counts.buffer, total * 4);
      const c = new Uint32Array(total);
      c.set(new Uint32Array(b.buffer, b.byteOffset, total));
      let run = 0;
      for (let i = 0; i < total; i++) {
        const v = c[i]!;
        c[i] = run;
        run += v;
      }
      if (run !== eq) throw new MoePruneError('GpuValidation', `${s.what}: ${run} keys equal the threshold, the histogram said ${eq}`);
      ctx.device.queue.writeBuffer(counts.buffer, 0, c);
      await runMatrix(ctx, s, 'mat_mark', { mode: MODE_RANK, thr, need }, { mask, bases: counts });
    } finally {
      ctx.pool.release(counts.buffer);
    }
  });
}

/**
 * OWL statistics of one matrix with score a_ij = |w_ij| · sqrt(normSq[j] · normScale) (normSq ≡ 1 when absent):
 * the sum of all scores (f64 over per-invocation f32 partials of at most 512 scores) and, if `above` is given,
 * how many scores are strictly greater than `above` (rounded to f32); 0 without it.
 */
export async function scoreStats(
  ctx: GpuContext, a: ScoreSource & { readonly normScale: number; readonly above?: number },
): Promise<{ readonly sum: number; readonly count: number; readonly numel: number }> {
  const s = prepare(ctx, a, 'score statistics');
  if (!Number.isFinite(a.normScale) || a.normScale < 0) throw new MoePruneError('InvalidArgument', `${s.what}: normScale must be a finite number ≥ 0, got ${a.normScale}`);
  if (a.above !== undefined && Number.isNaN(a.above)) throw new MoePruneError('InvalidArgument', `${s.what}: above is NaN`);
  const { total } = matrixLayout(s);
  if (total === 0) return { sum: 0, count: 0, numel: s.numel };
  const out = await clearedBuffer(ctx, total * 8, 'score statistics');
  try {
    const above = f32Bits(a.above ?? Infinity);
    const normScale = f32Bits(a.normScale);
    await runMatrix(ctx, s, 'score_stats', { above, normScale }, { outv: out });
    const b = await readBuffer(ctx, out.buffer, total * 8);
    const sums = new Float32Array(b.buffer, b.byteOffset, total * 2);
    const counts = new Uint32Array(b.buffer, b.byteOffset, total * 2);
    let sum = 0;
    let count = 0;
    for (let i = 0; i < total; i++) {
      sum += sums[2 * i]!;
      count += counts[2 * i + 1]!;
    }
    return { sum, count, numel: s.numel };
  } finally {
    ctx.pool.release(out.buffer);
  }
}

/** Kept weights in a mask (popcount of its first `numel` bits), for checks and sparsity accounting. */
export async function countKept(ctx: GpuContext, mask: BufferView, numel: number): Promise<number> {
  const what = `count kept (${numel} weights)`;
  needInt(numel, `${what}: numel`);
  if (numel > 0xffffffff) throw new MoePruneError('InvalidArgument', `${what}: more than 2³² − 1 weights`);
  const words = Math.ceil(numel / 32);
  needElems(mask, words, `${what}: mask`);
  if (numel === 0) return 0;
  const wg = workgroupSize(ctx, 256);
  const pipeline = await ctx.pipelines.get({ name: 'prune_mask', code, entryPoint: 'count_kept', constants: { WG: wg } });
  const counter = await clearedBuffer(ctx, 4, 'kept count');
  const u = await uniformParams(ctx, [0, 0, 0, 0, 0, numel, 0, 0, 0, 0, 0, 0, 0, COUNT_WPT, 0, 0]);
  try {
    await submitDispatches(ctx, 'prune count_kept', [
      { pipeline, bindings: [undefined, undefined, undefined, mask, u, counter], workgroups: grid2d(ctx, Math.ceil(words / (wg * COUNT_WPT))) },
    ]);
    const b = await readBuffer(ctx, counter.buffer, 4);
    return new Uint32Array(b.buffer, b.byteOffset, 1)[0]!;
  } finally {
    ctx.pool.release(u);
    ctx.pool.release(counter.buffer);
  }
}
