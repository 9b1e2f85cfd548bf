// Causal self-attention with GQA over a batch of windows of `seq` tokens stored back to back (token t belongs
// to window t / seq and sees keys of its own window up to itself, optionally only the last `window` of them).
// q [tokens, nh, hdk], k [tokens, nkv, hdk], v [tokens, nkv, hdv] (hdk ≠ hdv for MLA), all f32 with explicit
// offsets and strides, so q/k/v may sit inside wider buffers; out [tokens, nh, hdv].
//
// One invocation per (token, head) walks its keys once with an online softmax (running max, rescaled sum and
// accumulator), in f32. Cost: tokens · heads · (seq/2) · (hdk + hdv) multiply-adds with no reuse between
// invocations: fine at calibration sizes (seq ≤ a few thousand); a tiled flash-attention kernel would replace it
// for long sequences.

override WG: u32 = 64u;
const MAX_HDV: u32 = 256u;

struct Params {
  tokens: u32,
  seq: u32,
  nh: u32,
  nkv: u32,
  hdk: u32,
  hdv: u32,
  scale: u32,  // f32 bits
  window: u32, // sliding window in keys; 0 = none
  q_off: u32, q_ts: u32, q_hs: u32,
  k_off: u32, k_ts: u32, k_hs: u32,
  v_off: u32, v_ts: u32, v_hs: u32,
  o_off: u32, o_ts: u32, o_hs: u32,
}

@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> k: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let idx = gid.x + gid.y * nwg.x * WG;
  if (idx >= p.tokens * p.nh) {
    return;
  }
  let t = idx / p.nh;
  let h = idx % p.nh;
  let kvh = h / (p.nh / p.nkv);
  let scale = bitcast<f32>(p.scale);
  var first = (t / p.seq) * p.seq;
  if (p.window > 0u && t + 1u > first + p.window) {
    first = t + 1u - p.window;
  }
  let qb = p.q_off + t * p.q_ts + h * p.q_hs;

  var acc: array<f32, MAX_HDV>;
  for (var d = 0u; d < p.hdv; d++) {
    acc[d] = 0.0;
  }
  var m = -3.4028234e38; // finite lowest f32: exp(m - s) stays 0, never NaN
  var l = 0.0;
  for (var j = first; j <= t; j++) {
    let kb = p.k_off + j * p.k_ts + kvh * p.k_hs;
    var s = 0.0;
    for (var d = 0u; d < p.hdk; d++) {
      s += q[qb + d] * k[kb + d];
    }
    s *= scale;
    let m_new = max(m, s);
    let corr = exp(m - m_new);
    let e = exp(s - m_new);
    l = l * corr + e;
    m = m_new;
    let vb = p.v_off + j * p.v_ts + kvh * p.v_hs;
    for (var d = 0u; d < p.hdv; d++) {
      acc[d] = acc[d] * corr + e * v[vb + d];
    }
  }
  let ob = p.o_off + t * p.o_ts + h * p.o_hs;
  let inv = 1.0 / l;
  for (var d = 0u; d < p.hdv; d++) {
    out[ob + d] = acc[d] * inv;
  }
}
