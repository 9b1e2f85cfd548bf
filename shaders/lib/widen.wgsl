// Shared by every kernel that reads tensors in their stored dtype (appended to the kernel's source by its TS
// wrapper, so the kernel's own line numbers stay as in its file). Tensors arrive as u32 words: F32 one element per
// word, F16/BF16 two per word, F8_E4M3 four per word; element k·n lowest in word k (little-endian). No shader-f16.

override DTYPE: u32 = 0u; // 0 = F32, 1 = F16, 2 = BF16, 3 = F8_E4M3 (OCP e4m3fn)

// Index of the u32 word that holds element e.
fn word_of(e: u32) -> u32 {
  if (DTYPE == 0u) {
    return e;
  }
  return select(e >> 1u, e >> 2u, DTYPE == 3u);
}

// One e4m3fn byte to f32, exactly as src/formats/dtype.ts f8e4m3ToF32: no infinities, S.1111.111 is NaN,
// subnormals m·2^-9, normals (1 + m/8)·2^(e−7). Built from bits (every value is exact in f32); the NaN's bits
// come from the runtime byte so no constant NaN is ever folded.
fn widen_f8(b: u32) -> f32 {
  let s = (b & 0x80u) << 24u;
  let e = (b >> 3u) & 0xfu;
  let m = b & 7u;
  if (e == 0u) {
    return bitcast<f32>(s | bitcast<u32>(f32(m) * 0.001953125));
  }
  if (e == 15u && m == 7u) {
    return bitcast<f32>(s | 0x7fc00000u | m);
  }
  return bitcast<f32>(s | ((e + 120u) << 23u) | (m << 20u));
}

// Element e widened to f32, given the word that holds it (`word_of(e)`).
fn widen_word(word: u32, e: u32) -> f32 {
  if (DTYPE == 0u) {
    return bitcast<f32>(word);
  }
  if (DTYPE == 3u) {
    return widen_f8((word >> ((e & 3u) * 8u)) & 0xffu);
  }
  let h = (word >> ((e & 1u) * 16u)) & 0xffffu;
  if (DTYPE == 2u) {
    return bitcast<f32>(h << 16u);
  }
  return unpack2x16float(h).x;
}
