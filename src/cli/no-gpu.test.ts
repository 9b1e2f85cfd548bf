import { afterEach, describe, expect, it, vi } from 'vitest';
import { MoePruneError } from '../core/errors.ts';
import { reportFailure } from './main.ts';
import { openCommandGpu } from './node-gpu.ts';
import { collectIo } from '../../tests/cli-io.ts';

// A host with no WebGPU adapter at all: no GPU driver is tried (forceSoftware) and the SwiftShader lookup is pointed
// at nothing (no candidates, MOE_PRUNE_VK_ICD unset), so openNodeGpu fails the way it does on such a machine, before
// Dawn is ever asked.
const NOWHERE = { forceSoftware: true, icdCandidates: [] } as const;

afterEach(() => {
  vi.unstubAllEnvs();
});

describe('the CLI without any WebGPU adapter', () => {
  it('says so in one line that names --cpu; no stack trace; exit 2', async () => {
    vi.stubEnv('MOE_PRUNE_VK_ICD', '');
    const io = collectIo();
    const e = await openCommandGpu(false, io.stderr, 'running the CPU reference forward pass', NOWHERE).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(MoePruneError);
    expect((e as MoePruneError).code).toBe('GpuUnavailable');
    expect(io.err()).toBe(''); // nothing announced before the failure

    expect(reportFailure(e, io)).toBe(2);
    const lines = io.err().split('\n');
    expect(lines).toHaveLength(2); // one line and its newline
    expect(lines[0]).toMatch(/^no WebGPU adapter found for Node: install a GPU driver .*apt-get install chromium.*; or run with --cpu \(running the CPU reference forward pass, slower, no GPU needed\) \[GpuUnavailable\]$/);
    expect(io.err()).not.toMatch(/\n\s+at |Error:/);
  });

  it('--cpu needs no adapter: the CPU path is announced and no GPU is opened', async () => {
    const io = collectIo();
    expect(await openCommandGpu(true, io.stderr, 'computing distances on the CPU', NOWHERE)).toBeUndefined();
    expect(io.err()).toBe('moe-prune: --cpu: computing distances on the CPU\n');
  });

  it('an unexpected failure is one line too, without its stack', () => {
    const io = collectIo();
    const e = new TypeError('adapter.requestDevice is not a function');
    expect(e.stack).toContain('\n    at ');
    expect(reportFailure(e, io)).toBe(1);
    expect(io.err()).toBe('adapter.requestDevice is not a function [IoError]\n');
  });
});
