import type { CheckpointSummary } from '../models/types.ts';

/** 8 MiB: large enough that IndexedDB per-record overhead is small, small enough to keep memory bounded. */
export const DEFAULT_CHUNK_SIZE = 8 * 1024 * 1024;

/**
 * 'stored': the bytes were copied into IndexedDB and survive a reload.
 * 'direct': nothing is copied; the pipeline reads the dropped files themselves (lost on reload).
 */
export type StorageMode = 'stored' | 'direct';

/** Identity of one source file. A re-selected file matches when name, size and lastModified agree. */
export interface FileIdentity {
  readonly name: string;
  readonly size: number;
  readonly lastModified: number;
}

export interface StoredFile extends FileIdentity {
  readonly chunkSize: number;
  readonly chunkCount: number;
}

export interface ModelRecord {
  readonly id: string;
  readonly name: string;
  readonly mode: StorageMode;
  readonly files: readonly StoredFile[];
  readonly totalBytes: number;
  readonly summary: CheckpointSummary | null;
  /** True once every chunk of every file is written and verified. */
  readonly complete: boolean;
  readonly createdAt: number;
  readonly updatedAt: number;
}

/** Key layout in the object store. Model ids never contain ':'; file names are only ever built into keys, never parsed. */
export const keys = {
  model: (id: string) => `model:${id}`,
  modelPrefix: (id: string) => `model:${id}:`,
  allModels: 'model:',
  fileLengths: (id: string, file: string) => `model:${id}:file:${file}:lengths`,
  chunk: (id: string, file: string, i: number) => `model:${id}:file:${file}:chunk:${i}`,
  chunkPrefix: (id: string, file: string) => `model:${id}:file:${file}:chunk:`,
} as const;

const MODEL_KEY = /^model:[^:]+$/;
export function isModelKey(k: string): boolean {
  return MODEL_KEY.test(k);
}

/** A short id that is unique enough for one browser profile's stored models and recent list. */
export function newLocalId(): string {
  return Date.now().toString(36) + Math.random().toString(36).slice(2, 8);
}

export function chunkCount(size: number, chunkSize: number): number {
  return Math.ceil(size / chunkSize);
}

/** Length chunk `i` must have: full chunks, then the remainder. */
export function expectedChunkLength(size: number, chunkSize: number, i: number): number {
  return Math.max(0, Math.min(chunkSize, size - i * chunkSize));
}

export function sameIdentity(a: FileIdentity, b: FileIdentity): boolean {
  return a.name === b.name && a.size === b.size && a.lastModified === b.lastModified;
}

/** Whether `files` are exactly the files of `record` (same set, each with the same name, size and time). */
export function matchesFiles(record: { readonly files: readonly FileIdentity[] }, files: readonly FileIdentity[]): boolean {
  if (record.files.length !== files.length) return false;
  const byName = new Map(files.map((f) => [f.name, f]));
  return record.files.every((rf) => {
    const f = byName.get(rf.name);
    return f !== undefined && sameIdentity(rf, f);
  });
}
