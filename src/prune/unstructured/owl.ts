/**
 * OWL (outlier-weighed layerwise sparsity; Yin et al. 2024, as STUN's code uses it): layers with more outlier
 * scores get lower sparsity. Pure arithmetic on per-layer outlier ratios; the scores come from the GPU.
 */

/** Layer outlier density in percent: share of the layer's scores above M · mean(scores). */
export function lodPercent(above: number, count: number): number {
  return count > 0 ? (100 * above) / count : 0;
}

/**
 * Per-layer ratios around the target S: r = (LOD − min)/(max − min) · 2λ (all 0 when every LOD is equal),
 * s_ℓ = S − (r_ℓ − mean r), and 0.01 where that is ≤ 0 (the official code's floor).
 */
export function owlRatios(lod: readonly number[], target: number, lambda: number): number[] {
  if (!lod.length) return [];
  const lo = Math.min(...lod);
  const hi = Math.max(...lod);
  const r = lod.map((v) => (hi > lo ? ((v - lo) / (hi - lo)) * 2 * lambda : 0));
  const mean = r.reduce((a, b) => a + b, 0) / r.length;
  return r.map((v) => {
    const s = target - (v - mean);
    return s <= 0 ? 0.01 : s;
  });
}
