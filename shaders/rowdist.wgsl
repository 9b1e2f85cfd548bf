// Squared L2 distance of m rows to one vector c, ADDED to a running sum acc[acc_offset + r].
// Because it accumulates, a long vector (a 100M-parameter expert) can be fed chunk by chunk:
// each call passes the next columns of the rows and the matching piece of c.
//
// Two entry points run back to back: `partial` reduces segments of each row (one workgroup per
// (segment, row), one workgroup-memory tree at the end), `finish` adds a row's segment sums to acc.

override WG: u32 = 64u;    // power of two (tree reduction)
override ITEMS: u32 = 64u; // elements per invocation per segment; many per barrier (barriers are slow on CPUs)

struct Params {
  m: u32,          // rows in this chunk
  dc: u32,         // columns in this chunk
  row_stride: u32, // elements between consecutive rows in x
  x_offset: u32,   // element index of the chunk's first element in x
  c_offset: u32,   // element index of the chunk's first element in c
  acc_offset: u32, // acc index of the chunk's first row
  nseg: u32,       // segments per row = ceil(dc / (WG * ITEMS))
  _pad: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> c: array<f32>;
@group(0) @binding(2) var<storage, read_write> partials: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;
@group(0) @binding(4) var<storage, read_write> acc: array<f32>;

var<workgroup> red: array<f32, WG>;

@compute @workgroup_size(WG)
fn partial(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let seg = wid.x;
  let r = wid.y;
  let start = seg * WG * ITEMS;
  let end = min(start + WG * ITEMS, p.dc);
  let xr = p.x_offset + r * p.row_stride;
  var s = 0.0;
  for (var k = start + lid; k < end; k += WG) {
    let diff = x[xr + k] - c[p.c_offset + k];
    s += diff * diff;
  }
  red[lid] = s;
  workgroupBarrier();
  for (var w = WG / 2u; w > 0u; w >>= 1u) {
    if (lid < w) {
      red[lid] += red[lid + w];
    }
    workgroupBarrier();
  }
  if (lid == 0u) {
    partials[r * p.nseg + seg] = red[0];
  }
}

@compute @workgroup_size(64)
fn finish(@builtin(global_invocation_id) gid: vec3u) {
  let r = gid.x;
  if (r >= p.m) {
    return;
  }
  var s = 0.0;
  for (var i = 0u; i < p.nseg; i++) {
    s += partials[r * p.nseg + i];
  }
  acc[p.acc_offset + r] += s;
}
