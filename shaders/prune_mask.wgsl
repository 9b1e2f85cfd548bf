// Score-and-mask kernels of unstructured pruning (STUN stage 2: Wanda, magnitude, N:M, OWL statistics), for one
// dim-0 part of a weight W [out, in] read in its stored dtype (lib/widen.wgsl, appended by the TS wrapper).
//
// Selection key of element (r, i): (w·w)·normsq[i] (Wanda) or w·w (magnitude), in f32, as u32 bits. Keys are
// ≥ 0, so their bits order like their values and a radix select on bits needs no float compare. Squares order
// like |w|·sqrt(normsq) without a sqrt. Subnormal or negative factors and products count as 0 and NaN as +inf,
// so flush-to-zero hardware and the CPU reference (which mirrors these rules) agree bit for bit.
//
// Masks: bit (mask_base + r·in + i) of `mask`, LSB first, 1 = keep. Row and part boundaries fall inside words,
// so words are OR-ed (atomicOr) into a zeroed buffer; invocations own whole mask words, so only words at row or
// part ends are written by more than one invocation.
//
// Ties everywhere: ascending by (key, index), the lowest entries pruned; among equal keys the lower index goes
// first. A selection finds the threshold key T (the k-th lowest), prunes every key < T and then the first
// `need` keys equal to T in index order, which needs their rank: counts per invocation, prefixed in order.
//
// Radix select: four passes over bits 30..23, 22..15, 14..7, 6..0 (bit 31 of a key is always 0) with 256 bins.
// Keys are recomputed from W in every pass rather than cached: on SwiftShader private-array reads cost about as
// much as the vectorised recomputation, and GPUs serve the re-reads of a row from cache. Workgroup memory stays
// small on purpose: SwiftShader's pipeline creation time grows by about a millisecond per workgroup-memory word.
//
// Entry points:
//   row_select  one workgroup per row: radix select on the row's keys, then marking.
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
override ALIGNED: u32 = 0u;   // in % 32 == 0: every mask word lies in one row; its keys are computed 4 at a time
override NM_M: u32 = 4u;      // nm_select: group size (≤ 32)

const BINS = 256u;
const MIN_NORMAL = 0x00800000u;
const INF_BITS = 0x7f800000u;
const SENTINEL = 0xffffffffu; // key of a mask bit outside the part or row: bit 31 set, no key has it
const ANY_ROW = 0xffffffffu;
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

// W and normsq are read as vec4s (aligned words load 16 bytes at a time); their bindings are padded to 16 bytes.
@group(0) @binding(0) var<storage, read> w4: array<vec4u>;
@group(0) @binding(1) var<storage, read> scale: array<f32>;
@group(0) @binding(2) var<storage, read> normsq4: array<vec4f>;
@group(0) @binding(3) var<storage, read_write> mask: array<atomic<u32>>;
@group(0) @binding(3) var<storage, read> mask_in: array<u32>;
@group(0) @binding(4) var<uniform> p: Params;
@group(0) @binding(5) var<storage, read_write> ghist: array<atomic<u32>>; // mat_hist bins; count_kept counter
@group(0) @binding(6) var<storage, read> bases: array<u32>;              // mat_mark: ties before each invocation
@group(0) @binding(7) var<storage, read_write> outv: array<u32>;         // mat_eq counts; score_stats pairs

var<workgroup> hist: array<atomic<u32>, BINS>;
var<workgroup> sel: vec4u;
var<workgroup> total: atomic<u32>;

fn word(wd: u32) -> u32 {
  return w4[wd >> 2u][wd & 3u];
}

fn norm(i: u32) -> f32 {
  return normsq4[i >> 2u][i & 3u];
}

fn scale_at(r: u32, i: u32) -> f32 {
  return scale[((p.row0 + r) / SCALE_BR) * p.scale_cols + i / SCALE_BC];
}

// f32 value of element e = r · in + i of this part (its word read in the stored dtype, block scale applied).
fn weight(e: u32, r: u32, i: u32) -> f32 {
  var v = widen_word(word(word_of(e)), e);
  if (HAS_SCALE == 1u) {
    v *= scale_at(r, i);
  }
  return v;
}

// Below the smallest normal (subnormal, negative, −0) → +0; NaN passes (comparisons with NaN are false).
fn flush4(x: vec4f) -> vec4f {
  return select(x, vec4f(0.0), x < vec4f(bitcast<f32>(MIN_NORMAL)));
}

// Keys of four (scaled) weight values in input columns with norms n (ignored without HAS_NORM).
fn key4(v: vec4f, n: vec4f) -> vec4u {
  var s = flush4(v * v);
  if (HAS_NORM == 1u) {
    s = flush4(s * flush4(n));
  }
  let b = bitcast<vec4u>(s);
  return select(b, vec4u(INF_BITS), b > vec4u(INF_BITS)); // NaN (either sign) → +inf: kept
}

fn key_of(e: u32, r: u32, i: u32) -> u32 {
  var n = 0.0;
  if (HAS_NORM == 1u) {
    n = norm(i);
  }
  return key4(vec4f(weight(e, r, i)), vec4f(n)).x;
}

// The four weights at positions 4q .. 4q + 3 (q < 8) of an aligned mask word whose bit 0 is part element eb.
fn weights4(eb: u32, q: u32) -> vec4f {
  if (DTYPE == 0u) {
    return bitcast<vec4f>(w4[eb / 4u + q]);
  }
  if (DTYPE == 3u) {
    let a = w4[eb / 16u + (q >> 2u)][q & 3u];
    return vec4f(widen_f8(a & 0xffu), widen_f8((a >> 8u) & 0xffu), widen_f8((a >> 16u) & 0xffu), widen_f8(a >> 24u));
  }
  let v = w4[eb / 8u + (q >> 1u)];
  let a = select(v.x, v.z, (q & 1u) == 1u);
  let b = select(v.y, v.w, (q & 1u) == 1u);
  if (DTYPE == 2u) {
    return vec4f(bitcast<f32>(a << 16u), bitcast<f32>(a & 0xffff0000u), bitcast<f32>(b << 16u), bitcast<f32>(b & 0xffff0000u));
  }
  return vec4f(unpack2x16float(a), unpack2x16float(b));
}

// Key of mask bit g: SENTINEL outside this part, or outside row `only` (ANY_ROW: any row of the part).
fn bit_key(g: u32, only: u32) -> u32 {
  if (g < p.mask_base || g - p.mask_base >= p.rows * p.cols) {
    return SENTINEL;
  }
  let e = g - p.mask_base;
  let r = e / p.cols;
  if (only != ANY_ROW && r != only) {
    return SENTINEL;
  }
  return key_of(e, r, e - r * p.cols);
}

// A mask word whose keys are wanted: its index, the row filter, and (ALIGNED) the part element of its bit 0 and
// that element's row and column, worked out once per word (integer division is slow on software adapters).
struct Word {
  mw: u32,
  only: u32,
  eb: u32,
  r: u32,
  ib: u32,
}

fn word_at(mw: u32, only: u32) -> Word {
  if (ALIGNED == 0u) {
    return Word(mw, only, 0u, 0u, 0u);
  }
  // The part starts on a word (in % 32 == 0), so the word's bits are 32 consecutive columns of one row.
  let eb = mw * 32u - p.mask_base;
  let r = select(only, eb / p.cols, only == ANY_ROW);
  return Word(mw, only, eb, r, eb - r * p.cols);
}

// Keys of positions 4q .. 4q + 3 (q < 8) of a mask word. Each pass recomputes them group by group rather than
// keeping a word's 32 keys in an array: dynamically indexed private arrays are slow on software adapters.
fn group_keys(wd: Word, q: u32) -> vec4u {
  if (ALIGNED == 1u) {
    let r = wd.r;
    let i = wd.ib + 4u * q;
    var v = weights4(wd.eb, q);
    if (HAS_SCALE == 1u) {
      v *= vec4f(scale_at(r, i), scale_at(r, i + 1u), scale_at(r, i + 2u), scale_at(r, i + 3u));
    }
    var n = vec4f(0.0);
    if (HAS_NORM == 1u) {
      n = normsq4[i / 4u];
    }
    return key4(v, n);
  }
  let g = wd.mw * 32u + 4u * q;
  return vec4u(bit_key(g, wd.only), bit_key(g + 1u, wd.only), bit_key(g + 2u, wd.only), bit_key(g + 3u, wd.only));
}

// Adds the word's keys that match `prefix` under `pmask` to their bins.
fn hist_word(wd: Word, pmask: u32, prefix: u32, shift: u32) {
  for (var q = 0u; q < 8u; q++) {
    let kv = group_keys(wd, q);
    let m = (kv & vec4u(pmask)) == vec4u(prefix);
    if (any(m)) {
      let b = (kv >> vec4u(shift)) & vec4u(255u);
      if (m.x) {
        atomicAdd(&hist[b.x], 1u);
      }
      if (m.y) {
        atomicAdd(&hist[b.y], 1u);
      }
      if (m.z) {
        atomicAdd(&hist[b.z], 1u);
      }
      if (m.w) {
        atomicAdd(&hist[b.w], 1u);
      }
    }
  }
}

fn count_equal(wd: Word, thr: u32) -> u32 {
  var c = vec4u(0u);
  for (var q = 0u; q < 8u; q++) {
    c += vec4u(group_keys(wd, q) == vec4u(thr));
  }
  return c.x + c.y + c.z + c.w;
}

// Keep bits of a word: keys above thr, and keys equal to thr once `seen` (those before them) reaches `need`.
// `seen` is advanced past the word's keys equal to thr.
fn keep_bits(wd: Word, thr: u32, need: u32, seen: ptr<function, u32>) -> u32 {
  var bits = 0u;
  for (var q = 0u; q < 8u; q++) {
    let kv = group_keys(wd, q);
    var nib = dot(vec4u((kv > vec4u(thr)) & (kv != vec4u(SENTINEL))), vec4u(1u, 2u, 4u, 8u));
    if (any(kv == vec4u(thr))) {
      for (var c = 0u; c < 4u; c++) {
        if (kv[c] == thr) {
          nib |= u32(*seen >= need) << c;
          *seen += 1u;
        }
      }
    }
    bits |= nib << (4u * q);
  }
  return bits;
}

// ------------------------------------------------------------------------------------------- per-row select

// Zeroes the bins (every invocation clears its share) — callers barrier afterwards.
fn clear_bins(lid: u32) {
  for (var b = lid; b < BINS; b += WG) {
    atomicStore(&hist[b], 0u);
  }
}

// One workgroup per row: prune exactly p.k entries with the lowest (key, index); 0 < p.k < in (the wrapper
// handles 0 and in without this kernel). Invocation lid owns `cpl` consecutive mask words of the row, so
// invocation order is row order.
@compute @workgroup_size(WG)
fn row_select(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let r = wid.x + wid.y * nwg.x;
  if (r >= p.rows) {
    return;
  }
  let g0 = p.mask_base + r * p.cols;
  let fw = g0 >> 5u;
  let nw = ((g0 + p.cols - 1u) >> 5u) - fw + 1u;
  let cpl = (nw + WG - 1u) / WG;
  let w0 = fw + lid * cpl;
  let mine = select(0u, min(cpl, nw - lid * cpl), lid * cpl < nw);

  var prefix = 0u;
  var pmask = 0x80000000u; // SENTINEL never matches
  var rank = p.k - 1u;     // 0-based rank of T among the keys still matching the prefix
  var less = 0u;           // keys below the prefix so far
  var eq = 0u;
  for (var pi = 0u; pi < 4u; pi++) {
    let shift = select(23u - pi * 8u, 0u, pi == 3u); // 23, 15, 7, 0 (the last pass has 7 bits)
    clear_bins(lid);
    workgroupBarrier();
    for (var j = 0u; j < mine; j++) {
      hist_word(word_at(w0 + j, r), pmask, prefix, shift);
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
    if (rank + 1u == eq) {
      // T is the bin's largest key: every key in the bin goes, so the bits below need no more passes (after
      // the second pass a bin often holds only T). Keys ≤ the bin's top value are exactly the pruned ones.
      prefix |= (1u << shift) - 1u;
      break;
    }
  }
  let thr = prefix;
  let need = p.k - less; // 1 ≤ need ≤ eq

  var seen = 0u; // keys equal to thr before this invocation's words, in row order
  if (need < eq) {
    // Per-invocation counts of threshold keys (in the bins, no longer needed), prefixed in invocation order.
    var c = 0u;
    for (var j = 0u; j < mine; j++) {
      c += count_equal(word_at(w0 + j, r), thr);
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
  for (var j = 0u; j < mine; j++) {
    let bits = keep_bits(word_at(w0 + j, r), thr, need, &seen);
    if (bits != 0u) {
      atomicOr(&mask[w0 + j], bits);
    }
  }
}

// ------------------------------------------------------------------------------------------------------ N:M

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
//
// Invocation `inv` of a part owns mask words [fw + inv·wpt, +wpt) of the part's bits (fw its first word).

fn mat_words() -> vec2u {
  let n = p.rows * p.cols;
  let fw = p.mask_base >> 5u;
  if (n == 0u) {
    return vec2u(fw, fw);
  }
  return vec2u(fw, ((p.mask_base + n - 1u) >> 5u) + 1u);
}

// Invocations that own words of this part.
fn mat_invocations() -> u32 {
  let ws = mat_words();
  return (ws.y - ws.x + p.wpt - 1u) / p.wpt;
}

// This invocation's words [x, y).
fn mat_range(inv: u32) -> vec2u {
  let ws = mat_words();
  let a = ws.x + inv * p.wpt;
  return vec2u(a, min(a + p.wpt, ws.y));
}

@compute @workgroup_size(WG)
fn mat_hist(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let wg = wid.x + wid.y * nwg.x;
  if (wg * WG >= mat_invocations()) {
    return;
  }
  clear_bins(lid);
  workgroupBarrier();
  let ws = mat_range(wg * WG + lid);
  for (var mw = ws.x; mw < ws.y; mw++) {
    hist_word(word_at(mw, ANY_ROW), p.pmask, p.prefix, p.shift);
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
  let ws = mat_range(inv);
  var c = 0u;
  for (var mw = ws.x; mw < ws.y; mw++) {
    c += count_equal(word_at(mw, ANY_ROW), p.thr);
  }
  outv[p.inv_base + inv] = c;
}

@compute @workgroup_size(WG)
fn mat_mark(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let inv = flat_invocation(gid, nwg);
  if (inv >= mat_invocations()) {
    return;
  }
  let ws = mat_range(inv);
  var seen = 0u; // keys equal to thr before this invocation's words, in flat order over all parts
  if (p.mode == MODE_RANK) {
    seen = bases[p.inv_base + inv];
  }
  // MODE_ABOVE prunes every key equal to thr: need past any count.
  let need = select(0xffffffffu, p.need, p.mode == MODE_RANK);
  let n = p.rows * p.cols;
  for (var mw = ws.x; mw < ws.y; mw++) {
    var bits: u32;
    if (p.mode == MODE_KEEP_ALL) {
      // The part's bits of this word: all 32 but at the part's ends.
      let lo = select(0u, p.mask_base - mw * 32u, mw * 32u < p.mask_base);
      let hi = min(32u, p.mask_base + n - mw * 32u);
      bits = select(0xffffffffu >> (32u - (hi - lo)), 0xffffffffu, hi - lo == 32u) << lo;
    } else {
      bits = keep_bits(word_at(mw, ANY_ROW), p.thr, need, &seen);
    }
    if (bits != 0u) {
      atomicOr(&mask[mw], bits);
    }
  }
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
  let ws = mat_range(inv);
  let n = p.rows * p.cols;
  // Elements of this invocation's words that belong to the part.
  let x = max(ws.x * 32u, p.mask_base) - p.mask_base;
  let y = min(ws.y * 32u - p.mask_base, n);
  var r = x / p.cols;
  var i = x - r * p.cols;
  var s = 0.0;
  var c = 0u;
  for (var e = x; e < y; e++) {
    var f = ns;
    if (HAS_NORM == 1u) {
      f = norm(i) * ns;
    }
    let a = abs(weight(e, r, i)) * sqrt(f);
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
