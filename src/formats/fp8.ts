import { MoePruneError } from '../core/errors.ts';

/**
 * DeepSeek-V3-style block FP8: weight [rows, cols] in F8_E4M3 with `*_scale_inv` [ceil(rows/B), ceil(cols/B)]
 * (B = 128 by default). The real value is fp8 × scale_inv of the block the element falls in.
 * `weight` must already be widened to f32 (decodeToF32); `rowOffset` lets callers dequantise a row range.
 */
export function dequantBlockFp8(
  weight: Float32Array,
  cols: number,
  scaleInv: Float32Array,
  scaleCols: number,
  block: readonly [number, number] = [128, 128],
  rowOffset = 0,
): Float32Array {
  const rows = weight.length / cols;
  if (!Number.isInteger(rows)) throw new MoePruneError('InvalidArgument', `fp8 weight of ${weight.length} values is not a multiple of ${cols} columns`);
  if (Math.ceil(cols / block[1]) !== scaleCols)
    throw new MoePruneError('InvalidArgument', `scale_inv has ${scaleCols} block columns, expected ${Math.ceil(cols / block[1])}`);
  const out = new Float32Array(weight.length);
  for (let r = 0; r < rows; r++) {
    const sRow = Math.floor((r + rowOffset) / block[0]) * scaleCols;
    for (let c = 0; c < cols; c++) out[r * cols + c] = weight[r * cols + c]! * scaleInv[sRow + Math.floor(c / block[1])]!;
  }
  return out;
}
