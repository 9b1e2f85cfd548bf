// Plain u32 copy: the memory-bandwidth baseline benchmarks compare other kernels against.

override WG: u32 = 256u;
override ITEMS: u32 = 8u; // words per invocation: invocations are costly on software adapters

struct Params {
  count: u32, // words to copy
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

@group(0) @binding(0) var<storage, read> src: array<u32>;
@group(0) @binding(1) var<storage, read_write> dst: array<u32>;
@group(0) @binding(2) var<uniform> p: Params;

// Workgroup g copies words [g * WG * ITEMS, (g + 1) * WG * ITEMS); neighbouring invocations touch
// neighbouring words (coalesced on GPUs).
@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let base = (wid.x + wid.y * nwg.x) * WG * ITEMS + lid;
  for (var k = 0u; k < ITEMS; k++) {
    let i = base + k * WG;
    if (i < p.count) {
      dst[i] = src[i];
    }
  }
}
