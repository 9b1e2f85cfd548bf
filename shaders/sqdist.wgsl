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

  let accs = array<vec4f, 4>(acc0, acc1, acc2, acc3);
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
