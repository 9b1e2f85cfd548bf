/**
 * Oracle bridge for oracle/tests/test_stun_clustering.py: reads {cases: [...]} JSON on stdin, plans each case
 * with src/prune/experts, prints {results: [...]} JSON. Infinity is written as the string "inf".
 *
 * case = { settings: Partial<ExpertPlanSettings>,
 *          layers: [{ layer, n, d, topK, routerRows: number[] (n*d), groups?, coactivation?: number[] (n*n) }],
 *          thetas?: number[][][] (per layer, per expert θ), chunkSize?: number }
 */
import { planExpertPruning, resolveRepresentatives, type ExpertLayerInput, type ExpertPlanSettings } from '../../src/prune/experts/plan.ts';
import { memoryParamSource } from '../../src/prune/experts/representative.ts';

interface CaseLayer {
  layer: number;
  n: number;
  d: number;
  topK: number;
  routerRows: number[];
  groups?: { nGroup: number; topkGroup: number };
  coactivation?: number[];
}
interface Case {
  settings: Partial<ExpertPlanSettings>;
  layers: CaseLayer[];
  thetas?: number[][][];
  chunkSize?: number;
}

async function readStdin(): Promise<string> {
  const parts: Buffer[] = [];
  for await (const c of process.stdin) parts.push(c as Buffer);
  return Buffer.concat(parts).toString('utf8');
}

async function runCase(c: Case): Promise<unknown> {
  try {
    const layers: ExpertLayerInput[] = c.layers.map((l) => ({
      layer: l.layer, n: l.n, d: l.d, topK: l.topK, routerRows: Float32Array.from(l.routerRows),
      ...(l.groups ? { groups: l.groups } : {}),
      ...(l.coactivation ? { coactivation: Float64Array.from(l.coactivation) } : {}),
    }));
    let plan = planExpertPruning(layers, c.settings);
    const thetas = c.thetas;
    if (thetas) {
      const sources = thetas.map((layer) => memoryParamSource(layer.map((t) => Float32Array.from(t)), c.chunkSize ?? 7));
      plan = await resolveRepresentatives(plan, (layer) => sources[c.layers.findIndex((l) => l.layer === layer)]!);
    }
    return {
      ok: true,
      totalKept: plan.totalKept,
      search: plan.search ?? null,
      layers: plan.layers.map((l) => ({
        layer: l.layer,
        clusters: l.clusters.map((k) => k.members),
        actions: l.clusters.map((k) => k.action),
        representatives: l.clusters.map((k) => k.representative),
        kept: l.kept,
        slotOf: [...l.slotOf],
      })),
    };
  } catch (e) {
    return { ok: false, error: e instanceof Error ? e.message : String(e) };
  }
}

const input = JSON.parse(await readStdin()) as { cases: Case[] };
const results = [];
for (const c of input.cases) results.push(await runCase(c));
process.stdout.write(JSON.stringify({ results }, (_k, v: unknown) => (v === Infinity ? 'inf' : v === -Infinity ? '-inf' : v)));
