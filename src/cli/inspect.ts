import { stat } from 'node:fs/promises';
import { MoePruneError } from '../core/errors.ts';
import { formatBytes, formatRanges } from '../core/format.ts';
import { MapFileSet, type FileSet } from '../formats/bytes.ts';
import { assertComplete, expertsPerLayerText, inspectCheckpoint } from '../models/catalogue.ts';
import { familyById } from '../models/families.ts';
import { describeSafetensorsFile, loneWeightsFile, type LoneFileSummary } from '../models/lone-file.ts';
import type { CheckpointSummary } from '../models/types.ts';
import { parseArgs } from './args.ts';
import { reportFailure, type CliIo } from './main.ts';
import { NodeFileSource, openNodeFileSet } from './node-files.ts';

const USAGE = 'usage: moe-prune inspect <checkpoint folder | .safetensors file> [--json]';

const int = (n: number): string => n.toLocaleString('en-US');

/** Two columns: label, value. */
const table = (rows: ReadonlyArray<readonly [string, string]>): string => {
  const w = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n') + '\n';
};


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
  return table(rows);
}

/** A lone .safetensors file: what its header says, the checks it passed, and why there is no family. */
export function formatLoneFile(path: string, d: LoneFileSummary): string {
  const head = table([
    ['file', path],
    ['format', `safetensors: ${int(d.tensorCount)} tensor(s), header ${formatBytes(d.headerBytes)}, ${formatBytes(d.tensorBytes)} of tensor data, ${formatBytes(d.bytesOnDisk)} on disk`],
    ['elements', `${int(d.elements)} in this file`],
    ['dtypes', Object.entries(d.dtypes).map(([k, n]) => `${k}×${n}`).join(', ') || 'none'],
    ['metadata', d.metadata ? Object.entries(d.metadata).map(([k, v]) => `${k}=${v}`).join(', ') || 'empty' : 'none'],
    ['check', `ok: ${d.checks.join('; ')}`],
    ['family', `unknown: ${d.needsConfig}`],
  ]);
  const rows = d.tensors.map((t) => [t.name, t.dtype, `[${t.shape.join(', ')}]`, int(t.bytes)] as const);
  const header = ['tensor', 'dtype', 'shape', 'bytes'] as const;
  const w = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: readonly string[]): string => r.map((c, i) => (i === 3 ? c.padStart(w[i]!) : c.padEnd(w[i]!))).join('  ').trimEnd();
  return `${head}\n${[header, ...rows].map(line).join('\n')}\n`;
}

/**
 * What to inspect: a folder, or a single file. A file of any name is taken (not only *.safetensors), so a PyTorch
 * .bin or a config.json given by mistake is called what it is instead of refused for its name.
 */
async function inspectTarget(path: string): Promise<FileSet> {
  const s = await stat(path).catch(() => undefined);
  if (s?.isFile() && !path.endsWith('.safetensors')) return new MapFileSet([await NodeFileSource.open(path)]);
  return openNodeFileSet(path);
}

/** `moe-prune inspect`: exit 0 when the checkpoint is complete (or a lone file's header is sound), 2 on bad input (one line on stderr), 1 on an internal failure. */
export async function runInspect(args: string[], io: CliIo): Promise<number> {
  try {
    const p = parseArgs(args, { values: [], flags: ['json', 'help'] }, USAGE);
    if (p.flags.has('help')) {
      io.stdout.write(`${USAGE}\n`);
      return 0;
    }
    const path = p.positional[0];
    if (!path || p.positional.length !== 1) throw new MoePruneError('InvalidArgument', USAGE);
    const files = await inspectTarget(path);
    const lone = loneWeightsFile(files);
    if (lone) {
      const d = await describeSafetensorsFile(lone);
      io.stdout.write(p.flags.has('json') ? `${JSON.stringify(d, null, 2)}\n` : formatLoneFile(path, d));
      return 0;
    }
    const summary = await inspectCheckpoint(files);
    io.stdout.write(p.flags.has('json') ? `${JSON.stringify(summary, null, 2)}\n` : formatSummary(path, summary));
    assertComplete(summary);
    return 0;
  } catch (e) {
    return reportFailure(e, io);
  }
}
