// Widens a tensor stored as F32 / F16 / BF16 bytes (bound as raw u32 words) to f32.
// No shader-f16 needed: 16-bit values are taken out of their u32 word with bit operations.

// DTYPE of src: see lib/widen.wgsl.
override WG: u32 = 256u;
override ITEMS: u32 = 8u; // outputs per invocation: invocations are costly on software adapters

struct Params {
  count: u32,        // output elements in this dispatch
  src_offset: u32,   // element index in `src` of output element 0
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<storage, read> src: array<u32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

fn widen(e: u32) -> f32 {
  return widen_word(src[word_of(e)], e);
}

// Workgroup g writes outputs [g * WG * ITEMS, (g + 1) * WG * ITEMS), neighbouring invocations neighbouring outputs.
@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let base = (wid.x + wid.y * nwg.x) * WG * ITEMS + lid;
  for (var k = 0u; k < ITEMS; k++) {
    let i = base + k * WG;
    if (i < p.count) {
      dst[i] = widen(p.src_offset + i);
    }
  }
}
