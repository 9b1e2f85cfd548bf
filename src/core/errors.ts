/** Every error code, at run time too (withoutCodes recognises them in a message). */
const CODES = [
  'NotSafetensors',
  'HeaderTooSmall',
  'HeaderTooLarge',
  'InvalidHeaderLength',
  'InvalidHeader',
  'InvalidHeaderDeserialization',
  'InvalidMetadata',
  'UnknownDtype',
  'InvalidShape',
  'InvalidOffset',
  'TensorInvalidInfo',
  'MisalignedSlice',
  'ValidationOverflow',
  'MetadataIncompleteBuffer',
  'DuplicateTensor',
  'TruncatedFile',
  'MissingFile',
  'FileChanged',
  'PermissionDenied',
  'MissingTensor',
  'InvalidIndex',
  'InvalidConfig',
  'UnsupportedFamily',
  'UnsupportedDtype',
  'StorageFull',
  'StorageError',
  'GpuUnavailable',
  'GpuLost',
  'GpuOutOfMemory',
  'GpuValidation',
  'Cancelled',
  'InvalidPlan',
  'InvalidArgument',
  'IoError',
  'NonFinite',
] as const;

export type ErrorCode = (typeof CODES)[number];
const ERROR_CODES: ReadonlySet<string> = new Set(CODES);

/**
 * Every failure a user can meet is a MoePruneError: it names the file (when there is one), the rule that
 * was broken, and reads as one line. The CLI prints `error.message` (the code in brackets at the end, for scripts
 * and bug reports); the page shows `error.text`, the same words without the code, and keeps the code in the
 * element's data-code.
 */
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

  /** The message as the page shows it: file and rule, no internal code (see withoutCodes). */
  get text(): string {
    return withoutCodes(this.message);
  }
}

/** ` [Code]` as MoePruneError appends it (also where one error's message was quoted inside another's detail). */
const CODE_SUFFIX = / \[([A-Z][A-Za-z]+)\]/g;

/** A user-facing message without the internal codes in brackets: what the page shows. */
export function withoutCodes(message: string): string {
  return message.replace(CODE_SUFFIX, (whole, code: string) => (ERROR_CODES.has(code) ? '' : whole));
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
