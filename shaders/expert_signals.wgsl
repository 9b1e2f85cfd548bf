// Per-expert signals for choosing which experts to drop (saliency criteria, reconstruction error, NAEE, HC-SMoE).
//
//   scatter_norms: rows f[j] (an expert's un-weighted outputs for its gathered tokens, [rows, cols]):
//                  norms[norm_off + j] = ‖f[j]‖₂, and with SCATTER out[ids[ids_off + j]] += gate[ids_off + j] · f[j]
//                  (the same weighted return to the token's row as matmul's scatter-add, so the MoE output is unchanged).
//                  Norms are indexed like the expert lists, so one read-back per chunk gives every (token, expert) pair.
//   sqdiff:        per row j of a and b [rows, cols]: out[2j] = Σ (a − b)², out[2j + 1] = Σ b² (a pruned block's output a
//                  against the original b: the relative reconstruction error is Σ out[2j] / Σ out[2j + 1]).
//   gram:          f holds `experts` stacked blocks [experts, m, cols]; G[t, i, j] = ⟨f[i, t], f[j, t]⟩ for every token t < m
//                  and pair i ≤ j, written to both (i, j) and (j, i).
//   colsum:        out[off_b + c] += Σ_r f[off_a + r · cols + c] over rows r < rows (an expert's outputs summed over tokens),
//                  one invocation per column walking the rows in order with Kahan compensation (deterministic). With
//                  experts = 1 each row is weighted by g[pairs + r] (0/1: only the tokens routed to the expert).
//
// One workgroup per row (scatter_norms, sqdiff) or per (token, pair) (gram): each invocation strides over the columns,
// then a workgroup-memory tree sums the partials. Rows of one expert list are distinct tokens, so no two workgroups
// of a scatter_norms dispatch write the same out element.

override SCATTER: u32 = 0u;
override WG: u32 = 64u; // power of two (tree reduction)

struct Params {
  rows: u32,     // scatter_norms / sqdiff / colsum: rows; gram: tokens m
  cols: u32,
  off_a: u32,    // scatter_norms: first entry of this expert's list in ids / gate; colsum: element offset of f[0, 0]
  off_b: u32,    // scatter_norms: index of row 0's norm in norms; colsum: element offset of the sums in out
  experts: u32,  // gram; colsum: 1 to weight the rows by g
  pairs: u32,    // gram: experts · (experts + 1) / 2; colsum: index of row 0's weight in g
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<storage, read> f: array<f32>;
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;
@group(0) @binding(4) var<storage, read> ids: array<u32>;
@group(0) @binding(5) var<storage, read> gate: array<f32>;
@group(0) @binding(6) var<storage, read_write> norms: array<f32>;

var<workgroup> red: array<f32, WG>;
var<workgroup> red2: array<f32, WG>;

// Linear workgroup index over a 2-D grid (grid2d spreads large row counts over x and y).
fn wg_index(wid: vec3u, nwg: vec3u) -> u32 {
  return wid.x + wid.y * nwg.x;
}

fn reduce(lid: u32) {
  workgroupBarrier();
  for (var w = WG / 2u; w > 0u; w >>= 1u) {
    if (lid < w) {
      red[lid] += red[lid + w];
      red2[lid] += red2[lid + w];
    }
    workgroupBarrier();
  }
}

@compute @workgroup_size(WG)
fn scatter_norms(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let j = wg_index(wid, nwg);
  // Uniform control flow: the whole workgroup leaves together (barriers below).
  if (j >= p.rows) {
    return;
  }
  let base = j * p.cols;
  var s = 0.0;
  for (var c = lid; c < p.cols; c += WG) {
    let v = f[base + c];
    s += v * v;
    if (SCATTER == 1u) {
      let i = ids[p.off_a + j] * p.cols + c;
      out[i] += gate[p.off_a + j] * v;
    }
  }
  red[lid] = s;
  red2[lid] = 0.0;
  reduce(lid);
  if (lid == 0u) {
    norms[p.off_b + j] = sqrt(red[0]);
  }
}

@compute @workgroup_size(WG)
fn sqdiff(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let j = wg_index(wid, nwg);
  if (j >= p.rows) {
    return;
  }
  let base = j * p.cols;
  var d = 0.0;
  var r = 0.0;
  for (var c = lid; c < p.cols; c += WG) {
    let b = g[base + c];
    let e = f[base + c] - b;
    d += e * e;
    r += b * b;
  }
  red[lid] = d;
  red2[lid] = r;
  reduce(lid);
  if (lid == 0u) {
    out[2u * j] = red[0];
    out[2u * j + 1u] = red2[0];
  }
}

@compute @workgroup_size(WG)
fn gram(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let idx = wg_index(wid, nwg);
  if (idx >= p.rows * p.pairs) {
    return;
  }
  let t = idx / p.pairs;
  // Pair number → (i, j), i ≤ j, row by row of the upper triangle.
  var q = idx % p.pairs;
  var i = 0u;
  loop {
    let len = p.experts - i;
    if (q < len) {
      break;
    }
    q -= len;
    i += 1u;
  }
  let j = i + q;
  let block = p.rows * p.cols;
  let a = i * block + t * p.cols;
  let b = j * block + t * p.cols;
  var s = 0.0;
  for (var c = lid; c < p.cols; c += WG) {
    s += f[a + c] * f[b + c];
  }
  red[lid] = s;
  red2[lid] = 0.0;
  reduce(lid);
  if (lid == 0u) {
    let e = p.experts;
    out[t * e * e + i * e + j] = red[0];
    out[t * e * e + j * e + i] = red[0];
  }
}

@compute @workgroup_size(WG)
fn colsum(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let c = gid.x + gid.y * nwg.x * WG;
  if (c >= p.cols) {
    return;
  }
  var s = 0.0;
  var comp = 0.0;
  for (var r = 0u; r < p.rows; r++) {
    var v = f[p.off_a + r * p.cols + c];
    if (p.experts == 1u) {
      v *= g[p.pairs + r];
    }
    let yk = v - comp;
    let tk = s + yk;
    comp = (tk - s) - yk;
    s = tk;
  }
  out[p.off_b + c] += s;
}
