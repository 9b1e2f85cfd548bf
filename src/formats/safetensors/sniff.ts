import { MAX_HEADER_BYTES } from './header.ts';

/**
 * Tells a file that is not safetensors at all from a broken one, from its first 8 bytes.
 *
 * A safetensors file starts with its header length as a little-endian u64, and the reference reader refuses a header
 * over MAX_HEADER_BYTES (< 2^32), so bytes 4..7 of every file it could accept are zero. A PyTorch zip or pickle, a
 * GGUF file or a text file read the same way gives a length in the exabytes, and the reader's own message ("header
 * length 5764607523034234880 exceeds the limit") would tell the user nothing. When bytes 4..7 are not zero we say
 * instead what the file most likely is. Files whose bytes 4..7 are zero are left to the reader's rules, so every
 * verdict on a possible safetensors file stays the reference reader's.
 */
export function notSafetensorsReason(first: Uint8Array): string | null {
  if (first.byteLength < 8) return null; // too short to be anything: the reader's HeaderTooSmall says so
  if (first[4] === 0 && first[5] === 0 && first[6] === 0 && first[7] === 0) return null;
  const starts = (...bytes: number[]): boolean => bytes.every((b, i) => first[i] === b);
  if (starts(0x50, 0x4b, 0x03, 0x04)) return 'it is a zip archive (PyTorch saves .bin and .pt checkpoints as one); convert the checkpoint to safetensors first';
  if (first[0] === 0x80 && first[1]! >= 2 && first[1]! <= 5) return 'it is a Python pickle (an older PyTorch .bin or .pt checkpoint); convert the checkpoint to safetensors first';
  if (starts(0x47, 0x47, 0x55, 0x46)) return 'it is a GGUF file (llama.cpp); this app reads Hugging Face checkpoints in safetensors';
  if (starts(0x89, 0x48, 0x44, 0x46)) return 'it is an HDF5 file (such as a Keras .h5 checkpoint), not a Hugging Face safetensors file';
  if (starts(0x1f, 0x8b)) return 'it is gzip-compressed; decompress it first';
  const body = starts(0xef, 0xbb, 0xbf) ? first.subarray(3, 8) : first.subarray(0, 8); // after a UTF-8 byte-order mark
  if (body.every((b) => (b >= 0x20 && b < 0x7f) || b === 0x09 || b === 0x0a || b === 0x0d)) {
    const lead = String.fromCharCode(...body).trimStart()[0];
    return lead === '{' || lead === '['
      ? 'it is a JSON text file (a config or an index?), not the binary safetensors format'
      : 'it is a text file, not the binary safetensors format';
  }
  return `its first 8 bytes are not the header length every safetensors file starts with (that length is at most ${MAX_HEADER_BYTES.toLocaleString('en-US')} bytes)`;
}
