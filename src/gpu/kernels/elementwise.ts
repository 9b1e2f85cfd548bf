import { MoePruneError } from '../../core/errors.ts';
import type { GpuContext } from '../device.ts';
import { grid2d, submitDispatches, uniformParams, workgroupSize, type BufferView } from '../dispatch.ts';
import { f32Bits, needElems, needInt } from './kernel-args.ts';
import code from '../../../shaders/elementwise.wgsl?raw';

const ITEMS = 4;

/** An f32 operand: a buffer and the element where the operand starts. */
export interface Operand {
  readonly view: BufferView;
  readonly offset?: number;
}

type Entry = 'silu_mul' | 'add' | 'add_into' | 'scale_into' | 'sigmoid_gate_add' | 'copy_rows';

interface Call {
  readonly n: number;
  readonly a?: Operand;
  readonly b?: Operand;
  readonly out: Operand;
  /** Params after n, a_off, b_off, o_off: width, s, b_stride, n2, a_s1, a_s2, o_s1, o_s2. */
  readonly extra?: readonly number[];
}

function view(x: Operand | BufferView): Operand {
  return 'view' in x ? x : { view: x };
}

async function run(ctx: GpuContext, entry: Entry, c: Call): Promise<void> {
  needInt(c.n, `${entry}: element count`);
  if (c.n === 0) return;
  for (const o of [c.a, c.b]) if (o && o.view.buffer === c.out.view.buffer) throw new MoePruneError('InvalidArgument', `${entry}: the output must be its own buffer`);
  const wg = workgroupSize(ctx);
  const pipeline = await ctx.pipelines.get({ name: 'elementwise', code, entryPoint: entry, constants: { WG: wg, ITEMS } });
  const u = await uniformParams(ctx, [c.n, c.a?.offset ?? 0, c.b?.offset ?? 0, c.out.offset ?? 0, ...(c.extra ?? [])]);
  try {
    await submitDispatches(ctx, entry, [
      { pipeline, bindings: [c.a?.view, c.b?.view, c.out.view, u], workgroups: grid2d(ctx, Math.ceil(c.n / (wg * ITEMS))) },
    ]);
  } finally {
    ctx.pool.release(u);
  }
}

function check(o: Operand, n: number, what: string): void {
  needElems(o.view, (o.offset ?? 0) + n, what);
}

/** out = silu(gate) · up over n elements (SwiGLU). */
export async function siluMul(ctx: GpuContext, gate: Operand | BufferView, up: Operand | BufferView, out: Operand | BufferView, n: number): Promise<void> {
  const [a, b, o] = [view(gate), view(up), view(out)];
  for (const [x, w] of [[a, 'gate'], [b, 'up'], [o, 'out']] as const) check(x, n, `silu·mul ${w}`);
  await run(ctx, 'silu_mul', { n, a, b, out: o });
}

/** out = a + b over n elements. */
export async function add(ctx: GpuContext, a: Operand | BufferView, b: Operand | BufferView, out: Operand | BufferView, n: number): Promise<void> {
  const [x, y, o] = [view(a), view(b), view(out)];
  for (const [v, w] of [[x, 'a'], [y, 'b'], [o, 'out']] as const) check(v, n, `add ${w}`);
  await run(ctx, 'add', { n, a: x, b: y, out: o });
}

/** out += a over n elements (residual in place). */
export async function addInto(ctx: GpuContext, out: Operand | BufferView, a: Operand | BufferView, n: number): Promise<void> {
  const [o, x] = [view(out), view(a)];
  check(o, n, 'add-into out');
  check(x, n, 'add-into a');
  await run(ctx, 'add_into', { n, a: x, out: o });
}

/** out *= s over n elements. */
export async function scaleInto(ctx: GpuContext, out: Operand | BufferView, s: number, n: number): Promise<void> {
  const o = view(out);
  check(o, n, 'scale out');
  await run(ctx, 'scale_into', { n, out: o, extra: [0, f32Bits(s)] });
}

/**
 * out[r, c] += sigmoid(gate[r · gateStride]) · x[r, c] for rows × width elements: Qwen2-MoE's shared expert
 * output weighted by sigmoid(shared_expert_gate(h)) (gate: the [rows, 1] output of that linear map).
 */
export async function sigmoidGateAdd(
  ctx: GpuContext, out: Operand | BufferView, x: Operand | BufferView, gate: Operand | BufferView, rows: number, width: number, gateStride = 1,
): Promise<void> {
  const [o, a, g] = [view(out), view(x), view(gate)];
  needInt(width, 'sigmoid gate: width', 1);
  check(o, rows * width, 'sigmoid gate out');
  check(a, rows * width, 'sigmoid gate x');
  if (rows > 0) needElems(g.view, (g.offset ?? 0) + (rows - 1) * gateStride + 1, 'sigmoid gate values');
  await run(ctx, 'sigmoid_gate_add', { n: rows * width, a, b: g, out: o, extra: [width, 0, gateStride] });
}

/** Strided block copy: rows = outer × inner rows of `width` values; strides in elements (0 broadcasts). */
export interface CopyRowsArgs {
  readonly outer: number;
  readonly inner: number;
  readonly width: number;
  readonly src: Operand | BufferView;
  readonly srcStrides: readonly [outer: number, inner: number];
  readonly dst: Operand | BufferView;
  readonly dstStrides: readonly [outer: number, inner: number];
}

/** CPU reference of copyRows on plain arrays (offsets from the operands). */
export function copyRowsReference(a: CopyRowsArgs, src: Float32Array, dst: Float32Array): void {
  const [s, d] = [view(a.src), view(a.dst)];
  for (let r1 = 0; r1 < a.outer; r1++)
    for (let r2 = 0; r2 < a.inner; r2++)
      for (let c = 0; c < a.width; c++)
        dst[(d.offset ?? 0) + r1 * a.dstStrides[0] + r2 * a.dstStrides[1] + c] = src[(s.offset ?? 0) + r1 * a.srcStrides[0] + r2 * a.srcStrides[1] + c]!;
}

/** dst[r1, r2, c] = src[r1, r2, c] through strides: slices, concatenation and broadcast (MLA k = [k_nope | k_pe]). */
export async function copyRows(ctx: GpuContext, a: CopyRowsArgs): Promise<void> {
  const [s, d] = [view(a.src), view(a.dst)];
  for (const v of [a.outer, a.inner, a.width, ...a.srcStrides, ...a.dstStrides]) needInt(v, 'copy rows: shape/stride');
  const n = a.outer * a.inner * a.width;
  if (n === 0) return;
  const last = (o: Operand, st: readonly [number, number]) => (o.offset ?? 0) + (a.outer - 1) * st[0] + (a.inner - 1) * st[1] + a.width;
  needElems(s.view, last(s, a.srcStrides), 'copy rows: src');
  needElems(d.view, last(d, a.dstStrides), 'copy rows: dst');
  await run(ctx, 'copy_rows', { n, a: s, out: d, extra: [a.width, 0, 0, a.inner, a.srcStrides[0], a.srcStrides[1], a.dstStrides[0], a.dstStrides[1]] });
}
