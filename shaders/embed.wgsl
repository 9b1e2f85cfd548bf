// Embedding lookup: out[t, :] = table[ids[t], :] widened to f32, for one dim-0 part of the table (rows
// row_start .. row_start + rows); tokens whose id lies in another part are left to that part's dispatch.

// DTYPE of the table: see lib/widen.wgsl.
override WG: u32 = 256u;

struct Params {
  tokens: u32,
  dim: u32,
  row_start: u32,
  rows: u32,
}

@group(0) @binding(0) var<storage, read> table: array<u32>;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

fn widen(e: u32) -> f32 {
  return widen_word(table[word_of(e)], e);
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.tokens * p.dim) {
    return;
  }
  let t = i / p.dim;
  let c = i % p.dim;
  let id = ids[t];
  if (id < p.row_start || id >= p.row_start + p.rows) {
    return;
  }
  out[i] = widen((id - p.row_start) * p.dim + c);
}
