/**
 * The browser's storage-manager calls, injected into the store so Node tests can fake them.
 * `estimate` returns null when the browser offers no estimate (then the size check is skipped).
 */
export interface StorageAccess {
  estimate(): Promise<{ usage: number; quota: number } | null>;
  /** Asks the browser not to evict our data under storage pressure; resolves to whether it agreed. */
  persist(): Promise<boolean>;
  persisted(): Promise<boolean>;
}

/** navigator.storage, or an access that knows nothing when the page has no StorageManager. */
export function browserStorageAccess(): StorageAccess {
  const sm = typeof navigator !== 'undefined' ? navigator.storage : undefined;
  return {
    async estimate() {
      if (!sm?.estimate) return null;
      const e = await sm.estimate();
      return e.quota === undefined ? null : { usage: e.usage ?? 0, quota: e.quota };
    },
    async persist() {
      return sm?.persist ? sm.persist().catch(() => false) : false;
    },
    async persisted() {
      return sm?.persisted ? sm.persisted().catch(() => false) : false;
    },
  };
}

/** A fixed estimate, for tests and Node. */
export function fixedStorageAccess(quota: number, usage = 0, canPersist = true): StorageAccess & { persistCalls: number } {
  const access = {
    persistCalls: 0,
    async estimate() {
      return { usage, quota };
    },
    async persist() {
      access.persistCalls++;
      return canPersist;
    },
    async persisted() {
      return canPersist && access.persistCalls > 0;
    },
  };
  return access;
}
