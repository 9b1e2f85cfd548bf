import { MoePruneError } from '../core/errors.ts';
import type { FileSet } from './bytes.ts';

/**
 * A file every export writes first and removes last (CLI and page alike): a folder that still holds it was cut off
 * mid-export (full disk, crash, closed tab) and is never read as a checkpoint. The page's folder export writes the
 * same name (browser-output.ts; a test keeps the two equal).
 */
export const INCOMPLETE_MARKER = 'EXPORT_INCOMPLETE';

export function refuseUnfinishedExport(files: FileSet): void {
  if (files.get(INCOMPLETE_MARKER))
    throw new MoePruneError(
      'TruncatedFile',
      'this folder is an export that did not finish (the disk filled up, or the run was stopped), so its shards may be cut short; delete it and export again',
      INCOMPLETE_MARKER,
    );
}
