// Score-and-mask kernels of unstructured pruning (STUN stage 2: Wanda, magnitude, N:M, OWL statistics), for one
// dim-0 part of a weight W [out, in] read in its stored dtype (lib/widen.wgsl, appended by the TS wrapper).
//
// Selection key of element (r, i): (w·w)·normsq[i] (Wanda) or w·w (magnitude), in f32, as u32 bits. Keys are
// ≥ 0, so their bits order like their values and a radix select on bits needs no float compare. Squares order
// like |w|·sqrt(normsq) without a sqrt. Subnormal or negative factors and products count as 0 and NaN as +inf,
// so flush-to-zero hardware and the CPU reference (which mirrors these rules) agree bit for bit.
//
// Masks: bit (mask_base + r·in + i) of `mask`, LSB first, 1 = keep. Row and part boundaries fall inside words,
// so words are OR-ed (atomicOr) into a zeroed buffer; each invocation owns whole words wherever it can.
//
// Ties everywhere: ascending by (key, index), the lowest entries pruned; among equal keys the lower index goes
// first. A selection finds the threshold key T (the k-th lowest), prunes every key < T and then the first
// `need` keys equal to T in index order, which needs their rank: counts per invocation, prefixed in order.
//
// Radix select: four passes over bits 30..23, 22..15, 14..7, 6..0 (bit 31 of a key is always 0) with 256 bins.
// Workgroup memory stays this small on purpose: SwiftShader's pipeline creation time grows by about a
// millisecond per workgroup-memory word (a 2048-bin histogram plus a row cache of keys took over 10 s).
//
// Entry points:
//   row_select  one workgroup per row: radix select on the row's keys (re-read from W each pass), then marking.
//   nm_select   one invocation per run of N:M groups (NM_M consecutive inputs): rank inside the group.
//   mat_hist    one radix pass of the whole-matrix select: keys matching `prefix` under `pmask` add to a
//               256-bin histogram (workgroup-local, then global atomics; the CPU picks the bin).
//   mat_eq      per invocation: how many keys equal T (the CPU prefixes them into `bases`).
//   mat_mark    marks a part: keep all, keep key > T, or rank the keys equal to T from `bases`.
//   score_stats per invocation: Σ |w|·sqrt(normsq·norm_scale) and how many exceed `above` (OWL).
//   count_kept  popcount of the first `k` bits of a mask, into counter[0].

// DTYPE of W: see lib/widen.wgsl.
override HAS_SCALE: u32 = 0u; // FP8 block scales: w = fp8 · scale[(row0 + r) / SCALE_BR, i / SCALE_BC]
override HAS_NORM: u32 = 0u;  // Wanda: normsq f32 [in] present
override SCALE_BR: u32 = 128u;
override SCALE_BC: u32 = 128u;
override WG: u32 = 256u;      // ≤ BINS: row_select reuses the bins as per-invocation counts
override NM_M: u32 = 4u;      // nm_select: group size (≤ 32)

const BINS = 256u;
const MIN_NORMAL = 0x00800000u;
const INF_BITS = 0x7f800000u;
const MODE_KEEP_ALL = 0u;
const MODE_ABOVE = 1u; // keep key > thr (every key equal to thr is pruned)
const MODE_RANK = 2u;  // keep key > thr, and keys equal to thr whose rank among them is ≥ need

struct Params {
  rows: u32,       // rows in this part
  cols: u32,       // in
  mask_base: u32,  // mask bit of this part's first element (rowStart · in)
  row0: u32,       // scale-grid row of this part's row 0
  scale_cols: u32, // ceil(in / SCALE_BC)
  k: u32,          // row_select: prune per row; nm_select: n; count_kept: bits to count
  mode: u32,       // mat_mark
  thr: u32,        // threshold key bits (mat_eq, mat_mark)
  need: u32,       // mat_mark: keys equal to thr that are pruned (lowest flat index first)
  shift: u32,      // mat_hist: bin = (key >> shift) & 255
  pmask: u32,      // mat_hist: key bits already decided ...
  prefix: u32,     // ... and their value
  inv_base: u32,   // matrix passes: this part's first invocation among all parts (bases, outv)
  wpt: u32,        // matrix passes and count_kept: mask words per invocation
  above: u32,      // score_stats: f32 bits
  norm_scale: u32, // score_stats: f32 bits
}

@group(0) @binding(0) var<storage, read> w: array<u32>;
@group(0) @binding(1) var<storage, read> scale: array<f32>;
@group(0) @binding(2) var<storage, read> normsq: array<f32>;
@group(0) @binding(3) var<storage, read_write> mask: array<atomic<u32>>;
@group(0) @binding(3) var<storage, read> mask_in: array<u32>;
@group(0) @binding(4) var<uniform> p: Params;
@group(0) @binding(5) var<storage, read_write> ghist: array<atomic<u32>>; // mat_hist bins; count_kept counter
@group(0) @binding(6) var<storage, read> bases: array<u32>;              // mat_mark: ties before each invocation
@group(0) @binding(7) var<storage, read_write> outv: array<u32>;         // mat_eq counts; score_stats pairs

var<workgroup> hist: array<atomic<u32>, BINS>;
var<workgroup> sel: vec4u;
var<workgroup> total: atomic<u32>;

// f32 value of element e = r · in + i of this part (its word read in the stored dtype, block scale applied).
fn weight(e: u32, r: u32, i: u32) -> f32 {
  var v = widen_word(w[word_of(e)], e);
  if (HAS_SCALE == 1u) {
    v *= scale[((p.row0 + r) / SCALE_BR) * p.scale_cols + i / SCALE_BC];
  }
  return v;
}

// Below the smallest normal (subnormal, negative, −0) → +0; NaN passes (comparisons with NaN are false).
fn flush(x: f32) -> f32 {
  return select(x, 0.0, x < bitcast<f32>(MIN_NORMAL));
}

fn key_of(e: u32, r: u32, i: u32) -> u32 {
  let v = weight(e, r, i);
  var s = flush(v * v);
  if (HAS_NORM == 1u) {
    s = flush(s * flush(normsq[i]));
  }
  let b = bitcast<u32>(s);
  return select(b, INF_BITS, b > INF_BITS); // NaN (either sign) → +inf: kept
}

// Elements [x, y) of a run of n elements starting at mask bit g0 whose bits lie in words [w0, w1).
fn word_span(g0: u32, n: u32, w0: u32, w1: u32) -> vec2u {
  if (n == 0u) {
    return vec2u(0u, 0u);
  }
  let fw = g0 >> 5u;
  let lw = (g0 + n - 1u) >> 5u;
  let a = max(w0, fw);
  let b = min(w1, lw + 1u);
  if (a >= b) {
    return vec2u(0u, 0u);
  }
  let x = select(a * 32u - g0, 0u, a == fw);
  let y = select(b * 32u - g0, n, b == lw + 1u);
  return vec2u(x, y);
}

// Mask bits gathered word by word; a word is OR-ed in when the run moves past it (or at flush_bits).
var<private> out_word: u32 = 0xffffffffu;
var<private> out_bits: u32 = 0u;

fn flush_bits() {
  if (out_bits != 0u) {
    atomicOr(&mask[out_word], out_bits);
  }
  out_bits = 0u;
}

fn put_bit(g: u32, keep: bool) {
  let wd = g >> 5u;
  if (wd != out_word) {
    flush_bits();
    out_word = wd;
  }
  if (keep) {
    out_bits |= 1u << (g & 31u);
  }
}

// ------------------------------------------------------------------------------------------- per-row select

// One workgroup per row: prune exactly p.k entries with the lowest (key, index); 0 < p.k < in (the wrapper
// handles 0 and in without this kernel).
@compute @workgroup_size(WG)
fn row_select(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let r = wid.x + wid.y * nwg.x;
  if (r >= p.rows) {
    return;
  }
  let cols = p.cols;
  let e0 = r * cols;

  var prefix = 0u;
  var pmask = 0u;
  var rank = p.k - 1u; // 0-based rank of T among the keys still matching the prefix
  var less = 0u;       // keys below the prefix so far
  var eq = 0u;
  for (var pi = 0u; pi < 4u; pi++) {
    let shift = select(23u - pi * 8u, 0u, pi == 3u); // 23, 15, 7, 0 (the last pass has 7 bits)
    atomicStore(&hist[lid], 0u);
    if (WG < BINS) {
      for (var b = lid + WG; b < BINS; b += WG) {
        atomicStore(&hist[b], 0u);
      }
    }
    workgroupBarrier();
    for (var i = lid; i < cols; i += WG) {
      let kk = key_of(e0 + i, r, i);
      if ((kk & pmask) == prefix) {
        atomicAdd(&hist[(kk >> shift) & 255u], 1u);
      }
    }
    workgroupBarrier();
    // One invocation walks the 256 bins: cheaper than a scan's barriers on software adapters.
    if (lid == 0u) {
      var cum = 0u;
      var b = 0u;
      loop {
        let h = atomicLoad(&hist[b]);
        if (b == BINS - 1u || cum + h > rank) {
          break;
        }
        cum += h;
        b++;
      }
      sel = vec4u(b, cum, atomicLoad(&hist[b]), 0u);
    }
    let s = workgroupUniformLoad(&sel);
    prefix |= s.x << shift;
    pmask |= select(255u, 127u, pi == 3u) << shift;
    rank -= s.y;
    less += s.y;
    eq = s.z;
  }
  let thr = prefix;
  let need = p.k - less; // 1 ≤ need ≤ eq

  // Each invocation owns whole mask words of the row (the first and last may be shared with other rows).
  let g0 = p.mask_base + e0;
  let fw = g0 >> 5u;
  let nw = ((g0 + cols - 1u) >> 5u) - fw + 1u;
  let wpt = (nw + WG - 1u) / WG;
  let span = word_span(g0, cols, fw + lid * wpt, fw + lid * wpt + wpt);
  var seen = 0u; // keys equal to thr before this element, in row order
  if (need < eq) {
    // Per-invocation counts of threshold keys (in the bins, no longer needed), prefixed in invocation order.
    var c = 0u;
    for (var i = span.x; i < span.y; i++) {
      c += u32(key_of(e0 + i, r, i) == thr);
    }
    atomicStore(&hist[lid], c);
    workgroupBarrier();
    if (lid == 0u) {
      var run = 0u;
      for (var t = 0u; t < WG; t++) {
        run += atomicExchange(&hist[t], run);
      }
    }
    workgroupBarrier();
    seen = atomicLoad(&hist[lid]);
  }
  for (var i = span.x; i < span.y; i++) {
    let kk = key_of(e0 + i, r, i);
    var keep = kk > thr;
    if (kk == thr) {
      keep = seen >= need;
      seen++;
    }
    put_bit(g0 + i, keep);
  }
  flush_bits();
}

// ------------------------------------------------------------------------------------------------------ N:M

// Groups of NM_M consecutive inputs (in % NM_M == 0, so a group never straddles rows); in each, the p.k lowest
// (key, index) are pruned. Each invocation takes max(1, 32 / NM_M) consecutive groups: about one mask word.
@compute @workgroup_size(WG)
fn nm_select(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let per = max(1u, 32u / NM_M);
  let groups = p.rows * (p.cols / NM_M);
  let t = gid.x + gid.y * nwg.x * WG;
  let g_first = t * per;
  if (g_first >= groups) {
    return;
  }
  let g_end = min(g_first + per, groups);
  var keys: array<u32, 32>;
  for (var g = g_first; g < g_end; g++) {
    let e = g * NM_M;
    let r = e / p.cols;
    let i0 = e - r * p.cols;
    for (var j = 0u; j < NM_M; j++) {
      keys[j] = key_of(e + j, r, i0 + j);
    }
    for (var j = 0u; j < NM_M; j++) {
      let kj = keys[j];
      var below = 0u;
      for (var l = 0u; l < NM_M; l++) {
        below += u32(keys[l] < kj || (keys[l] == kj && l < j));
      }
      put_bit(p.mask_base + e + j, below >= p.k);
    }
  }
  flush_bits();
}

// ----------------------------------------------------------------------------------------- whole-matrix passes

// Invocation `inv` of a part owns mask words [fw + inv·wpt, +wpt) of the part's bits (fw its first word);
// its element span in the part.
fn mat_span(inv: u32) -> vec2u {
  let w0 = (p.mask_base >> 5u) + inv * p.wpt;
  return word_span(p.mask_base, p.rows * p.cols, w0, w0 + p.wpt);
}

// Invocations that own words of this part.
fn mat_invocations() -> u32 {
  let n = p.rows * p.cols;
  if (n == 0u) {
    return 0u;
  }
  let nw = ((p.mask_base + n - 1u) >> 5u) - (p.mask_base >> 5u) + 1u;
  return (nw + p.wpt - 1u) / p.wpt;
}

@compute @workgroup_size(WG)
fn mat_hist(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let wg = wid.x + wid.y * nwg.x;
  if (wg * WG >= mat_invocations()) {
    return;
  }
  atomicStore(&hist[lid], 0u);
  if (WG < BINS) {
    for (var b = lid + WG; b < BINS; b += WG) {
      atomicStore(&hist[b], 0u);
    }
  }
  workgroupBarrier();
  let span = mat_span(wg * WG + lid);
  var r = span.x / p.cols;
  var i = span.x - r * p.cols;
  for (var e = span.x; e < span.y; e++) {
    let kk = key_of(e, r, i);
    if ((kk & p.pmask) == p.prefix) {
      atomicAdd(&hist[(kk >> p.shift) & 255u], 1u);
    }
    i++;
    if (i == p.cols) {
      i = 0u;
      r++;
    }
  }
  workgroupBarrier();
  for (var b = lid; b < BINS; b += WG) {
    let h = atomicLoad(&hist[b]);
    if (h != 0u) {
      atomicAdd(&ghist[b], h);
    }
  }
}

fn flat_invocation(gid: vec3u, nwg: vec3u) -> u32 {
  return gid.x + gid.y * nwg.x * WG;
}

@compute @workgroup_size(WG)
fn mat_eq(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let inv = flat_invocation(gid, nwg);
  if (inv >= mat_invocations()) {
    return;
  }
  let span = mat_span(inv);
  var r = span.x / p.cols;
  var i = span.x - r * p.cols;
  var c = 0u;
  for (var e = span.x; e < span.y; e++) {
    c += u32(key_of(e, r, i) == p.thr);
    i++;
    if (i == p.cols) {
      i = 0u;
      r++;
    }
  }
  outv[p.inv_base + inv] = c;
}

@compute @workgroup_size(WG)
fn mat_mark(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let inv = flat_invocation(gid, nwg);
  if (inv >= mat_invocations()) {
    return;
  }
  let span = mat_span(inv);
  if (p.mode == MODE_KEEP_ALL) {
    for (var e = span.x; e < span.y; e++) {
      put_bit(p.mask_base + e, true);
    }
    flush_bits();
    return;
  }
  var seen = 0u; // keys equal to thr before this element, in flat order over all parts
  if (p.mode == MODE_RANK) {
    seen = bases[p.inv_base + inv];
  }
  var r = span.x / p.cols;
  var i = span.x - r * p.cols;
  for (var e = span.x; e < span.y; e++) {
    let kk = key_of(e, r, i);
    var keep = kk > p.thr;
    if (kk == p.thr) {
      keep = p.mode == MODE_RANK && seen >= p.need;
      seen++;
    }
    put_bit(p.mask_base + e, keep);
    i++;
    if (i == p.cols) {
      i = 0u;
      r++;
    }
  }
  flush_bits();
}

// OWL outlier statistics: score a = |w| · sqrt(normsq[i] · norm_scale) (normsq ≡ 1 without HAS_NORM). Per
// invocation: the f32 sum of its scores and how many exceed `above` (the CPU adds them up in f64).
@compute @workgroup_size(WG)
fn score_stats(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let inv = flat_invocation(gid, nwg);
  if (inv >= mat_invocations()) {
    return;
  }
  let ns = bitcast<f32>(p.norm_scale);
  let above = bitcast<f32>(p.above);
  let span = mat_span(inv);
  var r = span.x / p.cols;
  var i = span.x - r * p.cols;
  var s = 0.0;
  var c = 0u;
  for (var e = span.x; e < span.y; e++) {
    var n = ns;
    if (HAS_NORM == 1u) {
      n = normsq[i] * ns;
    }
    let a = abs(weight(e, r, i)) * sqrt(n);
    s += a;
    c += u32(a > above);
    i++;
    if (i == p.cols) {
      i = 0u;
      r++;
    }
  }
  let o = (p.inv_base + inv) * 2u;
  outv[o] = bitcast<u32>(s);
  outv[o + 1u] = c;
}

// Kept bits among the first p.k bits of mask_in (bits past them are ignored), added into ghist[0]. Each
// invocation takes p.wpt consecutive words.
@compute @workgroup_size(WG)
fn count_kept(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let wg = wid.x + wid.y * nwg.x;
  let words = p.k / 32u + u32(p.k % 32u != 0u); // p.k may be near 2³²
  if (wg * WG * p.wpt >= words) {
    return;
  }
  if (lid == 0u) {
    atomicStore(&total, 0u);
  }
  workgroupBarrier();
  let w0 = (wg * WG + lid) * p.wpt;
  let w1 = min(w0 + p.wpt, words);
  var c = 0u;
  for (var x = w0; x < w1; x++) {
    var bits = mask_in[x];
    let tail = p.k - x * 32u;
    if (tail < 32u) {
      bits &= (1u << tail) - 1u;
    }
    c += countOneBits(bits);
  }
  if (c != 0u) {
    atomicAdd(&total, c);
  }
  workgroupBarrier();
  if (lid == 0u) {
    let t = atomicLoad(&total);
    if (t != 0u) {
      atomicAdd(&ghist[0], t);
    }
  }
}
