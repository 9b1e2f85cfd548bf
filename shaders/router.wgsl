// MoE router, one invocation per token, from f32 logits [tokens, E] to the chosen experts ids [tokens, k] (u32,
// best first) and their weights [tokens, k] (f32).
//   SCORING 0 softmax:  p = softmax(logits); groups scored from p; masked groups' p → 0 (DeepSeek-V2)
//   SCORING 1 sigmoid:  s = sigmoid(logits); choice = s + correction bias; masked groups → −inf (DeepSeek-V3)
//   SCORING 2 sparsemixer (PhiMoE at inference, k = 2): argmax, weight = softmax over the logits within a
//            relative threshold 2·jitter_eps of it; the second round masks the first choice.
// Group score: max of the group (0) or sum of its best two (1); the best topk_group groups are kept.
// Top-k is k rounds of argmax with a strict '>' scan, so ties go to the LOWEST index (torch.topk on CPU
// behaves so in practice; exact ties are the only place our choice may differ from transformers').
// Weights: the (unbiased) score of each chosen expert, / their sum if NORM (+1e-20 for sigmoid), × scaling.
// Removed experts (pruning plan bitmask) count as logit −∞: never chosen, no share of the softmax.

override SCORING: u32 = 0u;
override HAS_BIAS: u32 = 0u;
override HAS_REMOVED: u32 = 0u;
override WG: u32 = 64u;
const MAX_GROUPS: u32 = 32u; // group flags fit one u32
const NEG: f32 = -3.4028234e38; // stands for −∞ (WGSL has no infinity literal)

struct Params {
  tokens: u32,
  experts: u32,
  k: u32,
  n_group: u32,      // 1 = no grouping
  topk_group: u32,
  group_top2: u32,   // 0 = group max, 1 = sum of the group's best two
  norm: u32,
  scaling: u32,      // f32 bits
  jitter_eps: u32,   // f32 bits
  logits_off: u32,
  logits_stride: u32,
  _pad: u32,
}

@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read_write> out_ids: array<u32>;
@group(0) @binding(2) var<storage, read_write> out_w: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(5) var<storage, read> removed: array<u32>;

fn is_removed(e: u32) -> bool {
  return HAS_REMOVED == 1u && ((removed[e >> 5u] >> (e & 31u)) & 1u) == 1u;
}

// Per-token state. Scores are recomputed from the logits where needed instead of being kept in E-long
// private arrays: those made pipeline creation take seconds on SwiftShader.
var<private> lb: u32;        // this token's first logit
var<private> zmax: f32;      // softmax: max logit of the experts still present
var<private> inv_sum: f32;   // softmax: 1 / Σ exp(z − zmax)
var<private> kept: u32;      // bit g: group g kept (all set when ungrouped)
var<private> per: u32;       // experts per group
var<private> taken: array<u32, 16>;

fn is_taken(e: u32) -> bool {
  return ((taken[e >> 5u] >> (e & 31u)) & 1u) == 1u;
}

fn set_taken(e: u32, on: bool) {
  if (on) {
    taken[e >> 5u] |= 1u << (e & 31u);
  } else {
    taken[e >> 5u] &= ~(1u << (e & 31u));
  }
}

fn group_kept(e: u32) -> bool {
  return ((kept >> (e / per)) & 1u) == 1u;
}

// Softmax probability or sigmoid score before group masking (0 for removed experts).
fn raw_score(e: u32) -> f32 {
  if (is_removed(e)) {
    return 0.0;
  }
  let z = logits[lb + e];
  if (SCORING == 0u) {
    return exp(z - zmax) * inv_sum;
  }
  return 1.0 / (1.0 + exp(-z));
}

// The combination weight source: DeepSeek-V2 (softmax) takes it from the group-masked probabilities.
fn weight_of(e: u32) -> f32 {
  if (SCORING == 0u && !group_kept(e)) {
    return 0.0;
  }
  return raw_score(e);
}

// The value top-k ranks: score + correction bias; masked groups → 0 (softmax) or −∞ (sigmoid).
fn choice(e: u32) -> f32 {
  if (is_removed(e)) {
    return NEG;
  }
  if (!group_kept(e)) {
    if (SCORING == 0u) {
      return 0.0;
    }
    return NEG;
  }
  var c = raw_score(e);
  if (HAS_BIAS == 1u) {
    c += bias[e];
  }
  return c;
}

// Best not-taken expert in [lo, hi) by choice(), lowest index on ties; hi if all are taken.
fn argmax(lo: u32, hi: u32) -> u32 {
  var best = hi;
  var bv = 0.0;
  for (var e = lo; e < hi; e++) {
    if (!is_taken(e)) {
      let c = choice(e);
      if (best == hi || c > bv) {
        best = e;
        bv = c;
      }
    }
  }
  return best;
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let t = gid.x + gid.y * nwg.x * WG;
  if (t >= p.tokens) {
    return;
  }
  let E = p.experts;
  lb = p.logits_off + t * p.logits_stride;
  let ob = t * p.k;
  for (var i = 0u; i < 16u; i++) {
    taken[i] = 0u;
  }
  if (SCORING == 2u) {
    sparsemixer(ob);
    return;
  }

  zmax = NEG;
  var sum = 0.0;
  if (SCORING == 0u) {
    for (var e = 0u; e < E; e++) {
      if (!is_removed(e)) {
        zmax = max(zmax, logits[lb + e]);
      }
    }
    for (var e = 0u; e < E; e++) {
      if (!is_removed(e)) {
        sum += exp(logits[lb + e] - zmax);
      }
    }
    inv_sum = 1.0 / sum;
  }

  kept = 0xffffffffu;
  per = E;
  if (p.n_group > 1u) {
    per = E / p.n_group;
    var gscore: array<f32, MAX_GROUPS>;
    for (var g = 0u; g < p.n_group; g++) {
      let lo = g * per;
      let a = argmax(lo, lo + per);
      var gs = choice(a);
      if (p.group_top2 == 1u && per > 1u) {
        set_taken(a, true);
        gs += choice(argmax(lo, lo + per));
        set_taken(a, false);
      }
      gscore[g] = gs;
    }
    var chosen = 0u;
    for (var r = 0u; r < p.topk_group; r++) {
      var best = p.n_group;
      for (var g = 0u; g < p.n_group; g++) {
        if (((chosen >> g) & 1u) == 0u && (best == p.n_group || gscore[g] > gscore[best])) {
          best = g;
        }
      }
      chosen |= 1u << best;
    }
    kept = chosen;
  }

  var wsum = 0.0;
  for (var r = 0u; r < p.k; r++) {
    let e = argmax(0u, E);
    set_taken(e, true);
    let w = weight_of(e);
    out_ids[ob + r] = e;
    out_w[ob + r] = w;
    wsum += w;
  }
  var f = bitcast<f32>(p.scaling);
  if (p.norm == 1u) {
    if (SCORING == 1u) {
      wsum += 1e-20;
    }
    f = f / wsum;
  }
  for (var r = 0u; r < p.k; r++) {
    out_w[ob + r] = out_w[ob + r] * f;
  }
}

// Weight of the best remaining logit: 1 / Σ exp(z_i − max) over the experts within the relative threshold.
fn sparsemixer(ob: u32) {
  let eps2 = 2.0 * bitcast<f32>(p.jitter_eps);
  var skip: array<u32, 16>; // removed experts and earlier choices
  for (var i = 0u; i < 16u; i++) {
    skip[i] = 0u;
  }
  for (var e = 0u; e < p.experts; e++) {
    if (is_removed(e)) {
      skip[e >> 5u] |= 1u << (e & 31u);
    }
  }
  for (var r = 0u; r < 2u; r++) {
    var best = p.experts;
    for (var e = 0u; e < p.experts; e++) {
      if (((skip[e >> 5u] >> (e & 31u)) & 1u) == 0u && (best == p.experts || logits[lb + e] > logits[lb + best])) {
        best = e;
      }
    }
    let thr = logits[lb + best];
    var s = 0.0;
    for (var e = 0u; e < p.experts; e++) {
      if (((skip[e >> 5u] >> (e & 31u)) & 1u) == 1u) {
        continue;
      }
      let z = logits[lb + e];
      let factor = max(abs(z), thr);
      if (factor > 0.0 && (thr - z) / factor > eps2) {
        continue;
      }
      s += exp(z - thr);
    }
    skip[best >> 5u] |= 1u << (best & 31u);
    out_ids[ob + r] = best;
    out_w[ob + r] = bitcast<f32>(p.scaling) / s;
  }
}
