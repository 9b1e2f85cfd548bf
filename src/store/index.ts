/** The weight store: chunked IndexedDB copies of checkpoints, and direct reads from dropped files. */
export { WeightStore } from './weight-store.ts';
export type { IngestOptions, IngestProgress, IngestResult, SourceFile, StorageUsage, StoredModel, WeightStoreOptions } from './weight-store.ts';
export { IdbFileSource } from './idb-file-source.ts';
export { createIdbKv, WEIGHT_DB_NAME, WEIGHT_STORE_NAME } from './idb-kv.ts';
export { MemoryKv, type ChunkKv } from './kv.ts';
export { browserStorageAccess, fixedStorageAccess, type StorageAccess } from './storage-access.ts';
export { DEFAULT_CHUNK_SIZE, keys, matchesFiles, type FileIdentity, type ModelRecord, type StorageMode, type StoredFile } from './records.ts';
export { checkpointName, directFileSet, toSourceFiles, type PickedFile } from './source-files.ts';
export { formatBytes, formatCount, formatEta, formatRate } from '../core/format.ts';
