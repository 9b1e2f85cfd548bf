// Elementwise steps of the forward pass on f32 buffers, each its own entry point (element offsets in params):
//   silu_mul          out[i] = silu(a[i]) · b[i]                       (SwiGLU: silu(gate) · up)
//   add               out[i] = a[i] + b[i]                             (residual into a fresh buffer)
//   add_into          out[i] += a[i]                                   (residual in place)
//   scale_into        out[i] *= s
//   sigmoid_gate_add  out[i] += sigmoid(b[(i / width) · b_stride]) · a[i]  (Qwen2-MoE shared expert gate,
//                     one gate logit per token row of `width` values)
//   copy_rows         out[o_off + r1·o_s1 + r2·o_s2 + c] = a[a_off + r1·a_s1 + r2·a_s2 + c] for r1 < n / (n2·width),
//                     r2 < n2, c < width: strided slices and broadcasts (a_s2 = 0), e.g. MLA's k = [k_nope | k_pe].
// ITEMS elements per invocation (invocations are costly on software adapters).

override WG: u32 = 256u;
override ITEMS: u32 = 4u;

struct Params {
  n: u32,        // elements
  a_off: u32,
  b_off: u32,
  o_off: u32,
  width: u32,    // sigmoid_gate_add / copy_rows: row length
  s: u32,        // scale_into: f32 bits
  b_stride: u32, // sigmoid_gate_add: elements between gate values
  n2: u32,       // copy_rows: inner row count
  a_s1: u32,
  a_s2: u32,
  o_s1: u32,
  o_s2: u32,
}

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

fn first(wid: vec3u, nwg: vec3u, lid: u32) -> u32 {
  return (wid.x + wid.y * nwg.x) * WG * ITEMS + lid;
}

@compute @workgroup_size(WG)
fn silu_mul(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i0 = first(wid, nwg, lid);
  for (var k = 0u; k < ITEMS; k++) {
    let i = i0 + k * WG;
    if (i < p.n) {
      let g = a[p.a_off + i];
      out[p.o_off + i] = g / (1.0 + exp(-g)) * b[p.b_off + i];
    }
  }
}

@compute @workgroup_size(WG)
fn add(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i0 = first(wid, nwg, lid);
  for (var k = 0u; k < ITEMS; k++) {
    let i = i0 + k * WG;
    if (i < p.n) {
      out[p.o_off + i] = a[p.a_off + i] + b[p.b_off + i];
    }
  }
}

@compute @workgroup_size(WG)
fn add_into(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i0 = first(wid, nwg, lid);
  for (var k = 0u; k < ITEMS; k++) {
    let i = i0 + k * WG;
    if (i < p.n) {
      out[p.o_off + i] += a[p.a_off + i];
    }
  }
}

@compute @workgroup_size(WG)
fn scale_into(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i0 = first(wid, nwg, lid);
  let s = bitcast<f32>(p.s);
  for (var k = 0u; k < ITEMS; k++) {
    let i = i0 + k * WG;
    if (i < p.n) {
      out[p.o_off + i] *= s;
    }
  }
}

@compute @workgroup_size(WG)
fn sigmoid_gate_add(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i0 = first(wid, nwg, lid);
  for (var k = 0u; k < ITEMS; k++) {
    let i = i0 + k * WG;
    if (i < p.n) {
      let g = b[p.b_off + (i / p.width) * p.b_stride];
      out[p.o_off + i] += a[p.a_off + i] / (1.0 + exp(-g));
    }
  }
}

@compute @workgroup_size(WG)
fn copy_rows(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i0 = first(wid, nwg, lid);
  for (var k = 0u; k < ITEMS; k++) {
    let i = i0 + k * WG;
    if (i < p.n) {
      let c = i % p.width;
      let r = i / p.width;
      let r2 = r % p.n2;
      let r1 = r / p.n2;
      out[p.o_off + r1 * p.o_s1 + r2 * p.o_s2 + c] = a[p.a_off + r1 * p.a_s1 + r2 * p.a_s2 + c];
    }
  }
}
