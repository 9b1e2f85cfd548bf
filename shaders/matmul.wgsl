// y[t, o] = Σ_i x[t, i] · W[o, i] (+ bias[o]) for one dim-0 part of W (rows o_start .. o_start + n of the
// full weight), W row-major [out, in] as nn.Linear stores it, read in its stored dtype and widened here.
//
// Each invocation owns a 4-token × 4-output block in registers and walks `in` once: register blocking without
// workgroup-memory tiling, the fastest variant on software adapters (barriers are slow there) and a sound
// one on GPUs. Rows past the end are clamped to the last row so loads stay in bounds; they are not stored.
//
// Expert variants (GATHER / SCATTER), driven by a token list ids[ids_off + j], j < t:
//   GATHER:  input row j is x[ids[ids_off + j]] (the tokens routed to an expert), output row j is compact;
//   SCATTER: y[ids[ids_off + j]] += gate[ids_off + j] · result (weighted return to the token's row; a token
//            appears at most once per expert, so no two invocations of one dispatch write the same element).

// DTYPE of W: see lib/widen.wgsl (16-bit elements two, FP8 four per u32 word, little-endian).
override GATHER: u32 = 0u;
override SCATTER: u32 = 0u;
override HAS_BIAS: u32 = 0u; // bias: f32 [out_total]
override HAS_MASK: u32 = 0u; // mask: one bit per weight element of the full W (bit o·in + i); 0 = removed
override HAS_SCALE: u32 = 0u; // block-FP8: W_real[r, i] = W[r, i] · scale[(row0 + r) / SCALE_BR, i / SCALE_BC]
override SCALE_BR: u32 = 128u;
override SCALE_BC: u32 = 128u; // the vec4 path needs a multiple of 4 (a 4-group never straddles two blocks)
override WG: u32 = 8u;       // workgroup is WG × WG invocations

struct Params {
  t: u32,         // rows to compute
  k: u32,         // in features
  n: u32,         // output features in this part
  y_stride: u32,  // elements between output rows (out_total for a plain [T, out] output)
  o_start: u32,   // first output feature of this part
  x_off: u32,     // element offset of x[0, 0]
  y_off: u32,     // element offset of y[0, 0]
  ids_off: u32,   // first entry of this expert's list in ids / gate
  mask_base: u32, // bit index of this part's first weight (o_start · in)
  row0: u32,       // weight row (for the scale grid) of this part's row 0: o_start + the weight's own row offset
  scale_cols: u32, // ceil(in / SCALE_BC)
  _pad0: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(0) var<storage, read> x4: array<vec4f>;
@group(0) @binding(1) var<storage, read> w: array<u32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;
@group(0) @binding(4) var<storage, read> ids: array<u32>;
@group(0) @binding(5) var<storage, read> gate: array<f32>;
@group(0) @binding(6) var<storage, read> bias: array<f32>;
@group(0) @binding(7) var<storage, read> mask: array<u32>;
@group(0) @binding(8) var<storage, read> scale: array<f32>; // f32 [ceil(rows / SCALE_BR), scale_cols], one binding

// Block scale of this part's local row r, input column i.
fn scale_at(r: u32, i: u32) -> f32 {
  return scale[((p.row0 + r) / SCALE_BR) * p.scale_cols + i / SCALE_BC];
}

fn keep(e: u32) -> bool {
  let g = p.mask_base + e;
  return ((mask[g >> 5u] >> (g & 31u)) & 1u) == 1u;
}

// Weight element e of this part (row-major index).
fn w_at(e: u32) -> f32 {
  var v = widen_word(w[word_of(e)], e);
  if (HAS_MASK == 1u && !keep(e)) {
    v = 0.0;
  }
  return v;
}

// Four weights e .. e + 3, e a multiple of 4 (so a 16-bit group is two whole words, an FP8 group one word,
// and one mask nibble).
fn w4_at(e: u32) -> vec4f {
  var v: vec4f;
  if (DTYPE == 0u) {
    v = vec4f(bitcast<f32>(w[e]), bitcast<f32>(w[e + 1u]), bitcast<f32>(w[e + 2u]), bitcast<f32>(w[e + 3u]));
  } else if (DTYPE == 3u) {
    let a = w[e >> 2u]; // four FP8 weights are exactly one word
    v = vec4f(widen_f8(a & 0xffu), widen_f8((a >> 8u) & 0xffu), widen_f8((a >> 16u) & 0xffu), widen_f8(a >> 24u));
  } else {
    let a = w[e >> 1u];
    let b = w[(e >> 1u) + 1u];
    if (DTYPE == 2u) {
      v = vec4f(bitcast<f32>(a << 16u), bitcast<f32>(a & 0xffff0000u), bitcast<f32>(b << 16u), bitcast<f32>(b & 0xffff0000u));
    } else {
      v = vec4f(unpack2x16float(a), unpack2x16float(b));
    }
  }
  if (HAS_MASK == 1u) {
    let g = p.mask_base + e;
    let bits = mask[g >> 5u] >> (g & 31u);
    v = select(vec4f(0.0), v, vec4<bool>((bits & 1u) == 1u, (bits & 2u) == 2u, (bits & 4u) == 4u, (bits & 8u) == 8u));
  }
  return v;
}

fn x_row(j: u32) -> u32 {
  if (GATHER == 1u) {
    return ids[p.ids_off + j];
  }
  return j;
}

// Start of the x rows of tokens t0 .. t0 + 3 (clamped to the last token); `off` and `row_len` in
// the units the caller indexes x in (f32 or vec4).
fn x_rows(t0: u32, off: u32, row_len: u32) -> vec4u {
  let j = min(vec4u(t0) + vec4u(0u, 1u, 2u, 3u), vec4u(p.t - 1u));
  return vec4u(off) + vec4u(x_row(j.x), x_row(j.y), x_row(j.z), x_row(j.w)) * row_len;
}

// This part's weight rows o0 .. o0 + 3, clamped to its last row.
fn w_rows(o0: u32) -> vec4u {
  return min(vec4u(o0) + vec4u(0u, 1u, 2u, 3u), vec4u(p.n - 1u));
}

fn store(j: u32, o: u32, acc: f32) {
  var v = acc;
  if (HAS_BIAS == 1u) {
    v += bias[p.o_start + o];
  }
  if (SCATTER == 1u) {
    let i = p.y_off + ids[p.ids_off + j] * p.y_stride + p.o_start + o;
    y[i] += gate[p.ids_off + j] * v;
  } else {
    y[p.y_off + j * p.y_stride + p.o_start + o] = v;
  }
}

fn store_block(t0: u32, o0: u32, accs: array<vec4f, 4>) {
  for (var r = 0u; r < 4u; r++) {
    if (t0 + r >= p.t) {
      break;
    }
    for (var c = 0u; c < 4u; c++) {
      if (o0 + c >= p.n) {
        break;
      }
      store(t0 + r, o0 + c, accs[r][c]);
    }
  }
}

// Any `in`; one weight and one activation load per multiply.
@compute @workgroup_size(WG, WG)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let o0 = gid.x * 4u;
  let t0 = gid.y * 4u;
  if (o0 >= p.n || t0 >= p.t) {
    return;
  }
  let a = x_rows(t0, p.x_off, p.k);
  let r = w_rows(o0);
  let b = r * p.k;
  var acc0 = vec4f(0.0);
  var acc1 = vec4f(0.0);
  var acc2 = vec4f(0.0);
  var acc3 = vec4f(0.0);
  for (var i = 0u; i < p.k; i++) {
    var wv = vec4f(w_at(b.x + i), w_at(b.y + i), w_at(b.z + i), w_at(b.w + i));
    if (HAS_SCALE == 1u) {
      wv *= vec4f(scale_at(r.x, i), scale_at(r.y, i), scale_at(r.z, i), scale_at(r.w, i));
    }
    acc0 += x[a.x + i] * wv;
    acc1 += x[a.y + i] * wv;
    acc2 += x[a.z + i] * wv;
    acc3 += x[a.w + i] * wv;
  }
  store_block(t0, o0, array<vec4f, 4>(acc0, acc1, acc2, acc3));
}

// `in` and x_off multiples of 4: vec4 activation loads, four weights per fetch, 16 dot products per step.
@compute @workgroup_size(WG, WG)
fn main_vec4(@builtin(global_invocation_id) gid: vec3u) {
  let o0 = gid.x * 4u;
  let t0 = gid.y * 4u;
  if (o0 >= p.n || t0 >= p.t) {
    return;
  }
  let k4 = p.k / 4u;
  let a = x_rows(t0, p.x_off / 4u, k4); // in vec4s
  let r = w_rows(o0);
  let b = r * p.k;
  var acc0 = vec4f(0.0);
  var acc1 = vec4f(0.0);
  var acc2 = vec4f(0.0);
  var acc3 = vec4f(0.0);
  for (var i = 0u; i < k4; i++) {
    let e = i * 4u;
    var w0 = w4_at(b.x + e);
    var w1 = w4_at(b.y + e);
    var w2 = w4_at(b.z + e);
    var w3 = w4_at(b.w + e);
    if (HAS_SCALE == 1u) {
      w0 *= scale_at(r.x, e);
      w1 *= scale_at(r.y, e);
      w2 *= scale_at(r.z, e);
      w3 *= scale_at(r.w, e);
    }
    let q0 = x4[a.x + i];
    let q1 = x4[a.y + i];
    let q2 = x4[a.z + i];
    let q3 = x4[a.w + i];
    acc0 += vec4f(dot(q0, w0), dot(q0, w1), dot(q0, w2), dot(q0, w3));
    acc1 += vec4f(dot(q1, w0), dot(q1, w1), dot(q1, w2), dot(q1, w3));
    acc2 += vec4f(dot(q2, w0), dot(q2, w1), dot(q2, w2), dot(q2, w3));
    acc3 += vec4f(dot(q3, w0), dot(q3, w1), dot(q3, w2), dot(q3, w3));
  }
  store_block(t0, o0, array<vec4f, 4>(acc0, acc1, acc2, acc3));
}
