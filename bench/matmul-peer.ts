/**
 * Our linear-layer matmul (y = x·Wᵀ, W stored [out, in] as nn.Linear keeps it) against a well-known peer WebGPU
 * matmul, TensorFlow.js's tfjs-backend-webgpu, on the same device, same shapes, same run. Both are timed until
 * the result is read back to the CPU, best of `repeats`, after a warm-up that compiles the pipelines.
 */
import * as tf from '@tensorflow/tfjs-core';
import { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import type { GpuContext } from '../src/gpu/device.ts';
import { linear } from '../src/gpu/kernels/matmul.ts';
import { readBuffer, STORAGE_USAGE } from '../src/gpu/pool.ts';
import { f32ToBf16 } from '../src/formats/dtype.ts';
import { releaseTensor, uploadTensor } from '../src/gpu/tensor.ts';

export interface MatmulPeerResult {
  readonly shape: { tokens: number; in: number; out: number };
  readonly oursF32Gflops: number;
  readonly oursBf16Gflops: number;
  readonly peerGflops: number;
}

function values(n: number, seed: number): Float32Array<ArrayBuffer> {
  const out = new Float32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) out[i] = ((s = (s * 1664525 + 1013904223) >>> 0) / 4294967296 - 0.5) * 0.1;
  return out;
}

async function best(repeats: number, f: () => Promise<void>): Promise<number> {
  await f(); // warm-up: pipeline compilation
  let ms = Infinity;
  for (let i = 0; i < repeats; i++) {
    const t = performance.now();
    await f();
    ms = Math.min(ms, performance.now() - t);
  }
  return ms;
}

export async function benchMatmulPeer(gpu: GpuContext, tokens = 128, inDim = 1024, outDim = 1024, repeats = 3): Promise<MatmulPeerResult> {
  const flops = 2 * tokens * inDim * outDim;
  const x = values(tokens * inDim, 1);
  const w = values(outDim * inDim, 2);
  const xb = await gpu.pool.acquire(x.byteLength, STORAGE_USAGE, 'bench x');
  gpu.device.queue.writeBuffer(xb, 0, x);
  const wF32 = await uploadTensor(gpu, new Uint8Array(w.buffer), 'F32', [outDim, inDim]);
  const bf = new Uint16Array(w.length).map((_, i) => f32ToBf16(w[i]!));
  const wBf16 = await uploadTensor(gpu, new Uint8Array(bf.buffer), 'BF16', [outDim, inDim]);
  const ours = (wt: typeof wF32) => async () => {
    const y = await linear(gpu, { buffer: xb, byteLength: x.byteLength }, wt, tokens);
    await readBuffer(gpu, y.buffer, y.byteLength); // both sides end with the result read back
    gpu.pool.release(y.buffer);
  };
  const oursF32 = await best(repeats, ours(wF32));
  const oursBf16 = await best(repeats, ours(wBf16));
  releaseTensor(gpu, wF32);
  releaseTensor(gpu, wBf16);
  gpu.pool.release(xb);

  // The peer on the very same GPUDevice. Its constructor only checks that `navigator.gpu` exists, which Node lacks.
  const g0 = globalThis as { navigator?: { gpu?: unknown } };
  if (!g0.navigator?.gpu) Object.defineProperty(globalThis, 'navigator', { value: { ...(g0.navigator ?? {}), gpu: {} }, configurable: true });
  const backend = new WebGPUBackend(gpu.device);
  // Kernels are registered under the name 'webgpu': replace the package's own factory (which would open its own device).
  if (tf.findBackendFactory('webgpu')) tf.removeBackend('webgpu');
  tf.registerBackend('webgpu', () => backend);
  await tf.setBackend('webgpu');
  const tx = tf.tensor2d(x, [tokens, inDim]);
  const tw = tf.tensor2d(w, [outDim, inDim]);
  const peer = await best(repeats, async () => {
    const y = tf.matMul(tx, tw, false, true);
    await y.data();
    y.dispose();
  });
  tx.dispose();
  tw.dispose();
  tf.removeBackend('webgpu');
  const g = (ms: number) => flops / (ms / 1000) / 1e9;
  return { shape: { tokens, in: inDim, out: outDim }, oursF32Gflops: g(oursF32), oursBf16Gflops: g(oursBf16), peerGflops: g(peer) };
}
