import { browserStorageAccess } from '../store/storage-access.ts';
import { createIdbKv } from '../store/idb-kv.ts';
import { createIdbHandleStore, type RecentStore } from '../store/source-handles.ts';
import { WeightStore } from '../store/weight-store.ts';

export interface Services {
  readonly store: WeightStore;
  /** Checkpoints read in place, reopenable after a reload from their saved file handles. */
  readonly recent: RecentStore;
}

let services: Services | undefined;

export function getServices(): Services {
  if (!services) {
    const handles = createIdbHandleStore();
    const store = new WeightStore(createIdbKv(), { storage: browserStorageAccess(), handles });
    services = { store, recent: handles };
  }
  return services;
}
