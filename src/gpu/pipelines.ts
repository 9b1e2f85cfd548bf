import { MoePruneError } from '../core/errors.ts';

interface ShaderEntry {
  readonly id: number;
  readonly module: GPUShaderModule;
  /** The compile error, if any, caught in an error scope around createShaderModule. */
  readonly error: Promise<GPUError | null>;
}

export interface PipelineSpec {
  /** Short name for labels and error messages, e.g. "unpack". */
  readonly name: string;
  /** WGSL source text. */
  readonly code: string;
  readonly entryPoint: string;
  /** Values for WGSL `override` declarations (workgroup size, dtype switches). */
  readonly constants?: Readonly<Record<string, number>>;
}

/**
 * One compute pipeline per (shader, entry point, override values). Creating a pipeline costs up to ~0.8 s
 * on SwiftShader and tens of ms on real GPUs, so kernels must never create one per dispatch.
 */
export class PipelineCache {
  private readonly modules = new Map<string, ShaderEntry>();
  private readonly pipelines = new Map<string, Promise<GPUComputePipeline>>();
  private created = 0;

  constructor(private readonly device: GPUDevice) {}

  get(spec: PipelineSpec): Promise<GPUComputePipeline> {
    const mod = this.module(spec);
    const constants = spec.constants ?? {};
    const constKey = Object.keys(constants)
      .sort()
      .map((k) => `${k}=${constants[k]}`)
      .join(',');
    const key = `${mod.id}|${spec.entryPoint}|${constKey}`;
    let p = this.pipelines.get(key);
    if (!p) {
      p = this.create(spec, mod, constants);
      this.pipelines.set(key, p);
      // A failed creation must not poison the cache: the next call retries (and fails again with its message).
      p.catch(() => this.pipelines.delete(key));
    }
    return p;
  }

  /** Number of pipelines actually created (cache misses); tests use it to prove caching. */
  get createdCount(): number {
    return this.created;
  }

  clear(): void {
    this.modules.clear();
    this.pipelines.clear();
  }

  private module(spec: PipelineSpec): ShaderEntry {
    let m = this.modules.get(spec.code);
    if (!m) {
      // WGSL compile errors are validation errors of createShaderModule: catch them here, report them with the pipeline.
      this.device.pushErrorScope('validation');
      const module = this.device.createShaderModule({ label: spec.name, code: spec.code });
      const error = this.device.popErrorScope();
      m = { id: this.modules.size, module, error };
      this.modules.set(spec.code, m);
    }
    return m;
  }

  private async create(spec: PipelineSpec, entry: ShaderEntry, constants: Record<string, number>): Promise<GPUComputePipeline> {
    this.created++;
    const label = `${spec.name}:${spec.entryPoint}`;
    const module = entry.module;
    const compileError = await entry.error;
    // No error scope around the async creation (scopes are one stack per device and other work runs meanwhile):
    // createComputePipelineAsync rejects by itself when the pipeline is invalid.
    let pipeline: GPUComputePipeline | undefined;
    let failure: unknown = compileError ?? undefined;
    if (!compileError)
      try {
        pipeline = await this.device.createComputePipelineAsync({
          label,
          layout: 'auto',
          compute: { module, entryPoint: spec.entryPoint, constants },
        });
      } catch (e) {
        failure = e;
      }
    if (pipeline && !compileError) return pipeline;
    // Name the WGSL line when the compiler reports one; the raw error alone rarely says which kernel broke.
    const info = await module.getCompilationInfo().catch(() => undefined);
    const firstError = info?.messages.find((m) => m.type === 'error');
    const where = firstError ? ` (line ${firstError.lineNum}: ${firstError.message})` : '';
    const msg = compileError?.message ?? (failure instanceof Error ? failure.message : String(failure));
    throw new MoePruneError('GpuValidation', `cannot build the GPU kernel ${label}${where}: ${msg}`, `shaders/${spec.name}.wgsl`, {
      cause: failure,
    });
  }
}
