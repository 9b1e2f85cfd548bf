// Widens a tensor stored as F32 / F16 / BF16 bytes (bound as raw u32 words) to f32.
// No shader-f16 needed: 16-bit values are taken out of their u32 word with bit operations.

override DTYPE: u32 = 0u; // 0 = F32, 1 = F16, 2 = BF16
override WG: u32 = 256u;

struct Params {
  count: u32,        // output elements in this dispatch
  src_offset: u32,   // element index in `src` of output element 0
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<storage, read> src: array<u32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.count) {
    return;
  }
  let e = p.src_offset + i;
  if (DTYPE == 0u) {
    dst[i] = bitcast<f32>(src[e]);
    return;
  }
  // Little-endian: element 2k is the low half of word k.
  let half = (src[e >> 1u] >> ((e & 1u) * 16u)) & 0xffffu;
  if (DTYPE == 2u) {
    dst[i] = bitcast<f32>(half << 16u);
  } else {
    dst[i] = unpack2x16float(half).x;
  }
}
