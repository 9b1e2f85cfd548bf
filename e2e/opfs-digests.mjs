// The files an export wrote into an origin-private folder, with sizes and SHA-256, read in the page: shared by the
// e2e tests (studio.mjs) and the opt-in scale check (scale-page.mjs).

/**
 * Runs in the page (pass to page.evaluate, self-contained): every file of every folder inside `folder` of the
 * origin-private file system, with its size and SHA-256. Each file is read 8 MiB at a time and hashed as it goes
 * (crypto.subtle has no incremental digest), so no file is ever whole in memory. Also usable in Node on Blobs.
 */
export async function opfsDigestsInPage(folder) {
  const K = new Int32Array([
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
  ]);
  const W = new Int32Array(64);
  /** Feeds the whole 64-byte blocks of `bytes` (its length a multiple of 64) into the state `H`. */
  const blocks = (H, bytes) => {
    let h0 = H[0] | 0, h1 = H[1] | 0, h2 = H[2] | 0, h3 = H[3] | 0, h4 = H[4] | 0, h5 = H[5] | 0, h6 = H[6] | 0, h7 = H[7] | 0;
    for (let p = 0; p + 64 <= bytes.length; p += 64) {
      for (let i = 0, q = p; i < 16; i++, q += 4) W[i] = (bytes[q] << 24) | (bytes[q + 1] << 16) | (bytes[q + 2] << 8) | bytes[q + 3];
      for (let i = 16; i < 64; i++) {
        const x = W[i - 15];
        const y = W[i - 2];
        const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
        const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
        W[i] = (W[i - 16] + s0 + W[i - 7] + s1) | 0;
      }
      let a = h0, b = h1, c = h2, d = h3, e = h4, f = h5, g = h6, h = h7;
      for (let i = 0; i < 64; i++) {
        const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
        const t1 = (h + S1 + ((e & f) ^ (~e & g)) + K[i] + W[i]) | 0;
        const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
        const t2 = (S0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
        h = g;
        g = f;
        f = e;
        e = (d + t1) | 0;
        d = c;
        c = b;
        b = a;
        a = (t1 + t2) | 0;
      }
      h0 = (h0 + a) | 0;
      h1 = (h1 + b) | 0;
      h2 = (h2 + c) | 0;
      h3 = (h3 + d) | 0;
      h4 = (h4 + e) | 0;
      h5 = (h5 + f) | 0;
      h6 = (h6 + g) | 0;
      h7 = (h7 + h) | 0;
    }
    [H[0], H[1], H[2], H[3], H[4], H[5], H[6], H[7]] = [h0, h1, h2, h3, h4, h5, h6, h7];
  };
  const PIECE = 8 << 20; // a multiple of 64: only the last piece leaves a partial block
  const sha256 = async (blob) => {
    const H = new Uint32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
    let tail = new Uint8Array(0);
    for (let off = 0; off < blob.size; off += PIECE) {
      const bytes = new Uint8Array(await blob.slice(off, off + PIECE).arrayBuffer());
      const whole = bytes.byteLength - (bytes.byteLength % 64);
      blocks(H, bytes.subarray(0, whole));
      tail = bytes.slice(whole);
    }
    // Length: tail + 0x80 + zeros + 8 bytes of bit count, rounded up to whole blocks.
    const len = Math.ceil((tail.byteLength + 9) / 64) * 64;
    const last = new Uint8Array(len);
    last.set(tail);
    last[tail.byteLength] = 0x80;
    const bits = blob.size * 8;
    const dv = new DataView(last.buffer);
    dv.setUint32(len - 8, Math.floor(bits / 2 ** 32));
    dv.setUint32(len - 4, bits >>> 0);
    blocks(H, last);
    return Array.from(H, (x) => x.toString(16).padStart(8, '0')).join('');
  };
  if (typeof folder !== 'string') return sha256(folder); // a Blob: the Node-side self-check
  const dir = await (await navigator.storage.getDirectory()).getDirectoryHandle(folder, { create: true });
  const out = {};
  for await (const [name, h] of dir.entries()) {
    if (h.kind !== 'directory') continue;
    out[name] = {};
    for await (const [f, fh] of h.entries()) {
      if (fh.kind !== 'file') continue;
      const file = await fh.getFile();
      out[name][f] = { size: file.size, sha256: await sha256(file) };
    }
  }
  return out;
}
