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
  let last = p.n - 1u;
  // Rows past n are clamped to the last row so loads stay in bounds; their results are not written.
  let a0 = p.x_offset + min(i0, last) * p.d;
  let a1 = p.x_offset + min(i0 + 1u, last) * p.d;
  let a2 = p.x_offset + min(i0 + 2u, last) * p.d;
  let a3 = p.x_offset + min(i0 + 3u, last) * p.d;
  let b0 = p.x_offset + min(j0, last) * p.d;
  let b1 = p.x_offset + min(j0 + 1u, last) * p.d;
  let b2 = p.x_offset + min(j0 + 2u, last) * p.d;
  let b3 = p.x_offset + min(j0 + 3u, last) * p.d;

  var acc0 = vec4f(0.0);
  var acc1 = vec4f(0.0);
  var acc2 = vec4f(0.0);
  var acc3 = vec4f(0.0);
  for (var k = 0u; k < p.d; k++) {
    let b = vec4f(x[b0 + k], x[b1 + k], x[b2 + k], x[b3 + k]);
    let d0 = x[a0 + k] - b;
    let d1 = x[a1 + k] - b;
    let d2 = x[a2 + k] - b;
    let d3 = x[a3 + k] - b;
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
  let last = p.n - 1u;
  let d4 = p.d / 4u;
  let o4 = p.x_offset / 4u;
  let a0 = o4 + min(i0, last) * d4;
  let a1 = o4 + min(i0 + 1u, last) * d4;
  let a2 = o4 + min(i0 + 2u, last) * d4;
  let a3 = o4 + min(i0 + 3u, last) * d4;
  let b0 = o4 + min(j0, last) * d4;
  let b1 = o4 + min(j0 + 1u, last) * d4;
  let b2 = o4 + min(j0 + 2u, last) * d4;
  let b3 = o4 + min(j0 + 3u, last) * d4;

  var acc0 = vec4f(0.0);
  var acc1 = vec4f(0.0);
  var acc2 = vec4f(0.0);
  var acc3 = vec4f(0.0);
  for (var k = 0u; k < d4; k++) {
    let q0 = x4[b0 + k];
    let q1 = x4[b1 + k];
    let q2 = x4[b2 + k];
    let q3 = x4[b3 + k];
    acc0 += row_dists(x4[a0 + k], q0, q1, q2, q3);
    acc1 += row_dists(x4[a1 + k], q0, q1, q2, q3);
    acc2 += row_dists(x4[a2 + k], q0, q1, q2, q3);
    acc3 += row_dists(x4[a3 + k], q0, q1, q2, q3);
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
