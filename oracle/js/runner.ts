import type { NodeGpuContext } from '../../src/cli/node-gpu.ts';

/**
 * The loop every one-process oracle driver shares: one GPU for all checkpoint folders, a folder that fails becomes
 * {"error"} so the others still report, and one JSON line {"adapter", "results": {"<dir>": ...}} on stdout.
 * node-gpu is imported lazily because the caller must register the WGSL loader before any kernel module loads.
 */
export async function runPerCheckpoint(dirs: readonly string[], each: (gpu: NodeGpuContext, dir: string) => Promise<unknown>): Promise<void> {
  const { closeNodeGpu, openNodeGpu } = await import('../../src/cli/node-gpu.ts');
  const gpu = await openNodeGpu();
  const results: Record<string, unknown> = {};
  try {
    for (const dir of dirs) {
      try {
        results[dir] = await each(gpu, dir);
      } catch (e) {
        results[dir] = { error: e instanceof Error ? e.message : String(e) };
      }
    }
  } finally {
    closeNodeGpu(gpu);
  }
  process.stdout.write(JSON.stringify({ adapter: gpu.adapter.label, results }) + '\n');
}
