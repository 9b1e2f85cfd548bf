// Per-expert token lists from the router's top-k ids [tokens, k]: offsets [E + 1] and, for expert e, entries
// offsets[e] .. offsets[e + 1] of list_tokens (token rows, ascending) and list_weights (router weights).
// Deterministic without atomics, so every run (and every GPU) produces the same lists:
//   count  — invocation b counts its block of BLOCK tokens per expert into counts[b, e]
//   scan   — invocation e turns counts[·, e] into exclusive running sums over blocks; totals → offsets[e + 1]
//   prefix — one invocation turns totals into offsets
//   fill   — invocation b writes its block's entries at offsets[e] + counts[b, e] (in token order)

override WG: u32 = 64u;
override BLOCK: u32 = 32u;

struct Params {
  tokens: u32,
  k: u32,
  experts: u32,
  blocks: u32,
}

@group(0) @binding(0) var<storage, read> ids: array<u32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> counts: array<u32>;
@group(0) @binding(3) var<storage, read_write> offsets: array<u32>;
@group(0) @binding(4) var<storage, read_write> list_tokens: array<u32>;
@group(0) @binding(5) var<storage, read_write> list_weights: array<f32>;
@group(0) @binding(6) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn count(@builtin(global_invocation_id) gid: vec3u) {
  let b = gid.x;
  if (b >= p.blocks) {
    return;
  }
  let row = b * p.experts;
  for (var e = 0u; e < p.experts; e++) {
    counts[row + e] = 0u;
  }
  let end = min(p.tokens, (b + 1u) * BLOCK);
  for (var t = b * BLOCK; t < end; t++) {
    for (var j = 0u; j < p.k; j++) {
      counts[row + ids[t * p.k + j]] += 1u;
    }
  }
}

@compute @workgroup_size(WG)
fn scan(@builtin(global_invocation_id) gid: vec3u) {
  let e = gid.x;
  if (e >= p.experts) {
    return;
  }
  var run = 0u;
  for (var b = 0u; b < p.blocks; b++) {
    let c = counts[b * p.experts + e];
    counts[b * p.experts + e] = run;
    run += c;
  }
  offsets[e + 1u] = run;
}

@compute @workgroup_size(1)
fn prefix() {
  offsets[0] = 0u;
  for (var e = 0u; e < p.experts; e++) {
    offsets[e + 1u] += offsets[e];
  }
}

@compute @workgroup_size(WG)
fn fill(@builtin(global_invocation_id) gid: vec3u) {
  let b = gid.x;
  if (b >= p.blocks) {
    return;
  }
  let row = b * p.experts;
  let end = min(p.tokens, (b + 1u) * BLOCK);
  for (var t = b * BLOCK; t < end; t++) {
    for (var j = 0u; j < p.k; j++) {
      let e = ids[t * p.k + j];
      let pos = offsets[e] + counts[row + e];
      counts[row + e] += 1u;
      list_tokens[pos] = t;
      list_weights[pos] = w[t * p.k + j];
    }
  }
}
