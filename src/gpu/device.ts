import { MoePruneError } from '../core/errors.ts';
import { BufferPool } from './pool.ts';
import { PipelineCache } from './pipelines.ts';

/**
 * Numeric limits the kernels depend on. We request the adapter's own value for each, because the WebGPU
 * defaults (128 MiB per binding, 256 MiB per buffer, 16 KiB workgroup memory) are far below what real GPUs
 * and SwiftShader offer, and tensor splitting is sized from these numbers.
 */
export const REQUESTED_LIMITS = [
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxStorageBuffersPerShaderStage',
  'maxComputeWorkgroupsPerDimension',
  'maxUniformBufferBindingSize',
  'minStorageBufferOffsetAlignment',
] as const;

export type GpuLimitName = (typeof REQUESTED_LIMITS)[number];
export type GpuLimits = Readonly<Record<GpuLimitName, number>>;

/** Optional features we use when present; shader-f16 is deliberately absent (SwiftShader lacks it). */
export const OPTIONAL_FEATURES = ['subgroups', 'timestamp-query'] as const;
export type GpuOptionalFeature = (typeof OPTIONAL_FEATURES)[number];

/** Plain-data description of the adapter, for UI and CLI display. */
export interface GpuAdapterSummary {
  readonly vendor: string;
  readonly architecture: string;
  readonly device: string;
  readonly description: string;
  readonly isFallbackAdapter: boolean;
  /** Human-readable one-liner, e.g. "SwiftShader driver 5.0.0 (google swiftshader, software fallback)". */
  readonly label: string;
}

export interface GpuContext {
  readonly device: GPUDevice;
  readonly adapter: GpuAdapterSummary;
  readonly limits: GpuLimits;
  readonly features: ReadonlySet<GpuOptionalFeature>;
  readonly pool: BufferPool;
  readonly pipelines: PipelineCache;
  /** Resolves once the device is gone, either lost (driver reset, OOM kill) or destroyed by us. */
  readonly lost: Promise<MoePruneError>;
  /** The loss error once the device is gone; kernels check it before submitting work. */
  readonly lostError: MoePruneError | undefined;
  /** Calls `cb` when the device is lost unexpectedly (not when we destroy it). Returns an unsubscribe. */
  onLost(cb: (err: MoePruneError) => void): () => void;
  /** Destroys pooled buffers and the device. */
  destroy(): void;
}

export interface CreateDeviceOptions {
  /** Where uncaptured GPU errors and adapter notes go; defaults to console.warn. */
  readonly log?: (msg: string) => void;
  readonly label?: string;
}

function summarizeInfo(info: GPUAdapterInfo | undefined): GpuAdapterSummary {
  // Dawn exposes the fields as prototype getters, so copy them one by one rather than spreading.
  const vendor = info?.vendor ?? '';
  const architecture = info?.architecture ?? '';
  const device = info?.device ?? '';
  const description = info?.description ?? '';
  const isFallbackAdapter = info?.isFallbackAdapter ?? false;
  // Browsers often blank description/device for privacy; vendor + architecture are nearly always set.
  const main = description || device || 'unknown GPU';
  const notes = [[vendor, architecture].filter((x) => x.length > 0).join(' '), isFallbackAdapter ? 'software fallback' : ''].filter((x) => x.length > 0);
  const label = notes.length > 0 ? `${main} (${notes.join(', ')})` : main;
  return { vendor, architecture, device, description, isFallbackAdapter, label };
}

/** Plain JSON object describing a context (adapter, limits, features) for display or logs. */
export function describeAdapter(ctx: GpuContext): {
  adapter: GpuAdapterSummary;
  limits: Record<GpuLimitName, number>;
  features: GpuOptionalFeature[];
} {
  return { adapter: { ...ctx.adapter }, limits: { ...ctx.limits }, features: [...ctx.features].sort() };
}

async function requestAnyAdapter(gpu: GPU): Promise<GPUAdapter | null> {
  const attempts: GPURequestAdapterOptions[] = [{ powerPreference: 'high-performance' }, {}, { forceFallbackAdapter: true }];
  for (const opts of attempts) {
    try {
      const adapter = await gpu.requestAdapter(opts);
      if (adapter) return adapter;
    } catch {
      // Some implementations reject instead of resolving null; try the next kind.
    }
  }
  return null;
}

/**
 * Opens a device on the best adapter `gpu` offers, with the adapter's own limits and the optional features
 * it has. Works with `navigator.gpu` in the page and with the npm `webgpu` GPU object in Node.
 */
export async function createDevice(gpu: GPU, opts: CreateDeviceOptions = {}): Promise<GpuContext> {
  const log = opts.log ?? ((m: string) => console.warn(m));
  const adapter = await requestAnyAdapter(gpu);
  if (!adapter)
    throw new MoePruneError(
      'GpuUnavailable',
      'no WebGPU adapter is available: use a browser with WebGPU enabled (Chrome/Edge 113+, or chrome://flags/#enable-unsafe-webgpu) and an up-to-date GPU driver',
    );

  const requiredLimits: Record<string, number> = {};
  for (const name of REQUESTED_LIMITS) {
    const v = adapter.limits[name];
    if (typeof v === 'number') requiredLimits[name] = v;
  }
  const requiredFeatures = OPTIONAL_FEATURES.filter((f) => adapter.features.has(f));

  let device: GPUDevice;
  try {
    device = await adapter.requestDevice({ label: opts.label ?? 'moe-prune', requiredLimits, requiredFeatures });
  } catch (e) {
    throw new MoePruneError('GpuUnavailable', `the GPU adapter refused to open a device (${(e as Error).message}); update the GPU driver or browser`, undefined, {
      cause: e,
    });
  }

  const limits = {} as Record<GpuLimitName, number>;
  for (const name of REQUESTED_LIMITS) limits[name] = device.limits[name];
  const features = new Set<GpuOptionalFeature>(OPTIONAL_FEATURES.filter((f) => device.features.has(f)));
  const summary = summarizeInfo(adapter.info);

  device.addEventListener('uncapturederror', (ev) => {
    const err = (ev as GPUUncapturedErrorEvent).error;
    log(`GPU error not caught by any error scope on ${summary.label}: ${err.message}`);
  });

  const subscribers = new Set<(err: MoePruneError) => void>();
  let lostError: MoePruneError | undefined;
  let destroyedByUs = false;
  const lost = device.lost.then((info) => {
    const err = destroyedByUs
      ? new MoePruneError('GpuLost', 'the GPU device was closed; open a new one before running more GPU work')
      : new MoePruneError(
          'GpuLost',
          `the GPU device on ${summary.label} was lost (${info.reason}${info.message ? `: ${info.message}` : ''}); ` +
            'this happens when the driver resets or the GPU runs out of memory: close other GPU-heavy tabs or programs, then retry (work already stored is kept)',
        );
    lostError = err;
    if (!destroyedByUs) for (const cb of subscribers) cb(err);
    return err;
  });

  const ctx: GpuContext = {
    device,
    adapter: summary,
    limits,
    features,
    pool: new BufferPool(device, limits.maxBufferSize),
    pipelines: new PipelineCache(device),
    lost,
    get lostError() {
      return lostError;
    },
    onLost(cb) {
      subscribers.add(cb);
      return () => subscribers.delete(cb);
    },
    destroy() {
      destroyedByUs = true;
      ctx.pool.destroyAll();
      ctx.pipelines.clear();
      device.destroy();
    },
  };
  return ctx;
}

/** Throws the loss error if the device is gone, so callers fail with a clear message instead of a GPU validation error. */
export function assertAlive(ctx: GpuContext): void {
  if (ctx.lostError) throw ctx.lostError;
}

/**
 * Runs `fn` inside out-of-memory and validation error scopes, turning GPU errors into MoePruneErrors.
 * Use around allocations and pipeline creation, where these errors are expected and actionable; `what` starts
 * the message ("allocating the router buffer").
 */
export async function withErrorScopes<T>(device: GPUDevice, fn: () => T, what = 'GPU operation'): Promise<T> {
  // `fn` is synchronous and both scopes are popped before any await: error scopes are one stack per device, so
  // concurrent GPU work must never run between our push and our pop.
  device.pushErrorScope('out-of-memory');
  device.pushErrorScope('validation');
  let result: T;
  try {
    result = fn();
  } catch (e) {
    // Keep the scope stack balanced even when fn throws.
    void device.popErrorScope().catch(() => null);
    void device.popErrorScope().catch(() => null);
    if (e instanceof MoePruneError) throw e;
    throw new MoePruneError('GpuValidation', `${what} failed: ${(e as Error).message}`, undefined, { cause: e });
  }
  const popped = [device.popErrorScope(), device.popErrorScope()];
  const [validation, oom] = await Promise.all(popped);
  if (oom)
    throw new MoePruneError(
      'GpuOutOfMemory',
      `${what}: the GPU ran out of memory (${oom.message}); use a smaller chunk size or close other GPU programs`,
    );
  if (validation) throw new MoePruneError('GpuValidation', `${what}: ${validation.message}`);
  return result;
}
