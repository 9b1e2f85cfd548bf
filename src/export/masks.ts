/**
 * Stage-2 masks in the export: pruned weights are written as exact zeros in their stored dtype and layout.
 * Masks are keyed by the forward engine's linear-map names (per-expert tensors by their own name, fused experts as
 * `…gate_up_proj[e].gate` / `[e].up` / `…down_proj[e]`, the router by its name over all original rows), one bit
 * per element (bit o·in + i, LSB first; 1 = keep), so each output piece finds its bits through its source tensor.
 */
import { MoePruneError } from '../core/errors.ts';
import { dtypeBits, numel } from '../formats/dtype.ts';
import type { Catalogue } from '../models/catalogue.ts';
import type { OutputTensor, Piece } from './tensor-plan.ts';

export type MaskLookup = (name: string) => Uint32Array | undefined;

/** Bits for a piece's elements: element j of the piece is kept iff bit (offset + j) of `bits` is set. */
export interface PieceMask {
  readonly bits: Uint32Array;
  readonly offset: number;
}

const bit = (bits: Uint32Array, i: number): number => (bits[i >>> 5]! >>> (i & 31)) & 1;

/** `a` (na bits) followed by `b` (nb bits); a missing part keeps everything. */
function concatBits(a: Uint32Array | undefined, na: number, b: Uint32Array | undefined, nb: number): Uint32Array {
  const out = new Uint32Array(Math.ceil((na + nb) / 32));
  for (let i = 0; i < na; i++) if (!a || bit(a, i)) out[i >>> 5]! |= 1 << (i & 31);
  for (let i = 0; i < nb; i++) if (!b || bit(b, i)) out[(na + i) >>> 5]! |= 1 << ((na + i) & 31);
  return out;
}

export function pieceMask(cat: Catalogue, t: OutputTensor, p: Piece, masks: MaskLookup): PieceMask | undefined {
  const entry = cat.tensors.get(t.source);
  if (!entry) return undefined;
  const role = entry.role;
  if (role.kind === 'fused_experts' || role.kind === 'router') {
    if (p.origin === undefined) {
      // Not sliced by expert (stage 1 kept the layer whole): the tensor is one piece covering every row.
      if (role.kind === 'router') {
        const m = masks(t.source);
        return m && { bits: m, offset: 0 };
      }
    }
    const rows = entry.shape[0] ?? 1;
    const rowElems = rows ? numel(entry.shape) / rows : 0;
    if (role.kind === 'router') {
      const m = masks(t.source);
      return m && { bits: m, offset: p.origin! * rowElems };
    }
    const expertMask = (e: number): PieceMask | undefined => {
      if (role.proj === 'down') {
        const m = masks(`${t.source}[${e}]`);
        return m && { bits: m, offset: 0 };
      }
      const g = masks(`${t.source}[${e}].gate`);
      const u = masks(`${t.source}[${e}].up`);
      return g || u ? { bits: concatBits(g, rowElems / 2, u, rowElems / 2), offset: 0 } : undefined;
    };
    if (p.origin !== undefined) return expertMask(p.origin);
    // A fused tensor copied whole: one piece spanning every expert's row, so build the bits row by row.
    const parts = Array.from({ length: rows }, (_, e) => expertMask(e));
    if (parts.every((x) => !x)) return undefined;
    const out = new Uint32Array(Math.ceil((rows * rowElems) / 32));
    for (let e = 0; e < rows; e++) {
      const pm = parts[e];
      for (let j = 0; j < rowElems; j++) if (!pm || bit(pm.bits, pm.offset + j)) out[(e * rowElems + j) >>> 5]! |= 1 << ((e * rowElems + j) & 31);
    }
    return { bits: out, offset: 0 };
  }
  const m = masks(t.source);
  return m && { bits: m, offset: 0 };
}

/**
 * Zeroes the pruned elements of a stream of piece bytes (chunks of whole elements, in order). Returns a new
 * stream; the input chunks are not modified (they may be the reader's buffers).
 */
export async function* maskedBytes(chunks: AsyncIterable<Uint8Array>, mask: PieceMask, dtype: OutputTensor['dtype'], what: string): AsyncGenerator<Uint8Array> {
  const size = dtypeBits(dtype) / 8;
  if (!Number.isInteger(size) || size < 1) throw new MoePruneError('InvalidPlan', `cannot write zeros into "${what}": ${dtype} elements are not whole bytes`);
  let elem = 0;
  for await (const c of chunks) {
    if (c.byteLength % size) throw new MoePruneError('InvalidPlan', `"${what}": a piece of ${c.byteLength} bytes is not whole ${dtype} elements`);
    const out = c.slice();
    const n = c.byteLength / size;
    for (let j = 0; j < n; j++) if (!bit(mask.bits, mask.offset + elem + j)) out.fill(0, j * size, (j + 1) * size);
    elem += n;
    yield out;
  }
}
