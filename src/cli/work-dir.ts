/**
 * `moe-prune prune --work-dir D`: a folder where a long stage-2 run keeps its progress (OWL's scores, then after
 * every decoder layer its masks and the hidden states entering the next layer), so a crash, a kill or a lost GPU
 * costs at most the layer in progress. The folder belongs to one job (its fingerprint); another job is refused.
 * Files are written to a temporary name and renamed, and job.json — which says what is complete — is written last.
 */
import { mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MoePruneError } from '../core/errors.ts';
import type { SavedLayer, SavedStageTwo, StageTwoProgressStore } from '../pipeline/unstructured.ts';
import type { OwlReport } from '../pipeline/unstructured.ts';

const JOB = 'job.json';

interface JobFile {
  readonly format: 'moe-prune-work';
  readonly version: 1;
  readonly fingerprint: string;
  owl: OwlReport | null;
  layers: Array<Omit<SavedLayer, 'masks'> & { masks: string }>;
  hidden: string | null;
}

async function writeAtomic(path: string, data: Uint8Array | string): Promise<void> {
  await writeFile(`${path}.tmp`, data);
  await rename(`${path}.tmp`, path);
}

/** Masks as one file: a u32 length, a JSON list of [name, words], then every mask's words in that order. */
function packMasks(masks: ReadonlyMap<string, Uint32Array>): Uint8Array {
  const index = new TextEncoder().encode(JSON.stringify([...masks].map(([n, b]) => [n, b.length])));
  const words = [...masks.values()].reduce((a, b) => a + b.length, 0);
  const pad = (4 - ((4 + index.length) % 4)) % 4;
  const out = new Uint8Array(4 + index.length + pad + words * 4);
  new DataView(out.buffer).setUint32(0, index.length, true);
  out.set(index, 4);
  let off = 4 + index.length + pad;
  for (const b of masks.values()) {
    out.set(new Uint8Array(b.buffer, b.byteOffset, b.byteLength), off);
    off += b.byteLength;
  }
  return out;
}

function unpackMasks(bytes: Uint8Array, file: string): Map<string, Uint32Array> {
  const n = new DataView(bytes.buffer, bytes.byteOffset).getUint32(0, true);
  const index = JSON.parse(new TextDecoder().decode(bytes.subarray(4, 4 + n))) as Array<[string, number]>;
  let off = 4 + n + ((4 - ((4 + n) % 4)) % 4);
  const out = new Map<string, Uint32Array>();
  for (const [name, words] of index) {
    if (off + words * 4 > bytes.length) throw new MoePruneError('TruncatedFile', 'the saved masks are shorter than their index says', file);
    out.set(name, new Uint32Array(bytes.slice(off, off + words * 4).buffer));
    off += words * 4;
  }
  return out;
}

export class NodeWorkDir implements StageTwoProgressStore {
  private job: JobFile | null = null;

  private constructor(
    readonly dir: string,
    private readonly fingerprint: string,
  ) {}

  /** Opens (or starts) the work folder of a job; a folder holding another job's progress is refused. */
  static async open(dir: string, fingerprint: string): Promise<NodeWorkDir> {
    await mkdir(dir, { recursive: true });
    const w = new NodeWorkDir(dir, fingerprint);
    let text: string | null = null;
    try {
      text = await readFile(join(dir, JOB), 'utf8');
    } catch {
      const stray = (await readdir(dir)).filter((f) => !f.endsWith('.tmp'));
      if (stray.length) throw new MoePruneError('InvalidArgument', `the work folder is not empty and holds no moe-prune job (${stray.slice(0, 3).join(', ')}); use an empty folder`, dir);
    }
    if (text !== null) {
      let j: JobFile;
      try {
        j = JSON.parse(text) as JobFile;
      } catch {
        throw new MoePruneError('InvalidArgument', `${JOB} is not valid JSON; delete the work folder to start again`, dir);
      }
      if (j.format !== 'moe-prune-work' || j.version !== 1) throw new MoePruneError('InvalidArgument', `${JOB} is not a moe-prune work file`, dir);
      if (j.fingerprint !== fingerprint)
        throw new MoePruneError(
          'InvalidArgument',
          'the work folder holds a different job (the checkpoint files, the settings or the calibration text changed); use another --work-dir, or delete this one to start again',
          dir,
        );
      w.job = j;
    }
    return w;
  }

  /** Layers already saved (0 for a fresh folder). */
  get savedLayers(): number {
    return this.job?.layers.length ?? 0;
  }

  async load(): Promise<SavedStageTwo | null> {
    const j = this.job;
    if (!j) return null;
    const layers: SavedLayer[] = [];
    for (const l of j.layers) layers.push({ ...l, masks: unpackMasks(new Uint8Array(await readFile(join(this.dir, l.masks))), join(this.dir, l.masks)) });
    const hidden = j.hidden ? new Float32Array(new Uint8Array(await readFile(join(this.dir, j.hidden))).buffer) : null;
    return { owl: j.owl, layers, hidden };
  }

  private fresh(): JobFile {
    return (this.job ??= { format: 'moe-prune-work', version: 1, fingerprint: this.fingerprint, owl: null, layers: [], hidden: null });
  }

  async saveOwl(owl: OwlReport): Promise<void> {
    const j = this.fresh();
    j.owl = owl;
    await writeAtomic(join(this.dir, JOB), JSON.stringify(j, null, 1));
  }

  async saveLayer(layer: SavedLayer, hidden: Float32Array): Promise<void> {
    const j = this.fresh();
    const masksFile = `masks-${layer.layer}.bin`;
    const hiddenFile = `hidden-${layer.layer}.f32`;
    await writeAtomic(join(this.dir, masksFile), packMasks(layer.masks));
    await writeAtomic(join(this.dir, hiddenFile), new Uint8Array(hidden.buffer, hidden.byteOffset, hidden.byteLength));
    const old = j.hidden;
    const { masks: _m, ...rest } = layer;
    j.layers = [...j.layers.filter((l) => l.layer !== layer.layer), { ...rest, masks: masksFile }];
    j.hidden = hiddenFile;
    await writeAtomic(join(this.dir, JOB), JSON.stringify(j, null, 1));
    // Only the newest hidden states are needed to resume.
    if (old && old !== hiddenFile) await rm(join(this.dir, old), { force: true });
  }
}
