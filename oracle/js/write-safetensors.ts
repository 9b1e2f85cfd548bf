/**
 * Writes a .safetensors file with our streaming writer, for the oracle to compare with Python's writer.
 * Usage: tsx oracle/js/write-safetensors.ts <out.safetensors> '<json [{name, dtype, shape}]>'
 * Tensor bytes follow a fixed pattern the Python test reproduces: byte k of tensor i is (i*37 + k*11) & 0xff,
 * or (k & 1) for BOOL. Each tensor is produced in 3-byte-or-smaller pieces to exercise streaming.
 */
import { open } from 'node:fs/promises';
import { byteSize, type DType } from '../../src/formats/dtype.ts';
import { writeSafetensors } from '../../src/formats/safetensors/writer.ts';

const [out, specJson] = process.argv.slice(2);
const spec = JSON.parse(specJson!) as Array<{ name: string; dtype: DType; shape: number[] }>;
const fh = await open(out!, 'w');
await writeSafetensors(
  { write: async (b) => void (await fh.write(b)), close: async () => fh.close() },
  spec.map((t, i) => ({
    ...t,
    async *data() {
      const n = byteSize(t.dtype, t.shape);
      const bytes = new Uint8Array(n);
      for (let k = 0; k < n; k++) bytes[k] = t.dtype === 'BOOL' ? k & 1 : (i * 37 + k * 11) & 0xff;
      for (let k = 0; k < n; k += 3) yield bytes.subarray(k, Math.min(n, k + 3));
    },
  })),
);
await fh.close();
