// Rotary position embedding applied in place to `rot` values inside each head of x [tokens, heads, ...]
// (q or k, f32), from precomputed tables cos/sin [positions, rot/2] (built on the CPU for the config's rope
// type, attention scaling included). Token t uses table row t % positions: windows of L tokens stored back to
// back each restart at position 0 when the tables have L rows.
//   halves (GPT-NeoX, transformers' rotate_half): pairs (x_i, x_{i+rot/2})
//   interleaved (DeepSeek rope_interleave, GPT-J):  pairs (x_{2i}, x_{2i+1}); the result stays interleaved,
//   which leaves q·k unchanged because q and k are permuted alike.
// Partial rotary (MLA's rope part, partial_rotary_factor): rotate values [rot_off, rot_off + rot) of each head.

override INTERLEAVED: u32 = 0u;
override WG: u32 = 64u;

struct Params {
  tokens: u32,
  heads: u32,
  half: u32,         // rot / 2
  token_stride: u32, // elements between tokens
  head_stride: u32,  // elements between heads
  rot_off: u32,      // first rotated element within a head
  x_off: u32,        // element offset of x[0, 0, 0]
  positions: u32,    // table rows
}

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read> cos_t: array<f32>;
@group(0) @binding(2) var<storage, read> sin_t: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

// One invocation per (token, head, pair).
@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let idx = gid.x + gid.y * nwg.x * WG;
  let pairs = p.half * p.heads;
  if (idx >= p.tokens * pairs) {
    return;
  }
  let t = idx / pairs;
  let h = (idx % pairs) / p.half;
  let i = idx % p.half;
  let tab = (t % p.positions) * p.half + i;
  let c = cos_t[tab];
  let s = sin_t[tab];
  let base = p.x_off + t * p.token_stride + h * p.head_stride + p.rot_off;
  var ia = base + i;
  var ib = base + i + p.half;
  if (INTERLEAVED == 1u) {
    ia = base + 2u * i;
    ib = ia + 1u;
  }
  let a = x[ia];
  let b = x[ib];
  x[ia] = a * c - b * s;
  x[ib] = b * c + a * s;
}
