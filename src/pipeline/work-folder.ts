/**
 * A long stage-2 run's progress in a folder (OWL's scores, then after every decoder layer its masks and the hidden
 * states entering the next layer), so a crash, a reload or a lost GPU costs at most the layer in progress. One format
 * for every place a folder can live: the CLI's `--work-dir` (a folder on disk) and the page's origin-private folder
 * (OPFS) are two `WorkFolder` backends of the same `StageTwoWork`. The folder belongs to one job (its fingerprint).
 * Every file is replaced whole, and job.json — which says what is complete — is written last.
 */
import { MoePruneError } from '../core/errors.ts';
import type { OwlReport, SavedLayer, SavedStageTwo, StageTwoProgressStore } from './unstructured.ts';

/** The few file operations the work format needs; `write` replaces a file whole (a crash leaves the old or the new bytes). */
export interface WorkFolder {
  /** The folder as messages name it. */
  readonly where: string;
  /** A file's bytes, or null when there is no such file. */
  read(name: string): Promise<Uint8Array | null>;
  write(name: string, data: Uint8Array): Promise<void>;
  remove(name: string): Promise<void>;
  /** Names of the files in the folder (temporary files of an unfinished write left out). */
  list(): Promise<string[]>;
}

const JOB = 'job.json';

/** What a saved job was, for a person deciding whether to resume it (the page's notice, the CLI's message). */
export interface WorkAbout {
  /** The checkpoint's name. */
  readonly model: string;
  /** Decoder layers of the run: it is complete once that many are saved. */
  readonly layers: number;
  /** Its settings in a few words. */
  readonly settings: string;
}

interface JobFile {
  readonly format: 'moe-prune-work';
  readonly version: 1;
  readonly fingerprint: string;
  readonly about?: WorkAbout;
  owl: OwlReport | null;
  layers: Array<Omit<SavedLayer, 'masks'> & { masks: string }>;
  hidden: string | null;
}

/** A saved job as found, before deciding to resume it. */
export interface SavedWork {
  readonly fingerprint: string;
  readonly about: WorkAbout | null;
  /** Decoder layers finished and saved. */
  readonly layers: number;
  /** Whether every layer of the run is saved (known only with `about`). */
  readonly complete: boolean;
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

async function readJob(folder: WorkFolder): Promise<JobFile | null> {
  const bytes = await folder.read(JOB);
  // Empty: the first job.json being written when the run stopped (a browser's folder shows a new file before its
  // bytes); nothing was recorded yet.
  if (!bytes?.length) return null;
  let j: JobFile;
  try {
    j = JSON.parse(new TextDecoder().decode(bytes)) as JobFile;
  } catch {
    throw new MoePruneError('InvalidArgument', `${JOB} is not valid JSON; delete the work folder to start again`, folder.where);
  }
  if (j.format !== 'moe-prune-work' || j.version !== 1) throw new MoePruneError('InvalidArgument', `${JOB} is not a moe-prune work file`, folder.where);
  return j;
}

export class StageTwoWork implements StageTwoProgressStore {
  private constructor(
    readonly folder: WorkFolder,
    private readonly fingerprint: string,
    private readonly about: WorkAbout | undefined,
    private job: JobFile | null,
  ) {}

  /** The job saved in a folder, if any (whichever job it is). */
  static async peek(folder: WorkFolder): Promise<SavedWork | null> {
    const j = await readJob(folder);
    if (!j) return null;
    const about = j.about ?? null;
    return { fingerprint: j.fingerprint, about, layers: j.layers.length, complete: about !== null && j.layers.length >= about.layers };
  }

  /**
   * Opens (or starts) the work folder of a job. A folder holding another job's progress is refused (`hint` says what
   * to do instead), and so is a folder holding files of no job at all.
   */
  static async open(folder: WorkFolder, fingerprint: string, opts: { about?: WorkAbout; hint?: string } = {}): Promise<StageTwoWork> {
    const j = await readJob(folder);
    if (!j) {
      const stray = await folder.list();
      if (stray.length) throw new MoePruneError('InvalidArgument', `the work folder is not empty and holds no moe-prune job (${stray.slice(0, 3).join(', ')}); use an empty folder`, folder.where);
    } else if (j.fingerprint !== fingerprint)
      throw new MoePruneError(
        'InvalidArgument',
        `the work folder holds a different job (the checkpoint files, the settings or the calibration text changed)${opts.hint ? `; ${opts.hint}` : ''}`,
        folder.where,
      );
    return new StageTwoWork(folder, fingerprint, opts.about, j);
  }

  /** Removes every file of the folder's job (the folder itself stays). */
  static async clear(folder: WorkFolder): Promise<void> {
    // job.json first: a clear cut short leaves files of no job, never a job missing its files.
    await folder.remove(JOB);
    for (const f of await folder.list()) await folder.remove(f);
  }

  /** Layers already saved (0 for a fresh folder). */
  get savedLayers(): number {
    return this.job?.layers.length ?? 0;
  }

  /** What the saved job says about itself (null for a fresh folder or a job saved without it). */
  get saved(): SavedWork | null {
    const j = this.job;
    if (!j) return null;
    const about = j.about ?? null;
    return { fingerprint: j.fingerprint, about, layers: j.layers.length, complete: about !== null && j.layers.length >= about.layers };
  }

  async load(): Promise<SavedStageTwo | null> {
    const j = this.job;
    if (!j) return null;
    const need = async (name: string): Promise<Uint8Array> => {
      const b = await this.folder.read(name);
      if (!b) throw new MoePruneError('MissingFile', `${JOB} names ${name}, which is gone; delete the work folder to start again`, this.folder.where);
      return b;
    };
    const layers: SavedLayer[] = [];
    for (const l of j.layers) layers.push({ ...l, masks: unpackMasks(await need(l.masks), `${this.folder.where}/${l.masks}`) });
    const hidden = j.hidden ? new Float32Array((await need(j.hidden)).slice().buffer) : null;
    return { owl: j.owl, layers, hidden };
  }

  private fresh(): JobFile {
    return (this.job ??= {
      format: 'moe-prune-work', version: 1, fingerprint: this.fingerprint, ...(this.about ? { about: this.about } : {}), owl: null, layers: [], hidden: null,
    });
  }

  private writeJob(j: JobFile): Promise<void> {
    return this.folder.write(JOB, new TextEncoder().encode(JSON.stringify(j, null, 1)));
  }

  async saveOwl(owl: OwlReport): Promise<void> {
    const j = this.fresh();
    j.owl = owl;
    await this.writeJob(j);
  }

  async saveLayer(layer: SavedLayer, hidden: Float32Array): Promise<void> {
    const j = this.fresh();
    const masksFile = `masks-${layer.layer}.bin`;
    const hiddenFile = `hidden-${layer.layer}.f32`;
    await this.folder.write(masksFile, packMasks(layer.masks));
    await this.folder.write(hiddenFile, new Uint8Array(hidden.buffer, hidden.byteOffset, hidden.byteLength));
    const old = j.hidden;
    const { masks: _m, ...rest } = layer;
    j.layers = [...j.layers.filter((l) => l.layer !== layer.layer), { ...rest, masks: masksFile }];
    j.hidden = hiddenFile;
    await this.writeJob(j);
    // Only the newest hidden states are needed to resume.
    if (old && old !== hiddenFile) await this.folder.remove(old);
  }
}
