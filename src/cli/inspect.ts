import { MoePruneError } from '../core/errors.ts';
import { formatBytes, formatRanges } from '../core/format.ts';
import { assertComplete, expertsPerLayerText, inspectCheckpoint } from '../models/catalogue.ts';
import { familyById } from '../models/families.ts';
import type { CheckpointSummary } from '../models/types.ts';
import { parseArgs } from './args.ts';
import { reportFailure, type CliIo } from './main.ts';
import { openNodeFileSet } from './node-files.ts';

const USAGE = 'usage: moe-prune inspect <checkpoint folder | .safetensors file> [--json]';

const int = (n: number): string => n.toLocaleString('en-US');


function routingText(s: CheckpointSummary): string {
  const r = s.routing;
  const parts = [`${r.scoring} → top-${s.topK}`, r.normTopkProb ? 'renormalised' : 'not renormalised'];
  if (r.groups) parts.push(`groups ${r.groups.topkGroup} of ${r.groups.nGroup}`);
  if (r.routedScalingFactor !== undefined) parts.push(`× ${r.routedScalingFactor}`);
  if (r.correctionBias) parts.push('correction bias');
  return parts.join(', ');
}

function listProblems(label: string, names: readonly string[]): string {
  return `${names.length} ${label}: ${names.slice(0, 3).join(', ')}${names.length > 3 ? ', …' : ''}`;
}

/** The human-readable summary: a two-column table. */
export function formatSummary(path: string, s: CheckpointSummary): string {
  const pct = s.params.total ? ` (${((100 * s.params.routedExperts) / s.params.total).toFixed(1)}%)` : '';
  const problems = [
    ...(s.missingTensors.length ? [listProblems('missing tensor(s)', s.missingTensors)] : []),
    ...(s.extraTensors.length ? [listProblems('unexpected tensor(s)', s.extraTensors)] : []),
  ];
  const rows: Array<[string, string]> = [
    ['checkpoint', path],
    ['family', `${familyById(s.family).label} (${s.architecture}, model_type ${s.modelType})`],
    ['layers', `${s.layers}: MoE ${formatRanges(s.moeLayers)}; dense ${formatRanges(s.denseLayers)}`],
    [
      'experts',
      s.expertsByLayer
        ? `${expertsPerLayerText(s)} (${Object.entries(s.expertsByLayer).map(([l, n]) => `layer ${l}: ${n}`).join(', ')}; a per-layer variant, ${s.expertCountField} holds the largest), ${s.layout} layout`
        : `${s.expertsPerLayer} per MoE layer (${s.expertCountField}), ${s.layout} layout`,
    ],
    ['routing', routingText(s)],
    ['shared', s.sharedExperts ? `${s.sharedExperts.count} shared expert(s), width ${s.sharedExperts.intermediateSize}` : 'none'],
    ['sizes', `hidden ${s.hiddenSize}, expert FFN ${s.expertIntermediateSize}, vocab ${s.vocabSize}`],
    ['parameters', `${int(s.params.total)} total; routed experts ${int(s.params.routedExperts)}${pct}, ${int(s.params.perExpert)} per expert`],
    ['files', `${s.shards.length} shard(s), ${formatBytes(s.bytesOnDisk)} on disk, ${formatBytes(s.tensorBytes)} of tensors`],
    ['dtypes', Object.entries(s.dtypes).map(([d, n]) => `${d}×${n}`).join(', ')],
    ['quantization', s.quantization ?? 'none'],
    ['check', problems.length ? problems.join('; ') : 'ok: every tensor the config implies is present'],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n') + '\n';
}

/** `moe-prune inspect`: exit 0 when the checkpoint is complete, 2 on bad input (one line on stderr), 1 on an internal failure. */
export async function runInspect(args: string[], io: CliIo): Promise<number> {
  try {
    const p = parseArgs(args, { values: [], flags: ['json', 'help'] }, USAGE);
    if (p.flags.has('help')) {
      io.stdout.write(`${USAGE}\n`);
      return 0;
    }
    const path = p.positional[0];
    if (!path || p.positional.length !== 1) throw new MoePruneError('InvalidArgument', USAGE);
    const summary = await inspectCheckpoint(await openNodeFileSet(path));
    io.stdout.write(p.flags.has('json') ? `${JSON.stringify(summary, null, 2)}\n` : formatSummary(path, summary));
    assertComplete(summary);
    return 0;
  } catch (e) {
    return reportFailure(e, io);
  }
}
