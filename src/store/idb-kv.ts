import { createStore, getMany, promisifyRequest, setMany, type UseStore } from 'idb-keyval';
import type { ChunkKv } from './kv.ts';

/** Our own database and object store, so we never share idb-keyval's default `keyval-store`. */
export const WEIGHT_DB_NAME = 'moe-prune-studio';
export const WEIGHT_STORE_NAME = 'weights';

/** Highest code unit: every key that starts with `prefix` sorts below `prefix + PREFIX_END`. */
const PREFIX_END = '\uffff';

function prefixRange(prefix: string): IDBKeyRange {
  return IDBKeyRange.bound(prefix, prefix + PREFIX_END, false, false);
}

/** ChunkKv over IndexedDB through idb-keyval (browser only). */
export function createIdbKv(dbName = WEIGHT_DB_NAME, storeName = WEIGHT_STORE_NAME): ChunkKv {
  const store: UseStore = createStore(dbName, storeName);
  return {
    async get<T>(key: string) {
      return store('readonly', (s) => promisifyRequest(s.get(key) as IDBRequest<T | undefined>));
    },
    async getMany<T>(keys: readonly string[]) {
      return getMany<T>([...keys], store);
    },
    async setMany(entries) {
      await setMany(
        entries.map(([k, v]) => [k, v] as [IDBValidKey, unknown]),
        store,
      );
    },
    async keysWithPrefix(prefix: string) {
      const keys = await store('readonly', (s) => promisifyRequest(s.getAllKeys(prefixRange(prefix))));
      return keys.map(String);
    },
    async deletePrefix(prefix: string) {
      await store('readwrite', (s) => {
        s.delete(prefixRange(prefix));
        return promisifyRequest(s.transaction);
      });
    },
    async delete(key: string) {
      await store('readwrite', (s) => {
        s.delete(key);
        return promisifyRequest(s.transaction);
      });
    },
  };
}
