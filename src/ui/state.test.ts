import { readFileSync } from 'node:fs';
import { beforeEach, describe, expect, it } from 'vitest';
import { MoePruneError } from '../core/errors.ts';
import { dismissError, loadPicked, showError, useApp } from './state.ts';

// The page's drop path and banners without a browser: File is Node's, the weight store is never touched (a lone file
// is neither stored nor remembered), and the state is read straight from the store the components render.

const SHARD = new URL('../../fixtures/models/mixtral/model-00002-of-00003.safetensors', import.meta.url);

beforeEach(() => {
  for (const b of useApp.getState().errors) dismissError(b.id);
  useApp.setState({ current: null });
});

describe('a lone shard dropped on the page', () => {
  it('is listed from its header, with no family and no error', async () => {
    const bytes = new Uint8Array(readFileSync(SHARD));
    await loadPicked([{ file: new File([bytes], 'model-00002-of-00003.safetensors'), path: '' }]);
    const cur = useApp.getState().current!;
    expect(useApp.getState().errors).toEqual([]);
    expect(cur.summary).toBeNull();
    expect(cur.inspecting).toBe(false);
    expect(cur.name).toBe('model-00002-of-00003.safetensors');
    expect(cur.lone).toMatchObject({ kind: 'safetensors-file', file: 'model-00002-of-00003.safetensors', bytesOnDisk: bytes.byteLength, metadata: { format: 'pt' } });
    expect(cur.lone!.needsConfig).toMatch(/family.*config\.json/);
    expect(cur.lone!.tensors.length).toBe(cur.lone!.tensorCount);
  });

  it('a file that is not safetensors: a banner in plain words, without the code in brackets', async () => {
    const zip = new Uint8Array([0x50, 0x4b, 0x03, 0x04, 0x14, 0x00, 0x00, 0x00, 0x08, 0x00, 1, 2, 3]);
    await loadPicked([{ file: new File([zip], 'pytorch_model.bin'), path: '' }]);
    expect(useApp.getState().errors.map((b) => [b.code, b.message])).toEqual([
      ['NotSafetensors', 'pytorch_model.bin: not a safetensors file: it is a zip archive (PyTorch saves .bin and .pt checkpoints as one); convert the checkpoint to safetensors first'],
    ]);
    expect(useApp.getState().current?.lone).toBeNull();
  });
});

describe('banners', () => {
  it('name the file and the rule; the code is kept beside the text, not in it', () => {
    showError(new MoePruneError('InvalidConfig', 'num_local_experts must be a positive integer', 'config.json'));
    expect(useApp.getState().errors.map((b) => [b.code, b.message])).toEqual([['InvalidConfig', 'config.json: num_local_experts must be a positive integer']]);
  });
});
