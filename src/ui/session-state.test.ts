import { beforeEach, describe, expect, it, vi } from 'vitest';
import type { FileSet } from '../formats/bytes.ts';
import type { CalibrationStats, TradeoffPoint } from '../pipeline/job.ts';

// IndexedDB as idb-keyval sees it: one map per database, values stored as structured clones (as the browser does).
const dbs = vi.hoisted(() => new Map<string, Map<string, unknown>>());
vi.mock('idb-keyval', () => {
  type Store = Map<string, unknown>;
  const clone = <T>(v: T): T => structuredClone(v);
  return {
    createStore: (name: string): Store => {
      if (!dbs.has(name)) dbs.set(name, new Map());
      return dbs.get(name)!;
    },
    get: async (k: string, s: Store) => clone(s.get(k)),
    set: async (k: string, v: unknown, s: Store) => void s.set(k, clone(v)),
    del: async (k: string, s: Store) => void s.delete(k),
    entries: async (s: Store) => [...s.entries()].map(([k, v]) => [k, clone(v)]),
  };
});

const { calibrationSpec, useEval } = await import('./eval-state.ts');
const { usePlan } = await import('./prune-state.ts');
const { useApp } = await import('./state.ts');
const { useTradeoff, textDigest } = await import('./tradeoff-state.ts');
const { reopenMessage, reopenSession, saveSession, SESSION_DB, SESSION_STATS_DB, statisticsFit, useSessions } = await import('./session-state.ts');
type SessionRecord = import('./session-state.ts').SessionRecord;
type StoredPoint = import('./tradeoff-state.ts').StoredPoint;

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const userText = (id: number, name: string, content: string) => ({ source: 'file' as const, file: { id, name, content, bytes: enc(content) } });

const point = (p: Partial<TradeoffPoint>): TradeoffPoint => ({
  expertsPerLayer: 4, expertSparsity: 0, unstructuredSparsity: 0, totalSparsity: 0, method: 'none', similarity: 'router', params: 100, nonzeroParams: 100,
  perplexity: 10, measured: true, series: 'original', share: null, ...p,
});

const stats: CalibrationStats = {
  format: 'moe-prune-calibration-stats', version: 1, windows: 2, seqLen: 8, tokens: 16,
  moeLayers: [{ layer: 0, experts: 2, topK: 1, tokens: 16, routerLogits: { mean: new Float32Array([0.5, -0.5]), std: new Float32Array([1, 2]), max: new Float32Array([3, 4]) }, tokensPerExpert: new Uint32Array([9, 7]), coactivation: new Uint32Array([9, 0, 0, 7]), unrouted: [], removed: [] }],
  inputNorms: { 'model.layers.0.mlp.experts.0.w1': { rows: 16, sumSq: new Float32Array([1.5, 2.5]) } },
} as unknown as CalibrationStats;

/** A model on screen (its FileSet an opaque token) whose plan is ready, so a session applies at once. */
function onScreen(fileSet: FileSet): void {
  useApp.setState({ current: { name: 'tiny-moe', mode: 'direct', fileSet, files: [{ name: 'config.json', size: 10 }, { name: 'model.safetensors', size: 1000 }], sources: null, storedId: null, summary: {} as never, lone: null, inspecting: false, match: null } });
  useTradeoff.setState({ source: fileSet, points: [], sweeps: [] });
  useEval.setState({ source: fileSet, calibration: null, running: null });
}

describe('sessions keep calibration statistics and the texts of measured points', () => {
  beforeEach(() => {
    for (const m of dbs.values()) m.clear();
    useSessions.setState({ sessions: [], pending: null, activeId: null, message: null });
  });

  it('round trip: saved with its points (own held-out text by name and SHA-256) and statistics; reopened after a "reload" puts both back', async () => {
    const first = {} as FileSet;
    onScreen(first);
    const calibText = userText(1, 'my-calib.txt', 'some calibration text');
    const heldoutText = userText(2, 'my-heldout.txt', 'some held-out text');
    useEval.setState({ calibText, heldoutText, calib: { ...useEval.getState().calib, count: 2, length: 8 } });
    const spec = calibrationSpec(useEval.getState().calib);
    useEval.setState({
      calibration: { source: first, stats, textName: 'my-calib.txt', windows: 2, seqLen: 8, sampling: spec.sampling, seed: spec.seed, seconds: 1, layers: [], peakPoolBytes: 0, peakLayerWeightBytes: 0 },
    });
    const texts = { calibration: await textDigest(calibText.file, true), heldout: await textDigest(heldoutText.file, true) };
    expect(texts.heldout.sha256).toMatch(/^[0-9a-f]{64}$/);
    const stored: StoredPoint = { point: point({}), context: 'ctx', setting: '4|', at: 1, texts };
    useTradeoff.setState({ points: [stored] });
    await saveSession();
    expect(useSessions.getState().message).toBeNull();

    const rec = [...dbs.get(SESSION_DB)!.values()][0] as SessionRecord;
    expect(rec.tradeoff.points[0]!.texts).toEqual(texts);
    expect(rec.statistics).toMatchObject({ text: { name: 'my-calib.txt', sha256: texts.calibration.sha256, own: true }, spec, windows: 2, tokens: 16 });
    // The statistics are stored beside the list (not in it), typed arrays intact.
    expect(dbs.get(SESSION_STATS_DB)!.size).toBe(1);
    expect(useSessions.getState().sessions).toHaveLength(1);

    // A reload: another FileSet of the same files, nothing calibrated; the user picks the same calibration file again.
    const second = {} as FileSet;
    onScreen(second);
    useEval.setState({ calibText: userText(7, 'my-calib.txt', 'some calibration text') });
    usePlan.setState({ source: second, model: {} as never, controls: {} as never });
    await reopenSession({ ...rec, plan: null });
    await vi.waitFor(() => expect(useEval.getState().calibration).not.toBeNull());
    const back = useEval.getState().calibration!;
    expect(back.source).toBe(second);
    expect(back.textName).toBe('my-calib.txt');
    expect(back.stats.moeLayers[0]!.coactivation).toEqual(new Uint32Array([9, 0, 0, 7]));
    expect(back.stats.moeLayers[0]!.coactivation).toBeInstanceOf(Uint32Array);
    expect(back.stats.inputNorms['model.layers.0.mlp.experts.0.w1']!.sumSq).toEqual(new Float32Array([1.5, 2.5]));
    expect(useTradeoff.getState().points).toEqual([stored]);
    const msg = useSessions.getState().message ?? '';
    expect(msg).toContain('Calibration statistics restored (my-calib.txt, 2 windows)');
    expect(msg).toContain('held-out: my-heldout.txt');
  });

  it('statistics of another text (by SHA-256) or another spec are not restored; the session says the next measure calibrates again', async () => {
    const first = {} as FileSet;
    onScreen(first);
    useEval.setState({ calibText: userText(1, 'a.txt', 'text one') });
    const spec = calibrationSpec(useEval.getState().calib);
    useEval.setState({ calibration: { source: first, stats, textName: 'a.txt', windows: 2, seqLen: spec.seqLen, sampling: spec.sampling, seed: spec.seed, seconds: 1, layers: [], peakPoolBytes: 0, peakLayerWeightBytes: 0 } });
    useTradeoff.setState({ points: [{ point: point({}), context: 'ctx', setting: '4|', at: 1 }] });
    await saveSession();
    const rec = [...dbs.get(SESSION_DB)!.values()][0] as SessionRecord;
    expect(rec.statistics?.text.name).toBe('a.txt');

    const second = {} as FileSet;
    onScreen(second);
    // Same name, other bytes: not the text the statistics were taken on.
    useEval.setState({ calibText: userText(9, 'a.txt', 'text two') });
    usePlan.setState({ source: second, model: {} as never, controls: {} as never });
    await reopenSession({ ...rec, plan: null });
    await vi.waitFor(() => expect(useSessions.getState().message).toMatch(/next measure calibrates again/));
    expect(useEval.getState().calibration).toBeNull();
    expect(useTradeoff.getState().points).toHaveLength(1);

    const about = rec.statistics!;
    expect(statisticsFit(about, about.text, about.spec)).toBe(true);
    expect(statisticsFit(about, { ...about.text, sha256: '0'.repeat(64) }, about.spec)).toBe(false);
    expect(statisticsFit(about, about.text, { ...about.spec, samples: about.spec.samples + 1 })).toBe(false);
    expect(reopenMessage({ ...rec, statistics: undefined } as SessionRecord, 'none')).toBe('Reopened the session of tiny-moe: 1 measured point(s).');
  });
});
