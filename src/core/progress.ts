/** Progress of a long step. `done`/`total` are in `unit`s; `file` names the file being worked on, if any. */
export interface Progress {
  readonly phase: string;
  readonly done: number;
  readonly total: number;
  readonly unit: 'bytes' | 'layers' | 'tensors' | 'experts' | 'tokens' | 'steps';
  readonly file?: string;
  readonly detail?: string;
}

export type ProgressSink = (p: Progress) => void;

/** Options every long-running core operation takes: a progress sink and a cancel signal. */
export interface LongTask {
  readonly onProgress?: ProgressSink;
  readonly signal?: AbortSignal;
}

/** Rate and remaining time from a series of (time, bytes) observations; used by progress displays. */
export class RateMeter {
  private readonly samples: Array<{ t: number; v: number }> = [];
  constructor(private readonly windowMs = 3000) {}

  push(tMs: number, value: number): void {
    this.samples.push({ t: tMs, v: value });
    while (this.samples.length > 2 && tMs - this.samples[0]!.t > this.windowMs) this.samples.shift();
  }

  /** units per second over the window, or 0 before two samples exist. */
  rate(): number {
    if (this.samples.length < 2) return 0;
    const a = this.samples[0]!;
    const b = this.samples[this.samples.length - 1]!;
    const dt = (b.t - a.t) / 1000;
    return dt > 0 ? (b.v - a.v) / dt : 0;
  }

  /** Seconds left to reach `total`, or undefined when the rate is unknown. */
  eta(total: number): number | undefined {
    const r = this.rate();
    const last = this.samples[this.samples.length - 1];
    if (!last || r <= 0) return undefined;
    return Math.max(0, (total - last.v) / r);
  }
}
