/**
 * The arithmetic of one parameter chunk for `selectRepresentative`, in a module of its own with no imports so a
 * worker thread (src/cli/cpu-workers.ts) loads nothing else.
 *
 * For members' chunks x₀ … x_{k−1} (equal lengths), out[i] = Σ_t (x_i[t] − m[t])², m[t] = (((0 + x₀[t]) + x₁[t]) + …) / k,
 * every sum in float64 and taken in exactly that order (t ascending for out[i]): the order the distances' tests pin.
 * The chunk is walked in blocks small enough for the cache: a block's centroid is summed into `scratch`, then the
 * members' running sums continue over that block while its values are still cached. A running sum parked in a
 * Float64Array between blocks is the same double, so blocking changes no bit; the members are read from memory once.
 */

/** Elements per block: k member blocks (float32) and the centroid block (float64) stay in L1/L2. */
export const SQ_BLOCK = 2048;

export function chunkSqDistances(xs: readonly Float32Array[], out: Float64Array, scratch: Float64Array = new Float64Array(SQ_BLOCK)): Float64Array {
  const k = xs.length;
  const len = k > 0 ? xs[0]!.length : 0;
  const B = scratch.length;
  out.fill(0, 0, k);
  for (let lo = 0; lo < len; lo += B) {
    const n = Math.min(B, len - lo);
    const m = scratch;
    // Centroid of the block: members added in member order, four per sweep (same order as one at a time).
    let i = 0;
    if (k >= 4) {
      const a = xs[0]!, b = xs[1]!, c = xs[2]!, d = xs[3]!;
      for (let t = 0; t < n; t++) {
        const u = lo + t;
        m[t] = 0 + a[u]! + b[u]! + c[u]! + d[u]!;
      }
      i = 4;
    } else for (let t = 0; t < n; t++) m[t] = 0;
    for (; i + 4 <= k; i += 4) {
      const a = xs[i]!, b = xs[i + 1]!, c = xs[i + 2]!, d = xs[i + 3]!;
      for (let t = 0; t < n; t++) {
        const u = lo + t;
        m[t] = m[t]! + a[u]! + b[u]! + c[u]! + d[u]!;
      }
    }
    for (; i < k; i++) {
      const a = xs[i]!;
      for (let t = 0; t < n; t++) m[t] = m[t]! + a[lo + t]!;
    }
    for (let t = 0; t < n; t++) m[t] = m[t]! / k;
    // Each member's running sum goes on over this block, several independent sums per sweep: one sum alone waits
    // on its own additions, so member groups of 4 to 6 (or all of a smaller cluster) share each sweep.
    for (i = 0; i < k; ) {
      const w = k - i <= 6 ? k - i : 4;
      sweep(w, xs, i, lo, n, m, out);
      i += w;
    }
  }
  return out;
}

/** out[i..i+w) += Σ_{t<n} (x[lo+t] − m[t])² for members i..i+w−1, each sum in t order. */
function sweep(w: number, xs: readonly Float32Array[], i: number, lo: number, n: number, m: Float64Array, out: Float64Array): void {
  const a = xs[i]!;
  let sa = out[i]!;
  if (w === 1) {
    for (let t = 0; t < n; t++) {
      const va = a[lo + t]! - m[t]!;
      sa += va * va;
    }
    out[i] = sa;
    return;
  }
  const b = xs[i + 1]!;
  let sb = out[i + 1]!;
  if (w === 2) {
    for (let t = 0; t < n; t++) {
      const u = lo + t, mt = m[t]!;
      const va = a[u]! - mt, vb = b[u]! - mt;
      sa += va * va;
      sb += vb * vb;
    }
    out[i] = sa;
    out[i + 1] = sb;
    return;
  }
  const c = xs[i + 2]!;
  let sc = out[i + 2]!;
  if (w === 3) {
    for (let t = 0; t < n; t++) {
      const u = lo + t, mt = m[t]!;
      const va = a[u]! - mt, vb = b[u]! - mt, vc = c[u]! - mt;
      sa += va * va;
      sb += vb * vb;
      sc += vc * vc;
    }
    out[i] = sa;
    out[i + 1] = sb;
    out[i + 2] = sc;
    return;
  }
  const d = xs[i + 3]!;
  let sd = out[i + 3]!;
  if (w === 4) {
    for (let t = 0; t < n; t++) {
      const u = lo + t, mt = m[t]!;
      const va = a[u]! - mt, vb = b[u]! - mt, vc = c[u]! - mt, vd = d[u]! - mt;
      sa += va * va;
      sb += vb * vb;
      sc += vc * vc;
      sd += vd * vd;
    }
  } else if (w === 5) {
    const e = xs[i + 4]!;
    let se = out[i + 4]!;
    for (let t = 0; t < n; t++) {
      const u = lo + t, mt = m[t]!;
      const va = a[u]! - mt, vb = b[u]! - mt, vc = c[u]! - mt, vd = d[u]! - mt, ve = e[u]! - mt;
      sa += va * va;
      sb += vb * vb;
      sc += vc * vc;
      sd += vd * vd;
      se += ve * ve;
    }
    out[i + 4] = se;
  } else {
    const e = xs[i + 4]!, f = xs[i + 5]!;
    let se = out[i + 4]!, sf = out[i + 5]!;
    for (let t = 0; t < n; t++) {
      const u = lo + t, mt = m[t]!;
      const va = a[u]! - mt, vb = b[u]! - mt, vc = c[u]! - mt, vd = d[u]! - mt, ve = e[u]! - mt, vf = f[u]! - mt;
      sa += va * va;
      sb += vb * vb;
      sc += vc * vc;
      sd += vd * vd;
      se += ve * ve;
      sf += vf * vf;
    }
    out[i + 4] = se;
    out[i + 5] = sf;
  }
  out[i] = sa;
  out[i + 1] = sb;
  out[i + 2] = sc;
  out[i + 3] = sd;
}
