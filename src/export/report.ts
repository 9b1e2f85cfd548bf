/** `prune-report.json` (machine-readable) and the `README.md` model card written beside a pruned checkpoint. */
import { formatBytes, formatCountRange } from '../core/format.ts';
import type { Catalogue } from '../models/catalogue.ts';
import { BASE_MODEL_TYPE_KEY, PER_LAYER_KEY } from '../models/families.ts';
import { describeExpertCriterion, expertCriterion, type ExpertPlan, type ExpertScoresReport } from '../prune/experts/plan.ts';
import type { TensorPlan } from './tensor-plan.ts';
import type { OwlReport, SparsityReport, StageTwoResult } from '../pipeline/unstructured.ts';

export interface PruneReport {
  readonly format: 'moe-prune-report';
  readonly version: 1;
  readonly tool: string;
  readonly method: string;
  /** How experts were chosen, as `moe-prune compare` names it (stun-router, output, reap, exhaustive, …). */
  readonly criterion: string;
  /** Saliency / exhaustive runs: each MoE layer's expert scores on its sequential input (why an expert went). */
  readonly expertScores?: Record<string, ExpertScoresReport>;
  /** ‖y − ŷ‖² / ‖y‖² of each MoE layer's block output on the calibration tokens, original vs pruned (when measured). */
  readonly reconstruction?: { readonly mean: number; readonly byLayer: Record<string, number> };
  readonly source: { family: string; architecture: string; layers: number; moeLayers: number[]; expertsPerLayer: number; topK: number; layout: string };
  /** Every option that shaped the result, defaults included. */
  readonly settings: Record<string, unknown>;
  /** Per MoE layer index: kept original expert indices, ascending (new index = position). */
  readonly keptExperts: Record<string, number[]>;
  /** Per MoE layer index: slots whose weights and router row are the mean of these originals (empty if none). */
  readonly mergedExperts: Record<string, Array<{ slot: number; members: number[] }>>;
  /** Per MoE layer index: every cluster's original members, and which slot its tokens now reach. */
  readonly clusters: Record<string, Array<{ members: number[]; slot: number; action: string }>>;
  readonly threshold: { mode: string; tau: number | null; exact: boolean | null; message: string | null };
  /** `after` is the count of every MoE layer, or the largest one in a per-layer variant (see `afterByLayer`). */
  readonly expertsPerLayer: { before: number; after: number; afterByLayer?: Record<string, number> };
  /**
   * 'stock': one expert count, loads in the stock classes. 'per-layer': layers keep different counts (global mode);
   * config.json lists them under PER_LAYER_KEY and only custom code loads it.
   */
  readonly variant: ExportVariant;
  /** `nonzeroAfter`: parameters after minus the weights stage 2 set to zero. */
  readonly params: { before: number; after: number; nonzeroAfter: number; routedExpertsBefore: number; routedExpertsAfter: number };
  readonly bytes: { before: number; after: number };
  readonly loadableBy: string[];
  /** Measured perplexity of the original model and of the plan applied on the fly (when an eval text was given). */
  readonly perplexity?: PrunePerplexity;
  /** Zero-shot multiple-choice accuracy of the original model and of the plan applied on the fly (when a task was given). */
  readonly accuracy?: PruneAccuracy;
  /** Stage 2 (unstructured masks), when it ran. */
  readonly sparsity?: SparsityReport;
  readonly owl?: OwlReport | null;
  /** Experts no calibration token reached in stage 2 (`model.layers.L.<block>.experts.E`, original indices), and what was done. */
  readonly unrouted?: StageTwoResult['unrouted'];
  /** The page's trade-off points measured before this export, and where the exported setting stands among them. */
  readonly tradeoff?: PruneTradeoff;
}

/** What stage 2 adds to the report. */
export type StageTwoReport = Pick<StageTwoResult, 'sparsity' | 'owl' | 'unrouted'>;

/** One setting of the trade-off explorer, with the columns of its CSV. */
export interface TradeoffRow {
  readonly expertsPerLayer: number;
  readonly expertSparsity: number;
  readonly unstructuredSparsity: number;
  readonly totalSparsity: number;
  readonly method: string;
  readonly similarity: string;
  readonly params: number;
  readonly nonzeroParams: number;
  /** Held-out perplexity; an estimate when `measured` is false, null when there is none. */
  readonly perplexity: number | null;
  readonly measured: boolean;
  /** Task accuracy (lm-eval acc / acc_norm) of the same plan and masks, when the setting was measured with a task. */
  readonly acc?: number;
  readonly acc_norm?: number;
}

export interface PruneTradeoff {
  /** The held-out text and windows the points were measured on. */
  readonly heldout: string;
  /** The task (and items) of the rows' accuracy, when some rows carry one. */
  readonly task?: string;
  readonly points: readonly TradeoffRow[];
  /** This checkpoint's setting as a row of the same table. */
  readonly exported: TradeoffRow;
}

export interface PrunePerplexity {
  readonly before: number;
  readonly after: number;
  /** Predicted tokens scored (windows × (seqLen − 1)). */
  readonly tokens: number;
  readonly seqLen: number;
  readonly windows: number;
}

/** acc / acc_norm as lm-evaluation-harness reports them (stderr null for a single item). */
export interface TaskScores {
  readonly acc: number;
  readonly acc_norm: number;
  readonly acc_stderr: number | null;
  readonly acc_norm_stderr: number | null;
}

export interface PruneAccuracy {
  readonly task: string;
  readonly format: string;
  readonly n: number;
  /** Most tokens the model read at once (longer items keep their last tokens). */
  readonly window: number;
  readonly before: TaskScores;
  readonly after: TaskScores;
}

export type ExportVariant = 'stock' | 'per-layer';

const byLayer = <T>(plan: ExpertPlan, f: (l: ExpertPlan['layers'][number]) => T): Record<string, T> =>
  Object.fromEntries(plan.layers.map((l) => [String(l.layer), f(l)]));

export function buildPruneReport(
  cat: Catalogue, plan: ExpertPlan, tensors: TensorPlan, settings: Record<string, unknown>, tool: string, perplexity?: PrunePerplexity, stage2?: StageTwoReport,
): PruneReport {
  const s = cat.summary;
  const counts = plan.layers.map((l) => l.kept.length);
  const variant: ExportVariant = new Set(counts).size > 1 ? 'per-layer' : 'stock';
  const after = counts.length ? Math.max(...counts) : s.expertsPerLayer;
  const removedSlots = plan.layers.reduce((n, l) => n + l.removed.length, 0);
  const search = plan.search;
  const choice = describeExpertCriterion(plan.settings);
  const rec = plan.reconstruction;
  return {
    format: 'moe-prune-report',
    version: 1,
    tool,
    method: stage2
      ? `expert pruning by ${choice}, then ${stage2.sparsity.method}${stage2.sparsity.nm ? ` ${stage2.sparsity.nm}` : ''} unstructured pruning (STUN; Lee et al., ACL 2025)`
      : `expert pruning by ${choice} (STUN stage 1; Lee et al., ACL 2025)`,
    criterion: expertCriterion(plan.settings),
    ...(plan.expertScores ? { expertScores: plan.expertScores } : {}),
    ...(rec ? { reconstruction: { mean: rec.length ? rec.reduce((a, l) => a + l.error, 0) / rec.length : 0, byLayer: Object.fromEntries(rec.map((l) => [String(l.layer), l.error])) } } : {}),
    source: { family: s.family, architecture: s.architecture, layers: s.layers, moeLayers: s.moeLayers, expertsPerLayer: s.expertsPerLayer, topK: s.topK, layout: s.layout },
    settings: { ...plan.settings, ...settings },
    keptExperts: byLayer(plan, (l) => [...l.kept]),
    mergedExperts: byLayer(plan, (l) => l.merges.map((m) => ({ slot: m.slot, members: [...m.members] }))),
    clusters: byLayer(plan, (l) => l.clusters.map((c) => ({ members: [...c.members], slot: c.slot, action: c.action }))),
    threshold: {
      mode: plan.settings.mode,
      tau: search ? search.tau : null,
      exact: search ? search.exact : null,
      message: search ? search.message : null,
    },
    expertsPerLayer: { before: s.expertsPerLayer, after, ...(variant === 'per-layer' ? { afterByLayer: byLayer(plan, (l) => l.kept.length) } : {}) },
    variant,
    params: {
      before: s.params.total,
      after: tensors.params,
      nonzeroAfter: tensors.params - (stage2?.sparsity.counts.zeros ?? 0),
      routedExpertsBefore: s.params.routedExperts,
      routedExpertsAfter: s.params.routedExperts - removedSlots * s.params.perExpert,
    },
    bytes: { before: s.tensorBytes, after: tensors.bytes },
    loadableBy: loadersOf(cat, variant),
    ...(perplexity ? { perplexity } : {}),
    ...(stage2 ? { sparsity: stage2.sparsity, owl: stage2.owl, unrouted: stage2.unrouted } : {}),
  };
}

const fmt = (n: number): string => n.toLocaleString('en-US');

/** Runtimes that load the export as they load the source: names, layout and config keys are the source's own. */
export function loadersOf(cat: Catalogue, variant: ExportVariant = 'stock'): string[] {
  const arch = cat.summary.architecture;
  if (variant === 'per-layer')
    return [
      `custom code only: build ${arch} (original model_type under "${BASE_MODEL_TYPE_KEY}") with each MoE layer's experts and router resized to ` +
        `config.json's "${PER_LAYER_KEY}"[layer], then load the weights; stock transformers and vLLM refuse its model_type`,
    ];
  return [
    cat.adapter.remoteCode
      ? `transformers with trust_remote_code=True (the checkpoint's own ${arch} code, as for the original)`
      : `transformers (AutoModelForCausalLM, stock ${arch} class)`,
    `vLLM (its ${arch} class; same tensor names and config keys as the original)`,
  ];
}

const pct = (x: number): string => `${(100 * x).toFixed(2)} %`;

function stageTwoSection(r: PruneReport): string {
  const sp = r.sparsity;
  if (!sp) return '';
  const kinds = Object.entries(sp.byKind)
    .map(([k, c]) => `| ${k} | ${fmt(c.params)} | ${fmt(c.removed)} | ${fmt(c.zeros)} | ${pct(c.achieved)} |`)
    .join('\n');
  const layers = Object.entries(sp.byLayer)
    .map(([l, v]) => `| ${l} | ${pct(v.target)} | ${pct(v.unstructured)} | ${pct(v.achieved)}${r.owl?.lod[l] !== undefined ? ` | ${r.owl.lod[l]!.toFixed(3)}` : ''} |`)
    .join('\n');
  const nm = sp.nm
    ? `The zeros follow a ${sp.nm} pattern in every row (${sp.nm.split(':')[0]} of each ${sp.nm.split(':')[1]} consecutive inputs).${
        sp.nm === '2:4' ? ' 2:4 is the pattern NVIDIA sparse tensor cores (Ampere and later) accelerate, e.g. through PyTorch semi-structured sparse tensors or runtimes with 2:4 kernels;' : ' Hardware accelerates 2:4 only;'
      } a runtime must be told to use it: loaded as usual, the weights run dense.`
    : 'Unstructured zeros run at dense speed in stock runtimes; they are a step towards sparse kernels or compression, not a speed-up by themselves.'
  return `
## Unstructured pruning (STUN stage 2)

${sp.method}${sp.nm ? ` ${sp.nm}` : ''} over the scope \`${sp.scope}\`: target ${sp.target === null ? '— (fixed by the pattern)' : pct(sp.target)}, achieved **${pct(sp.achieved)}**
(${pct(sp.expert)} of the scope removed with whole experts, then ${pct(sp.unstructured)} of the rest set to zero${r.owl ? ' on average; OWL spread it by layer' : ''}).
Pruned weights are stored as exact zeros in the original dtype and layout: **the files are as large as a dense
checkpoint of the same experts** — zeros stored densely do not make them smaller. ${nm}
${r.unrouted?.experts.length ? `\nExperts no calibration token reached (${r.unrouted.policy} policy): ${r.unrouted.experts.map((e) => `\`${e}\``).join(', ')}.\n` : ''}
| module kind | parameters before | removed with experts | zeroed | sparsity |
|---|---|---|---|---|
${kinds}

| layer | ratio applied | zeros in what remains | sparsity of the layer's scope${r.owl ? ' | OWL outlier % |' : ' |'}
|---|---|---|---|${r.owl ? '---|' : ''}
${layers}

`;
}

function accuracySection(r: PruneReport): string {
  const a = r.accuracy;
  if (!a) return '';
  const pct = (v: number, e: number | null) => `${(100 * v).toFixed(1)} %${e === null ? '' : ` ± ${(100 * e).toFixed(1)}`}`;
  return `## Measured task accuracy

| | acc | acc_norm |
|---|---|---|
| original | ${pct(a.before.acc, a.before.acc_stderr)} | ${pct(a.before.acc_norm, a.before.acc_norm_stderr)} |
| pruned | ${pct(a.after.acc, a.after.acc_stderr)} | ${pct(a.after.acc_norm, a.after.acc_norm_stderr)} |

Zero-shot multiple choice on ${fmt(a.n)} items of \`${a.task}\` (${a.format}), scored by MoE Prune Studio's own forward pass as
lm-evaluation-harness scores multiple choice (log-likelihood of each choice; acc_norm divides it by the choice's length in
characters; ± is the standard error), the pruning applied on the fly.

`;
}

function perplexitySection(r: PruneReport): string {
  const p = r.perplexity;
  if (!p) return '';
  return `## Measured perplexity

| | perplexity |
|---|---|
| original | ${p.before.toFixed(3)} |
| pruned | ${p.after.toFixed(3)} |

Measured by MoE Prune Studio's own forward pass on ${fmt(p.tokens)} predicted tokens (${p.windows} windows of ${p.seqLen} tokens), the pruning applied on the fly.

`;
}

/** "MoE Prune Studio (moe-prune prune)", or the page's own tool name as it is (it names the studio already). */
function madeWith(tool: string): string {
  return tool.startsWith('MoE Prune Studio') ? tool : `MoE Prune Studio (${tool})`;
}

function tradeoffSection(r: PruneReport): string {
  const t = r.tradeoff;
  if (!t) return '';
  const pct = (v: number): string => `${(100 * v).toFixed(1)} %`;
  const withAcc = t.task !== undefined && [...t.points, t.exported].some((p) => p.acc !== undefined);
  const acc = (p: TradeoffRow): string => (!withAcc ? '' : p.acc === undefined || p.acc_norm === undefined ? ' — |' : ` ${pct(p.acc)} / ${pct(p.acc_norm)} |`);
  const row = (p: TradeoffRow, mark: string): string =>
    `| ${Math.round(p.expertsPerLayer * 100) / 100} | ${pct(p.totalSparsity)} | ${pct(p.unstructuredSparsity)} | ${p.method} | ${fmt(p.nonzeroParams)} | ${
      p.perplexity === null ? '—' : `${p.perplexity.toFixed(3)}${p.measured ? '' : ' (estimate)'}`
    } |${acc(p)}${mark}`;
  return `## Size against quality (trade-off points measured before this export)

Held-out perplexity on ${t.heldout}${withAcc ? ` and zero-shot accuracy (acc / acc_norm) on ${t.task}` : ''}, each setting applied on the fly (nothing written); **this checkpoint** is marked.

| experts / layer | total sparsity | unstructured s_u | method | non-zero parameters | perplexity |${withAcc ? ' accuracy |' : ''} |
|---|---|---|---|---|---|${withAcc ? '---|' : ''}---|
${[...t.points.map((p) => row(p, ' |')), row(t.exported, ' **this checkpoint** |')].join('\n')}

`;
}

export function buildModelCard(cat: Catalogue, r: PruneReport): string {
  const layers = Object.entries(r.keptExperts)
    .map(([l, kept]) => {
      const merged = r.mergedExperts[l] ?? [];
      return `| ${l} | ${kept.join(', ')} | ${merged.length ? merged.map((m) => `slot ${m.slot} = mean(${m.members.join(', ')})`).join('; ') : '—'} |`;
    })
    .join('\n');
  const settings = Object.entries(r.settings)
    .map(([k, v]) => `| \`${k}\` | \`${JSON.stringify(v)}\` |`)
    .join('\n');
  return `---
tags: [moe, pruning, stun, expert-pruning]
base_model_architecture: ${r.source.architecture}
---

# Expert-pruned ${r.source.family} checkpoint
${
  r.variant === 'per-layer'
    ? `
> **Needs custom code.** MoE layers keep different numbers of experts (${Object.entries(r.expertsPerLayer.afterByLayer ?? {})
        .map(([l, n]) => `layer ${l}: ${n}`)
        .join(', ')}), listed in \`config.json\` as \`"${PER_LAYER_KEY}"\`; \`${cat.summary.expertCountField}\` holds the largest.
> Stock classes hold one count for every layer, so \`model_type\` is marked (the original is under \`${BASE_MODEL_TYPE_KEY}\`)
> and stock transformers and vLLM refuse to load it rather than re-initialise experts at random.
`
    : ''
}
Made with ${madeWith(r.tool)} by **${r.method}**. ${
  r.criterion.startsWith('stun-') || r.criterion === 'output'
    ? `Each MoE layer's experts were clustered; one representative per cluster was kept (the member closest to the cluster's parameter
centroid${Object.values(r.mergedExperts).some((m) => m.length) ? ', or the members\u2019 average where the reconstruction rule applied' : ''}),
the rest were removed with their router rows.`
    : 'The other experts were removed with their router rows.'
} Kept experts are renumbered 0..K\u22121 in their original order; every
other tensor is copied unchanged, in its original dtype and layout (${r.source.layout}).

| | before | after |
|---|---|---|
| routed experts per MoE layer | ${r.expertsPerLayer.before} | ${formatCountRange(Object.values(r.expertsPerLayer.afterByLayer ?? { all: r.expertsPerLayer.after }))} |
| experts per token (top-k) | ${r.source.topK} | ${r.source.topK} |
| parameters | ${fmt(r.params.before)} | ${fmt(r.params.after)} |
| routed-expert parameters | ${fmt(r.params.routedExpertsBefore)} | ${fmt(r.params.routedExpertsAfter)} |
| tensor bytes | ${formatBytes(r.bytes.before)} | ${formatBytes(r.bytes.after)} |

**Loads with:** ${r.loadableBy.join('; ')}. Only \`${cat.summary.expertCountField}\` changed in \`config.json\`${r.variant === 'per-layer' ? ` (and \`model_type\`, with \`${BASE_MODEL_TYPE_KEY}\` and \`${PER_LAYER_KEY}\` added)` : ''}.

${stageTwoSection(r)}${perplexitySection(r)}${accuracySection(r)}${tradeoffSection(r)}## Kept experts per MoE layer (original indices)

| layer | kept (new index = position) | merged slots |
|---|---|---|
${layers}

## Settings

| option | value |
|---|---|
${settings}

\`prune-report.json\` holds the same information in machine-readable form (clusters, thresholds, counts).
`;
}
