// RMSNorm and LayerNorm over rows of x [rows, dim] (f32), out-of-place. The per-head variant (Qwen3 q/k norm)
// is the same kernel over [tokens · heads, head_dim] rows. Weight and bias are read in their stored dtype.
//   rms:   y = w · (x / sqrt(mean(x²) + eps))
//   layer: y = (x − mean) / sqrt(var + eps) · w + b   (biased variance, two passes over the row, as torch)
// One workgroup per row; each invocation sums a strided slice, then one workgroup-memory tree per statistic.

override MODE: u32 = 0u;  // 0 = rms, 1 = layer
// DTYPE of weight and bias: see lib/widen.wgsl.
override HAS_BIAS: u32 = 0u;
override WG: u32 = 64u;   // power of two

struct Params {
  rows: u32,
  dim: u32,
  eps: u32,     // f32 bits
  x_off: u32,   // element offset of x[0, 0]
  out_off: u32, // element offset of out[0, 0]
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;
@group(0) @binding(3) var<storage, read> w: array<u32>;
@group(0) @binding(4) var<storage, read> b: array<u32>;

var<workgroup> red: array<f32, WG>;

fn widen_w(e: u32) -> f32 {
  return widen_word(w[word_of(e)], e);
}

fn widen_b(e: u32) -> f32 {
  return widen_word(b[word_of(e)], e);
}

fn workgroup_sum(lid: u32, v: f32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) {
      red[lid] += red[lid + s];
    }
    workgroupBarrier();
  }
  let total = red[0];
  workgroupBarrier(); // everyone has read red[0] before the next statistic overwrites it
  return total;
}

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.rows) {
    return; // whole workgroup leaves together: barriers stay uniform
  }
  let xb = p.x_off + row * p.dim;
  let ob = p.out_off + row * p.dim;
  let n = f32(p.dim);
  let eps = bitcast<f32>(p.eps);
  if (MODE == 0u) {
    var ss = 0.0;
    for (var i = lid; i < p.dim; i += WG) {
      let v = x[xb + i];
      ss += v * v;
    }
    let inv = 1.0 / sqrt(workgroup_sum(lid, ss) / n + eps);
    for (var i = lid; i < p.dim; i += WG) {
      out[ob + i] = widen_w(i) * (x[xb + i] * inv);
    }
  } else {
    var s = 0.0;
    for (var i = lid; i < p.dim; i += WG) {
      s += x[xb + i];
    }
    let mean = workgroup_sum(lid, s) / n;
    var vs = 0.0;
    for (var i = lid; i < p.dim; i += WG) {
      let d = x[xb + i] - mean;
      vs += d * d;
    }
    let inv = 1.0 / sqrt(workgroup_sum(lid, vs) / n + eps);
    for (var i = lid; i < p.dim; i += WG) {
      var v = (x[xb + i] - mean) * inv * widen_w(i);
      if (HAS_BIAS == 1u) {
        v += widen_b(i);
      }
      out[ob + i] = v;
    }
  }
}
