/**
 * Weight access keyed by tensor name. The reference forward pass, the GPU engine and the pruning plan all read
 * weights through this interface, so a plan can wrap it (merged experts, per-tensor masks) without touching
 * the math. Values are widened to f32; FP8 block-quantised weights are dequantised with their `_scale_inv`.
 */
import { MoePruneError } from '../../core/errors.ts';
import { readJson, requireFile, type FileSet } from '../../formats/bytes.ts';
import type { Shape } from '../../formats/dtype.ts';
import { refuseUnfinishedExport } from '../../formats/export-marker.ts';
import { dequantBlockFp8 } from '../../formats/fp8.ts';
import { INDEX_FILE, readShardIndex, SINGLE_FILE } from '../../formats/safetensors/index-file.ts';
import { openSafetensors, type SafetensorsFile } from '../../formats/safetensors/reader.ts';

export interface WeightSource {
  has(name: string): boolean;
  /** Logical shape (for FP8 weights: the weight's, not the scale's); undefined when absent. */
  shape(name: string): Shape | undefined;
  /** The whole tensor as f32 (dequantised). Throws MissingTensor when absent. */
  read(name: string, signal?: AbortSignal): Promise<Float32Array>;
  /** Rows [start, start+count) along dim 0 as f32 (for one expert of a fused [E, …] tensor). */
  readRows(name: string, start: number, count: number, signal?: AbortSignal): Promise<Float32Array>;
}

/** Weights of an opened checkpoint (sharded with an index, or a single model.safetensors). */
export class CheckpointWeights implements WeightSource {
  private constructor(
    private readonly where: ReadonlyMap<string, SafetensorsFile>,
    /** Block-FP8 scale blocks [rows, cols] (config quantization_config.weight_block_size; 128 × 128 by default). */
    readonly blockSize: readonly [number, number],
  ) {}

  static async open(files: FileSet, signal?: AbortSignal): Promise<CheckpointWeights> {
    refuseUnfinishedExport(files);
    const shardNames: string[] = [];
    if (files.get(INDEX_FILE)) {
      const index = await readShardIndex(requireFile(files, INDEX_FILE), signal);
      shardNames.push(...new Set(index.weightMap.values()));
    } else if (files.get(SINGLE_FILE)) shardNames.push(SINGLE_FILE);
    else shardNames.push(...files.names().filter((n) => n.endsWith('.safetensors')));
    if (!shardNames.length) throw new MoePruneError('MissingFile', `the checkpoint has no ${INDEX_FILE}, ${SINGLE_FILE} or .safetensors file`);
    const where = new Map<string, SafetensorsFile>();
    for (const s of shardNames.sort()) {
      const st = await openSafetensors(requireFile(files, s), signal);
      for (const name of st.tensors.keys()) where.set(name, st);
    }
    let block: [number, number] = [128, 128];
    const cfg = files.get('config.json');
    if (cfg) {
      const q = (await readJson<Record<string, unknown>>(cfg, signal)).quantization_config as Record<string, unknown> | undefined;
      const b = q?.weight_block_size;
      if (Array.isArray(b) && b.length === 2 && b.every((v) => Number.isInteger(v) && v > 0)) block = [b[0] as number, b[1] as number];
    }
    return new CheckpointWeights(where, block);
  }

  names(): string[] {
    return [...this.where.keys()].sort();
  }
  has(name: string): boolean {
    return this.where.has(name);
  }
  shape(name: string): Shape | undefined {
    return this.where.get(name)?.tensors.get(name)?.shape;
  }
  /** The shard holding `name` (MissingTensor when none does). */
  file(name: string): SafetensorsFile {
    const f = this.where.get(name);
    if (!f) throw new MoePruneError('MissingTensor', `the checkpoint has no tensor "${name}"`);
    return f;
  }

  async read(name: string, signal?: AbortSignal): Promise<Float32Array> {
    const shape = this.shape(name);
    return this.readRows(name, 0, shape?.[0] ?? 1, signal);
  }

  async readRows(name: string, start: number, count: number, signal?: AbortSignal): Promise<Float32Array> {
    const f = this.file(name);
    const info = f.info(name);
    const values = info.shape.length === 0 ? await f.readF32(name, signal) : await f.readRowsF32(name, start, count, signal);
    const scaleName = `${name}_scale_inv`;
    if (!this.where.has(scaleName) || !info.dtype.startsWith('F8')) return values;
    if (info.shape.length !== 2)
      throw new MoePruneError('UnsupportedDtype', `block FP8 is handled for 2-D weights; "${name}" has shape ${JSON.stringify(info.shape)}`, f.name);
    const scale = await this.read(scaleName, signal);
    const scaleCols = this.shape(scaleName)?.[1] ?? 1;
    return dequantBlockFp8(values, info.shape[1]!, scale, scaleCols, this.blockSize, start);
  }
}

/** Tensors held in memory (tests, and plans that materialise merged experts). */
export class MemoryWeights implements WeightSource {
  constructor(private readonly tensors: ReadonlyMap<string, { shape: Shape; data: Float32Array }>) {}
  has(name: string): boolean {
    return this.tensors.has(name);
  }
  shape(name: string): Shape | undefined {
    return this.tensors.get(name)?.shape;
  }
  private get(name: string) {
    const t = this.tensors.get(name);
    if (!t) throw new MoePruneError('MissingTensor', `no tensor "${name}"`);
    return t;
  }
  async read(name: string): Promise<Float32Array> {
    return this.get(name).data.slice();
  }
  async readRows(name: string, start: number, count: number): Promise<Float32Array> {
    const t = this.get(name);
    const row = t.data.length / (t.shape[0] ?? 1);
    return t.data.slice(start * row, (start + count) * row);
  }
}

/**
 * A source whose tensors can be replaced or rewritten by name (merged experts, masked weights). `rewrite`
 * gets the f32 values read from `base` and returns the values to use; returning them unchanged is allowed.
 */
export function overlayWeights(
  base: WeightSource,
  rewrite: (name: string, values: Float32Array, rows: { start: number; count: number } | null) => Float32Array | Promise<Float32Array>,
): WeightSource {
  return {
    has: (n) => base.has(n),
    shape: (n) => base.shape(n),
    read: async (n, s) => rewrite(n, await base.read(n, s), null),
    readRows: async (n, start, count, s) => rewrite(n, await base.readRows(n, start, count, s), { start, count }),
  };
}
