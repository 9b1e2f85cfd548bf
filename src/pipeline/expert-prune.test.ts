import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { openNodeFileSet } from '../cli/node-files.ts';
import type { OutputFolder } from '../export/write-checkpoint.ts';
import { MapFileSet, MemorySource } from '../formats/bytes.ts';
import { MemorySink } from '../formats/safetensors/writer.ts';
import { catalogueCheckpoint } from '../models/catalogue.ts';
import { expertPlanEdits, referencePlan } from '../forward/plan.ts';
import { perplexity, referenceNll } from '../eval/perplexity.ts';
import { openReferenceModel } from '../forward/reference/forward.ts';
import { exportExpertPruned, runStageOne } from './expert-prune.ts';

const MODELS = fileURLToPath(new URL('../../fixtures/models', import.meta.url));

class MemoryFolder implements OutputFolder {
  readonly files = new Map<string, MemorySink>();
  state: 'open' | 'committed' | 'aborted' = 'open';
  async create(name: string): Promise<MemorySink> {
    const s = new MemorySink();
    this.files.set(name, s);
    return s;
  }
  async commit(): Promise<void> {
    this.state = 'committed';
  }
  async abort(): Promise<void> {
    this.state = 'aborted';
  }
  text(name: string): string {
    return new TextDecoder().decode(this.files.get(name)!.bytes());
  }
}

async function open(name: string) {
  const files = await openNodeFileSet(join(MODELS, name));
  return { files, cat: await catalogueCheckpoint(files) };
}

describe('exportExpertPruned', () => {
  it('uniform plan: report, byte-preserving config patch and model card agree with the plan', async () => {
    const { files, cat } = await open('deepseek_v3');
    const stage = await runStageOne(cat, { keepPerLayer: 4 }, undefined);
    const out = new MemoryFolder();
    const r = await exportExpertPruned(cat, files, stage.plan, out, { tool: 'test', settings: { flag: 'x' } });
    expect(out.state).toBe('committed');
    expect(r.report.keptExperts).toEqual(Object.fromEntries(stage.plan.layers.map((l) => [String(l.layer), [...l.kept]])));
    expect(r.report.settings).toMatchObject({ keepPerLayer: 4, reconstruct: 'none', flag: 'x' });
    expect(r.report.expertsPerLayer).toEqual({ before: 8, after: 4 });
    // 2 MoE layers × 4 removed experts × (3 × 16 × 32 params + a 32-wide router row); the correction bias is not a parameter.
    expect(r.report.params.before - r.report.params.after).toBe(2 * 4 * (3 * 16 * 32 + 32));
    const input = readFileSync(join(MODELS, 'deepseek_v3', 'config.json'), 'utf8');
    expect(out.text('config.json')).toBe(input.replace(/"n_routed_experts": 8/, '"n_routed_experts": 4'));
    expect(out.text('config.json')).not.toBe(input);
    expect(JSON.parse(out.text('prune-report.json'))).toEqual(r.report);
    expect(out.text('README.md')).toMatch(/\| routed experts per MoE layer \| 8 \| 4 \|/);
    expect(out.text('README.md')).toContain('Only `n_routed_experts` changed in `config.json`.');
  });

  it('a plan with different counts per layer is refused before anything is written', async () => {
    const { files, cat } = await open('mixtral');
    const stage = await runStageOne(cat, { mode: 'global', targetTotal: 5 }, undefined);
    expect(stage.plan.layers.map((l) => l.kept.length).sort()).toEqual([2, 3]);
    const out = new MemoryFolder();
    await expect(exportExpertPruned(cat, files, stage.plan, out, { tool: 'test', settings: {} })).rejects.toMatchObject({
      code: 'InvalidPlan',
      message: expect.stringMatching(/keeps 2–3 experts in different layers.*Use uniform mode.*or export a per-layer variant.*--per-layer-variant/),
    });
    expect(out.state).toBe('aborted');
    expect(out.files.size).toBe(0);
  });

  it('on request, the same plan is a per-layer variant that no stock runtime loads by accident, and our catalogue reads it', async () => {
    const { files, cat } = await open('mixtral');
    const stage = await runStageOne(cat, { mode: 'global', targetTotal: 5 }, undefined);
    const out = new MemoryFolder();
    const r = await exportExpertPruned(cat, files, stage.plan, out, { tool: 'test', settings: {}, perLayerVariant: true });
    expect(out.state).toBe('committed');
    const byLayer = Object.fromEntries(stage.plan.layers.map((l) => [String(l.layer), l.kept.length]));
    expect(r.report.variant).toBe('per-layer');
    expect(r.report.expertsPerLayer).toEqual({ before: 4, after: 3, afterByLayer: byLayer });
    expect(r.report.loadableBy).toEqual([expect.stringMatching(/^custom code only/)]);
    const input = readFileSync(join(MODELS, 'mixtral', 'config.json'), 'utf8');
    const config = out.text('config.json');
    expect(config).toBe(
      input
        .replace('"num_local_experts": 4', '"num_local_experts": 3')
        .replace('"model_type": "mixtral"', '"model_type": "mixtral_per_layer_experts"')
        .replace(/\n}\s*$/, `,\n  "moe_prune_base_model_type": "mixtral",\n  "moe_prune_experts_per_layer": ${JSON.stringify(byLayer)}\n}\n`),
    );
    expect(out.text('README.md')).toMatch(/Needs custom code/);
    // Re-imported: the catalogue takes each layer's count from the config.
    const exported = new MapFileSet([...out.files].map(([name, sink]) => new MemorySource(name, sink.bytes() as Uint8Array<ArrayBuffer>)));
    const again = await catalogueCheckpoint(exported);
    expect(again.summary.expertsByLayer).toEqual(byLayer);
    expect(again.summary.missingTensors).toEqual([]);
    expect(again.moeLayers.map((l) => l.experts)).toEqual(stage.plan.layers.map((l) => l.kept.length));
    // Our forward pass runs the variant itself exactly like the plan applied on the fly to the original.
    const windows = [Int32Array.from([1, 17, 42, 5, 99, 23, 64, 8]), Int32Array.from([3, 77, 120, 56, 11, 90, 31, 2])];
    const onVariant = await perplexity(windows, referenceNll(await openReferenceModel(exported)));
    const planned = referencePlan(await openReferenceModel(files), expertPlanEdits(stage.plan.layers));
    const onTheFly = await perplexity(windows, referenceNll(planned.model, { removedExperts: planned.removedExperts }));
    expect(Math.abs(onVariant.perplexity - onTheFly.perplexity) / onTheFly.perplexity).toBeLessThan(1e-6);
    // Pruning the variant again is refused: its per-layer keys would describe the old counts.
    await expect(runStageOne(again, { keepPerLayer: 2 }, undefined)).rejects.toMatchObject({ code: 'InvalidPlan', message: expect.stringMatching(/per-layer variant.*prune the original/) });
  });
});
