import { browserStorageAccess } from '../store/storage-access.ts';
import { createIdbKv } from '../store/idb-kv.ts';
import { createIdbHandleStore, type RecentStore } from '../store/source-handles.ts';
import { WeightStore } from '../store/weight-store.ts';

/**
 * Test-only switches, honoured only with `?test=1`: `chunk=<bytes>` shrinks store chunks so tiny fixtures
 * span many chunks, `slowIngest=<ms>` pauses after each chunk write so a test can reload mid-ingest.
 */
export interface TestParams {
  readonly test: boolean;
  readonly chunkSize: number | undefined;
  readonly writeDelayMs: number | undefined;
}

function positiveInt(v: string | null): number | undefined {
  if (v === null) return undefined;
  const n = Number(v);
  return Number.isSafeInteger(n) && n > 0 ? n : undefined;
}

export function readTestParams(search: string): TestParams {
  const q = new URLSearchParams(search);
  const test = q.get('test') === '1';
  return {
    test,
    chunkSize: test ? positiveInt(q.get('chunk')) : undefined,
    writeDelayMs: test ? positiveInt(q.get('slowIngest')) : undefined,
  };
}

export interface Services {
  readonly store: WeightStore;
  /** Checkpoints read in place, reopenable after a reload from their saved file handles. */
  readonly recent: RecentStore;
  readonly test: TestParams;
}

let services: Services | undefined;

export function getServices(): Services {
  if (!services) {
    const test = readTestParams(typeof location === 'undefined' ? '' : location.search);
    const handles = createIdbHandleStore();
    const store = new WeightStore(createIdbKv(), {
      storage: browserStorageAccess(),
      handles,
      chunkSize: test.chunkSize,
      writeDelayMs: test.writeDelayMs,
    });
    services = { store, recent: handles, test };
  }
  return services;
}
