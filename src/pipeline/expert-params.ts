/**
 * Streams one expert's parameters θ = concat(gate | up | down), flattened row-major, in fixed-size chunks,
 * from either layout: per-expert tensors, or row e of fused [E,2I,H] (gate rows then up rows) and [E,H,I].
 * The two layouts give the same θ, so representatives do not depend on how the checkpoint was saved.
 */
import { MoePruneError } from '../core/errors.ts';
import { decodeIntoF32, dtypeBits } from '../formats/dtype.ts';
import { shardOf, type Catalogue } from '../models/catalogue.ts';
import { expertTensorNames, fusedExpertTensorNames } from '../models/families.ts';
import type { ExpertIndex, LayerIndex } from '../models/types.ts';
import type { ExpertParamSource } from '../prune/experts/representative.ts';

interface Segment {
  readonly tensor: string;
  /** Byte offset of the expert's data inside the tensor. */
  readonly offset: number;
  readonly elems: number;
}

function segments(cat: Catalogue, layer: LayerIndex, expert: ExpertIndex): Segment[] {
  const naming = cat.naming;
  const entry = (name: string) => {
    const e = cat.tensors.get(name);
    if (!e) throw new MoePruneError('MissingTensor', `layer ${layer} expert ${expert}: no tensor "${name}"`);
    return e;
  };
  if (naming.perExpert)
    return expertTensorNames(naming, layer, expert).map(({ name }) => {
      const e = entry(name);
      return { tensor: name, offset: 0, elems: (e.byteLength * 8) / dtypeBits(e.dtype) };
    });
  return fusedExpertTensorNames(naming, layer).map(({ name }) => {
    const e = entry(name);
    const rowBytes = e.byteLength / (e.shape[0] ?? 1);
    return { tensor: name, offset: expert * rowBytes, elems: (rowBytes * 8) / dtypeBits(e.dtype) };
  });
}

/** FP8 experts are compared on their stored (unscaled) values: block scales only rescale whole blocks. */
export function expertParamSource(cat: Catalogue, layer: LayerIndex, chunkElems = 1 << 20): ExpertParamSource {
  const first = segments(cat, layer, 0 as ExpertIndex);
  const total = first.reduce((s, x) => s + x.elems, 0);
  const span = (c: number) => ({ lo: c * chunkElems, hi: Math.min(total, (c + 1) * chunkElems) });
  /** Calls `piece(tensor, byte offset, values, at)` for each tensor stretch of chunk c (`at`: index in the chunk). */
  const pieces = async (expert: ExpertIndex, c: number, piece: (s: Segment, byteOffset: number, n: number, at: number) => Promise<void>) => {
    const { lo, hi } = span(c);
    let base = 0;
    for (const s of segments(cat, layer, expert)) {
      const a = Math.max(lo, base);
      const b = Math.min(hi, base + s.elems);
      if (a < b) {
        const bytesPer = dtypeBits(shardOf(cat, s.tensor).info(s.tensor).dtype) / 8;
        await piece(s, s.offset + (a - base) * bytesPer, b - a, a - lo);
      }
      base += s.elems;
    }
  };
  const allBf16 = first.every((s) => shardOf(cat, s.tensor).info(s.tensor).dtype === 'BF16');
  return {
    chunkCount: Math.max(1, Math.ceil(total / chunkElems)),
    async chunk(expert, c, signal, into) {
      const { lo, hi } = span(c);
      // A spare array of the right length is filled in place of a fresh one.
      const out = into?.length === hi - lo ? into : new Float32Array(hi - lo);
      await pieces(expert, c, async (s, offset, n, at) => {
        const file = shardOf(cat, s.tensor);
        const dtype = file.info(s.tensor).dtype;
        decodeIntoF32(dtype, await file.readRange(s.tensor, offset, n * (dtypeBits(dtype) / 8), signal), out, at, s.tensor);
      });
      return out;
    },
    // The stored bits go straight into the caller's array (on the CLI: the CPU kernel's memory), undecoded.
    ...(allBf16 && {
      async bf16Chunk(expert: ExpertIndex, c: number, signal?: AbortSignal, into?: Uint16Array) {
        const { lo, hi } = span(c);
        const out = into?.length === hi - lo ? into : new Uint16Array(hi - lo);
        await pieces(expert, c, async (s, offset, n, at) => {
          const file = shardOf(cat, s.tensor);
          if (file.info(s.tensor).dtype !== 'BF16')
            throw new MoePruneError('UnknownDtype', `layer ${layer} expert ${expert}: "${s.tensor}" is ${file.info(s.tensor).dtype}, expert 0's weights are BF16`, file.name);
          await file.readRangeInto(s.tensor, offset, new Uint8Array(out.buffer, out.byteOffset + at * 2, n * 2), signal);
        });
        return out;
      },
    }),
  };
}
