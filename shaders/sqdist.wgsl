// Pairwise squared L2 distances between the n rows of x [n, d] (f32), written to out [n, n].
// Each invocation owns a 4x4 block of outputs and keeps it in registers while it walks d: register
// blocking, no workgroup-memory tiling (barriers make tiling the slowest variant on software adapters).
// Only blocks on or above the diagonal are computed; each is mirrored into the lower triangle.

override WG: u32 = 8u; // workgroup is WG x WG invocations

struct Params {
  n: u32,
  d: u32,
  x_offset: u32, // element index of x[0, 0] in the bound buffer
  _pad: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
// The same buffer seen as vec4s, for `main_vec4` (d and x_offset multiples of 4: every real hidden size).
@group(0) @binding(0) var<storage, read> x4: array<vec4f>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

// Start of rows r0 .. r0 + 3; rows past n are clamped to the last row so loads stay in bounds (their results
// are not written). `off` and `row_len` in the units the caller indexes x in (f32 or vec4).
fn rows(r0: u32, off: u32, row_len: u32) -> vec4u {
  return vec4u(off) + min(vec4u(r0) + vec4u(0u, 1u, 2u, 3u), vec4u(p.n - 1u)) * row_len;
}

@compute @workgroup_size(WG, WG)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let nb = (p.n + 3u) / 4u;
  let bi = gid.y;
  let bj = gid.x;
  if (bi >= nb || bj >= nb || bj < bi) {
    return;
  }
  let i0 = bi * 4u;
  let j0 = bj * 4u;
  let a = rows(i0, p.x_offset, p.d);
  let b = rows(j0, p.x_offset, p.d);
  var acc0 = vec4f(0.0);
  var acc1 = vec4f(0.0);
  var acc2 = vec4f(0.0);
  var acc3 = vec4f(0.0);
  for (var k = 0u; k < p.d; k++) {
    let q = vec4f(x[b.x + k], x[b.y + k], x[b.z + k], x[b.w + k]);
    let d0 = x[a.x + k] - q;
    let d1 = x[a.y + k] - q;
    let d2 = x[a.z + k] - q;
    let d3 = x[a.w + k] - q;
    acc0 += d0 * d0;
    acc1 += d1 * d1;
    acc2 += d2 * d2;
    acc3 += d3 * d3;
  }

  store_block(i0, j0, array<vec4f, 4>(acc0, acc1, acc2, acc3));
}

// Same blocks, loading 4 consecutive k at once: 8 vec4 loads feed 16 4-wide differences.
@compute @workgroup_size(WG, WG)
fn main_vec4(@builtin(global_invocation_id) gid: vec3u) {
  let nb = (p.n + 3u) / 4u;
  let bi = gid.y;
  let bj = gid.x;
  if (bi >= nb || bj >= nb || bj < bi) {
    return;
  }
  let i0 = bi * 4u;
  let j0 = bj * 4u;
  let d4 = p.d / 4u;
  let a = rows(i0, p.x_offset / 4u, d4); // in vec4s
  let b = rows(j0, p.x_offset / 4u, d4);
  var acc0 = vec4f(0.0);
  var acc1 = vec4f(0.0);
  var acc2 = vec4f(0.0);
  var acc3 = vec4f(0.0);
  for (var k = 0u; k < d4; k++) {
    let q0 = x4[b.x + k];
    let q1 = x4[b.y + k];
    let q2 = x4[b.z + k];
    let q3 = x4[b.w + k];
    acc0 += row_dists(x4[a.x + k], q0, q1, q2, q3);
    acc1 += row_dists(x4[a.y + k], q0, q1, q2, q3);
    acc2 += row_dists(x4[a.z + k], q0, q1, q2, q3);
    acc3 += row_dists(x4[a.w + k], q0, q1, q2, q3);
  }
  store_block(i0, j0, array<vec4f, 4>(acc0, acc1, acc2, acc3));
}

fn row_dists(a: vec4f, q0: vec4f, q1: vec4f, q2: vec4f, q3: vec4f) -> vec4f {
  let e0 = a - q0;
  let e1 = a - q1;
  let e2 = a - q2;
  let e3 = a - q3;
  return vec4f(dot(e0, e0), dot(e1, e1), dot(e2, e2), dot(e3, e3));
}

// Writes block (i0.., j0..) and its mirror, skipping rows/columns past n.
fn store_block(i0: u32, j0: u32, accs: array<vec4f, 4>) {
  for (var r = 0u; r < 4u; r++) {
    let i = i0 + r;
    if (i >= p.n) {
      break;
    }
    let row = accs[r];
    for (var c = 0u; c < 4u; c++) {
      let j = j0 + c;
      if (j >= p.n) {
        break;
      }
      out[i * p.n + j] = row[c];
      out[j * p.n + i] = row[c];
    }
  }
}
