// Shared by every kernel that reads tensors in their stored dtype (appended to the kernel's source by its TS
// wrapper, so the kernel's own line numbers stay as in its file). Tensors arrive as u32 words: F32 one element per
// word, F16/BF16 two per word, element 2k in the low half of word k (little-endian). No shader-f16 needed.

override DTYPE: u32 = 0u; // 0 = F32, 1 = F16, 2 = BF16

// Index of the u32 word that holds element e.
fn word_of(e: u32) -> u32 {
  return select(e >> 1u, e, DTYPE == 0u);
}

// Element e widened to f32, given the word that holds it (`word_of(e)`).
fn widen_word(word: u32, e: u32) -> f32 {
  if (DTYPE == 0u) {
    return bitcast<f32>(word);
  }
  let h = (word >> ((e & 1u) * 16u)) & 0xffffu;
  if (DTYPE == 2u) {
    return bitcast<f32>(h << 16u);
  }
  return unpack2x16float(h).x;
}
