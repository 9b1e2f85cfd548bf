// Calibration statistics, accumulated across calls (callers zero the accumulators once).
//   colsumsq: acc[c] += Σ_j x[row(j), c]² over rows j < rows; row(j) = ids[ids_off + j] when GATHER (the tokens
//             routed to one expert), else j. One invocation per column walks the rows in order with Kahan
//             compensation: deterministic, and accurate over hundreds of thousands of tokens.
//   coact:    co[a, b] += 1 for every ordered pair of experts (a, b) in a token's top-k, a ≠ b; co[a, a] counts
//             the tokens routed to a. u32 atomics (the order of integer additions does not matter).

override GATHER: u32 = 0u;
override WG: u32 = 64u;

struct Params {
  rows: u32,    // colsumsq: rows; coact: tokens
  cols: u32,    // colsumsq: columns; coact: k
  x_off: u32,   // colsumsq: element offset of x[0, 0]
  x_stride: u32,// colsumsq: elements between rows
  ids_off: u32,
  experts: u32, // coact
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read_write> acc: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;
@group(0) @binding(4) var<storage, read_write> co: array<atomic<u32>>;

@compute @workgroup_size(WG)
fn colsumsq(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let c = gid.x + gid.y * nwg.x * WG;
  if (c >= p.cols) {
    return;
  }
  var s = 0.0;
  var comp = 0.0;
  for (var j = 0u; j < p.rows; j++) {
    var r = j;
    if (GATHER == 1u) {
      r = ids[p.ids_off + j];
    }
    let v = x[p.x_off + r * p.x_stride + c];
    let yk = v * v - comp;
    let tk = s + yk;
    comp = (tk - s) - yk;
    s = tk;
  }
  acc[c] += s;
}

@compute @workgroup_size(WG)
fn coact(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let t = gid.x + gid.y * nwg.x * WG;
  if (t >= p.rows) {
    return;
  }
  let k = p.cols;
  for (var a = 0u; a < k; a++) {
    let ea = ids[t * k + a];
    for (var b = 0u; b < k; b++) {
      atomicAdd(&co[ea * p.experts + ids[t * k + b]], 1u);
    }
  }
}
