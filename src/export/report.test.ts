import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { openNodeFileSet } from '../cli/node-files.ts';
import { catalogueCheckpoint, type Catalogue } from '../models/catalogue.ts';
import { loadersOf } from './report.ts';

const MODELS = fileURLToPath(new URL('../../fixtures/models', import.meta.url));
const open = async (name: string): Promise<Catalogue> => catalogueCheckpoint(await openNodeFileSet(join(MODELS, name)));

describe('model card: which runtimes load the export', () => {
  it('names the stock transformers class for families transformers ships', async () => {
    const [transformers, vllm] = loadersOf(await open('mixtral'));
    expect(transformers).toBe('transformers (AutoModelForCausalLM, stock MixtralForCausalLM class)');
    expect(vllm).toMatch(/^vLLM \(its MixtralForCausalLM class/);
  });

  it('says Arctic needs its own modeling code (trust_remote_code), as the original does', async () => {
    const [transformers] = loadersOf(await open('arctic'));
    expect(transformers).toMatch(/trust_remote_code=True/);
    expect(transformers).not.toMatch(/stock/);
  });
});
