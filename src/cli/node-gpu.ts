import { existsSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { dirname, join } from 'node:path';
import { MoePruneError } from '../core/errors.ts';
import { createDevice, type CreateDeviceOptions, type GpuContext } from '../gpu/device.ts';

/**
 * WebGPU in Node through the npm `webgpu` package (Dawn). Real drivers are tried first; without them we fall
 * back to SwiftShader, the software Vulkan driver that ships with Chromium.
 */

/** Where distributions put Chromium's SwiftShader Vulkan ICD manifest. */
export const SWIFTSHADER_ICD_CANDIDATES = [
  '/usr/lib/chromium/vk_swiftshader_icd.json', // Debian, Ubuntu (deb)
  '/usr/lib64/chromium-browser/vk_swiftshader_icd.json', // Fedora
  '/usr/lib/chromium-browser/vk_swiftshader_icd.json', // older Ubuntu, Arch
  '/opt/google/chrome/vk_swiftshader_icd.json', // Google Chrome
];

export interface NodeGpuOptions extends CreateDeviceOptions {
  /** Skip real drivers and use SwiftShader (reproducible tests). */
  readonly forceSoftware?: boolean;
  /** Path of a Vulkan ICD manifest to use for the software fallback. */
  readonly icdPath?: string;
  /** Replaces SWIFTSHADER_ICD_CANDIDATES (tests use it to simulate a host without Chromium). */
  readonly icdCandidates?: readonly string[];
}

export interface NodeGpuContext extends GpuContext {
  /** 'driver' when a real GPU driver answered, 'swiftshader' when the software fallback is in use. */
  readonly backend: 'driver' | 'swiftshader';
}

type WebGpuModule = { create(options: string[]): GPU; globals: object };

let webgpu: WebGpuModule | undefined;
const open = new Set<GpuContext>();
/** GPU objects from `create`; held so they outlive their devices, dropped on close so node can exit. */
const gpus = new Map<GpuContext, GPU>();

async function loadWebGpu(): Promise<WebGpuModule> {
  if (webgpu) return webgpu;
  try {
    webgpu = (await import('webgpu')) as unknown as WebGpuModule;
  } catch (e) {
    throw new MoePruneError('GpuUnavailable', `the npm package "webgpu" cannot be loaded (${(e as Error).message}); run npm install`, undefined, { cause: e });
  }
  // GPUBufferUsage, GPUMapMode and friends, which browser code expects as globals; never overwrite existing ones.
  for (const [k, v] of Object.entries(webgpu.globals)) if (!(k in globalThis)) Object.assign(globalThis, { [k]: v });
  return webgpu;
}

/** Linux hosts with no GPU device node cannot have a working hardware driver; skip the slow, noisy probe. */
function hardwareMayExist(): boolean {
  if (process.platform !== 'linux') return true;
  return existsSync('/dev/dri') || existsSync('/dev/nvidia0') || existsSync('/dev/dxg');
}

function findSwiftShaderIcd(opts: NodeGpuOptions): string | undefined {
  const fromEnv = process.env.MOE_PRUNE_VK_ICD;
  for (const p of [opts.icdPath, fromEnv, ...(opts.icdCandidates ?? SWIFTSHADER_ICD_CANDIDATES)]) if (p && existsSync(p)) return p;
  return undefined;
}

/**
 * Dawn loads the Vulkan loader (libvulkan.so.1) by name. Chromium bundles one next to its ICD, but the system
 * may not have it installed. Preload Chromium's copy under its soname so Dawn's later dlopen finds it; it is
 * not a Node addon, so process.dlopen throws "did not self-register" after loading — RTLD_NODELETE keeps it.
 */
function ensureVulkanLoader(icdDir: string): void {
  if (process.platform !== 'linux') return;
  const RTLD_NODELETE = 0x1000; // glibc value; not exported by os.constants
  const flags = osConstants.dlopen.RTLD_NOW! | osConstants.dlopen.RTLD_GLOBAL! | RTLD_NODELETE;
  const tryLoad = (lib: string): boolean => {
    try {
      process.dlopen({ exports: {} }, lib, flags);
      return true;
    } catch (e) {
      return /self-register/.test((e as Error).message);
    }
  };
  if (tryLoad('libvulkan.so.1')) return;
  const bundled = join(icdDir, 'libvulkan.so.1');
  if (existsSync(bundled)) tryLoad(bundled);
}

async function tryOpen(mod: WebGpuModule, opts: NodeGpuOptions): Promise<NodeGpuContext | undefined> {
  const gpu = mod.create([]);
  try {
    const ctx = await createDevice(gpu, opts);
    const soft = /swiftshader/i.test(`${ctx.adapter.architecture} ${ctx.adapter.description}`);
    const nctx = Object.assign(ctx, { backend: soft ? 'swiftshader' : 'driver' }) as NodeGpuContext;
    gpus.set(nctx, gpu);
    open.add(nctx);
    return nctx;
  } catch (e) {
    if (e instanceof MoePruneError && e.code === 'GpuUnavailable') return undefined;
    throw e;
  }
}

/**
 * Opens a WebGPU device in Node. Tries real drivers, then Chromium's SwiftShader. `ctx.adapter.label`
 * says which adapter is in use; print it. Throws GpuUnavailable naming what to install when neither works.
 */
export async function openNodeGpu(opts: NodeGpuOptions = {}): Promise<NodeGpuContext> {
  process.env.XDG_RUNTIME_DIR ??= '/tmp'; // silences a harmless Dawn warning on headless hosts
  const mod = await loadWebGpu();
  const userIcd = process.env.VK_ICD_FILENAMES ?? process.env.VK_DRIVER_FILES;

  if (!opts.forceSoftware && (userIcd || hardwareMayExist())) {
    if (userIcd) ensureVulkanLoader(dirname(userIcd.split(':')[0]!));
    const ctx = await tryOpen(mod, opts);
    if (ctx) return ctx;
  }

  const icd = findSwiftShaderIcd(opts);
  if (icd) {
    // The Vulkan loader reads these when Dawn creates its instance, i.e. at the next create().
    process.env.VK_ICD_FILENAMES = icd;
    process.env.VK_DRIVER_FILES = icd;
    ensureVulkanLoader(dirname(icd));
    const ctx = await tryOpen(mod, opts);
    if (ctx) return ctx;
  }

  throw new MoePruneError(
    'GpuUnavailable',
    'no WebGPU adapter found for Node: install a GPU driver with Vulkan support (e.g. the vendor driver plus libvulkan1), ' +
      'or install Chromium (Debian/Ubuntu: apt-get install chromium) to use its SwiftShader software renderer' +
      (icd ? ` (SwiftShader at ${icd} was tried and failed)` : '; set MOE_PRUNE_VK_ICD to a vk_swiftshader_icd.json if Chromium is installed elsewhere'),
  );
}

/**
 * True for an adapter that computes on this machine's CPU (SwiftShader, Mesa's llvmpipe/lavapipe): work it would do
 * is done faster by the CPU kernels directly, without copying every input up first.
 */
/** What tells a software adapter: its summary, and the backend when openNodeGpu chose it. */
export type AdapterKind = Pick<GpuContext, 'adapter'> & { readonly backend?: NodeGpuContext['backend'] };

export function isSoftwareAdapter(gpu: AdapterKind): boolean {
  const a = gpu.adapter;
  return gpu.backend === 'swiftshader' || a.isFallbackAdapter || /swiftshader|llvmpipe|lavapipe/i.test(`${a.vendor} ${a.architecture} ${a.description}`);
}

/** Destroys the device and drops every reference to the Dawn instance so the process can exit. */
export function closeNodeGpu(ctx: GpuContext): void {
  if (!open.delete(ctx)) return;
  ctx.destroy();
  gpus.delete(ctx);
}

/**
 * The GPU of a CLI command, or undefined under `--cpu`; either way the choice is announced on stderr. Without any
 * adapter the command stops with one line that says so and names `--cpu` (the same work on the CPU, slower), rather
 * than falling back silently: a long prune the user expected on the GPU should not quietly take hours.
 * `options` reach openNodeGpu (tests point the adapter lookup at nothing with them).
 */
export async function openCommandGpu(cpu: boolean, stderr: { write(s: string): unknown }, cpuNote: string, options: NodeGpuOptions = {}): Promise<NodeGpuContext | undefined> {
  if (cpu) {
    stderr.write(`moe-prune: --cpu: ${cpuNote}\n`);
    return undefined;
  }
  let gpu: NodeGpuContext;
  try {
    gpu = await openNodeGpu(options);
  } catch (e) {
    if (e instanceof MoePruneError && e.code === 'GpuUnavailable')
      throw new MoePruneError('GpuUnavailable', `${e.detail}; or run with --cpu (${cpuNote}, slower, no GPU needed)`, e.file, { cause: e });
    throw e;
  }
  stderr.write(`moe-prune: using WebGPU adapter ${gpu.adapter.label}\n`);
  return gpu;
}
