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
  return {
    chunkCount: Math.max(1, Math.ceil(total / chunkElems)),
    async chunk(expert, c, signal, into) {
      const segs = segments(cat, layer, expert);
      const lo = c * chunkElems;
      const hi = Math.min(total, lo + chunkElems);
      // A spare array of the right length is filled in place of a fresh one.
      const out = into?.length === hi - lo ? into : new Float32Array(hi - lo);
      let base = 0;
      for (const s of segs) {
        const a = Math.max(lo, base);
        const b = Math.min(hi, base + s.elems);
        if (a < b) {
          const file = shardOf(cat, s.tensor);
          const dtype = file.info(s.tensor).dtype;
          const bytesPer = dtypeBits(dtype) / 8;
          const bytes = await file.readRange(s.tensor, s.offset + (a - base) * bytesPer, (b - a) * bytesPer, signal);
          decodeIntoF32(dtype, bytes, out, a - lo, s.tensor);
        }
        base += s.elems;
      }
      return out;
    },
  };
}
