/**
 * Every failure a user can meet is a MoePruneError: it names the file (when there is one), the rule that
 * was broken, and reads as one line. UI and CLI print `error.message` as is.
 */
export type ErrorCode =
  | 'HeaderTooSmall'
  | 'HeaderTooLarge'
  | 'InvalidHeaderLength'
  | 'InvalidHeader'
  | 'InvalidHeaderDeserialization'
  | 'InvalidMetadata'
  | 'UnknownDtype'
  | 'InvalidShape'
  | 'InvalidOffset'
  | 'TensorInvalidInfo'
  | 'MisalignedSlice'
  | 'ValidationOverflow'
  | 'MetadataIncompleteBuffer'
  | 'DuplicateTensor'
  | 'TruncatedFile'
  | 'MissingFile'
  | 'FileChanged'
  | 'PermissionDenied'
  | 'MissingTensor'
  | 'InvalidIndex'
  | 'InvalidConfig'
  | 'UnsupportedFamily'
  | 'UnsupportedDtype'
  | 'StorageFull'
  | 'StorageError'
  | 'GpuUnavailable'
  | 'GpuLost'
  | 'GpuOutOfMemory'
  | 'GpuValidation'
  | 'Cancelled'
  | 'InvalidPlan'
  | 'InvalidArgument'
  | 'IoError';

export class MoePruneError extends Error {
  readonly code: ErrorCode;
  readonly file: string | undefined;
  readonly detail: string;

  constructor(code: ErrorCode, detail: string, file?: string, options?: { cause?: unknown }) {
    super(file ? `${file}: ${detail} [${code}]` : `${detail} [${code}]`, options);
    this.name = 'MoePruneError';
    this.code = code;
    this.file = file;
    this.detail = detail;
  }
}

export function isMoePruneError(e: unknown): e is MoePruneError {
  return e instanceof MoePruneError;
}

/** Wraps any thrown value as a user-facing error, keeping MoePruneErrors as they are. */
export function asUserError(e: unknown, fallback: ErrorCode = 'IoError', file?: string): MoePruneError {
  if (e instanceof MoePruneError) return e;
  if (e instanceof DOMException && e.name === 'AbortError') return new MoePruneError('Cancelled', 'cancelled by the user', file);
  if (e instanceof DOMException && e.name === 'QuotaExceededError')
    return new MoePruneError('StorageFull', 'the browser storage quota is full; free space or delete a stored model', file);
  const msg = e instanceof Error ? e.message : String(e);
  return new MoePruneError(fallback, msg, file, { cause: e });
}

export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new MoePruneError('Cancelled', 'cancelled by the user');
}
