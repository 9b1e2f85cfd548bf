// Negative log-likelihood of target ids under f32 logits [rows, vocab], without materialising probabilities:
// nll[r] = logsumexp(logits[r, ·]) − logits[r, target[r]]. Target 0xffffffff (no next token) gives 0.
// One workgroup per row: each invocation keeps a running (max, Σ exp(z − max)) over its strided slice,
// then a workgroup-memory tree merges the pairs.

override WG: u32 = 64u; // power of two

struct Params {
  rows: u32,
  vocab: u32,
  off: u32,    // element offset of logits[0, 0]
  stride: u32, // elements between rows
}

@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> targets: array<u32>;
@group(0) @binding(2) var<storage, read_write> nll: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

var<workgroup> red_m: array<f32, WG>;
var<workgroup> red_s: array<f32, WG>;

const NEG: f32 = -3.4028234e38;

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let r = wid.x + wid.y * nwg.x;
  if (r >= p.rows) {
    return;
  }
  let base = p.off + r * p.stride;
  var m = NEG;
  var s = 0.0;
  for (var i = lid; i < p.vocab; i += WG) {
    let z = logits[base + i];
    if (z > m) {
      s = s * exp(m - z) + 1.0;
      m = z;
    } else {
      s += exp(z - m);
    }
  }
  red_m[lid] = m;
  red_s[lid] = s;
  workgroupBarrier();
  for (var w = WG / 2u; w > 0u; w >>= 1u) {
    if (lid < w) {
      let m2 = red_m[lid + w];
      let s2 = red_s[lid + w];
      let mm = max(red_m[lid], m2);
      red_s[lid] = red_s[lid] * exp(red_m[lid] - mm) + s2 * exp(m2 - mm);
      red_m[lid] = mm;
    }
    workgroupBarrier();
  }
  if (lid == 0u) {
    let t = targets[r];
    if (t == 0xffffffffu) {
      nll[r] = 0.0;
    } else {
      nll[r] = red_m[0] + log(red_s[0]) - logits[base + t];
    }
  }
}
