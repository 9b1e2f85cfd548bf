/**
 * The weights of one decoder layer on the GPU: uploaded on first use in their stored dtype (block-FP8 with its
 * f32 block scales in one extra binding), cached by tensor name for the layer's chunks, and released together
 * when the layer is done. Counts uploaded bytes.
 */
import { MoePruneError } from '../core/errors.ts';
import type { GpuContext } from '../gpu/device.ts';
import type { BufferView } from '../gpu/dispatch.ts';
import type { BlockScale } from '../gpu/kernels/matmul.ts';
import { STORAGE_USAGE } from '../gpu/pool.ts';
import { releaseTensor, uploadTensor, type GpuTensor } from '../gpu/tensor.ts';
import type { WeightPlan } from './plan.ts';
import { storedToF32, type GpuWeightSource, type StoredTensor } from './weights.ts';

export class LayerWeights {
  /** Bytes uploaded for this layer (weights, biases, masks). */
  bytes = 0;
  private readonly tensors = new Map<string, Promise<{ t: GpuTensor; scale?: BlockScale }>>();
  private readonly views = new Map<string, Promise<BufferView>>();

  constructor(
    private readonly ctx: GpuContext,
    private readonly src: GpuWeightSource,
    private readonly plan: WeightPlan | undefined,
    private readonly signal: AbortSignal | undefined,
    private readonly maxBindingBytes: number | undefined,
  ) {}

  has(name: string): boolean {
    return this.src.has(name);
  }

  /** A whole tensor, as stored. */
  tensor(name: string): Promise<GpuTensor> {
    return this.put(name, () => this.src.rows(name, 0, undefined, this.signal));
  }

  /** Uploads what `make` returns under `name` (expert slices, merged means); later calls reuse it. */
  async put(name: string, make: () => Promise<StoredTensor> | StoredTensor): Promise<GpuTensor> {
    return (await this.entry(name, make)).t;
  }

  /** Block scales of a block-FP8 weight already asked for (`tensor` / `put`); undefined for other dtypes. */
  async blockScale(name: string): Promise<BlockScale | undefined> {
    const e = this.tensors.get(name);
    if (!e) throw new MoePruneError('InvalidArgument', `the block scales of "${name}" were asked for before the weight`);
    return (await e).scale;
  }

  private entry(name: string, make: () => Promise<StoredTensor> | StoredTensor): Promise<{ t: GpuTensor; scale?: BlockScale }> {
    let t = this.tensors.get(name);
    if (!t) {
      t = (async () => {
        const st = await make();
        const up = await uploadTensor(this.ctx, st.bytes, st.dtype, st.shape, {
          name, signal: this.signal, ...(this.maxBindingBytes ? { maxBindingBytes: this.maxBindingBytes } : {}),
        });
        this.bytes += up.parts.reduce((a, p) => a + p.byteLength, 0);
        if (!st.scale) return { t: up };
        const { values, block, rowOffset } = st.scale;
        // One binding for the whole scale grid: 1/16384 of the weight for 128 × 128 blocks.
        return { t: up, scale: { view: await this.view(`scale:${name}`, () => values), block, rowOffset } };
      })();
      this.tensors.set(name, t);
    }
    return t;
  }

  /** f32 values as one binding (biases, correction bias); `values` overrides the checkpoint's. */
  f32(name: string, values?: () => Promise<Float32Array> | Float32Array): Promise<BufferView> {
    const make = values ?? (async () => storedToF32(await this.src.rows(name, 0, undefined, this.signal), this.signal));
    return this.view(`f32:${name}`, async () => make());
  }

  /** The plan's bit mask of a linear weight, or undefined. */
  async mask(name: string): Promise<BufferView | undefined> {
    const m = this.plan?.mask?.(name);
    if (!m) return undefined;
    return this.view(`mask:${name}`, () => m);
  }

  /** Small u32/f32 data uploaded once for the layer (removed-expert bitmask). */
  words(key: string, data: Uint32Array): Promise<BufferView> {
    return this.view(`words:${key}`, () => data);
  }

  private view(key: string, make: () => Promise<Float32Array | Uint32Array> | Float32Array | Uint32Array): Promise<BufferView> {
    let v = this.views.get(key);
    if (!v) {
      v = (async () => {
        const data = await make();
        const byteLength = Math.max(4, data.byteLength);
        if (byteLength > this.ctx.limits.maxStorageBufferBindingSize)
          throw new MoePruneError('InvalidShape', `${key} is ${byteLength} bytes, more than one GPU binding holds`);
        const buffer = await this.ctx.pool.acquire(byteLength, STORAGE_USAGE, key);
        if (data.byteLength) this.ctx.device.queue.writeBuffer(buffer, 0, data.buffer as ArrayBuffer, data.byteOffset, data.byteLength);
        this.bytes += data.byteLength;
        return { buffer, byteLength };
      })();
      this.views.set(key, v);
    }
    return v;
  }

  /** Returns every buffer of the layer to the pool (after the last submission that uses them). */
  async release(): Promise<void> {
    for (const t of this.tensors.values()) {
      const up = await t.catch(() => undefined);
      if (up) releaseTensor(this.ctx, up.t);
    }
    for (const v of this.views.values()) {
      const b = await v.catch(() => undefined);
      if (b) this.ctx.pool.release(b.buffer);
    }
    this.tensors.clear();
    this.views.clear();
  }
}
