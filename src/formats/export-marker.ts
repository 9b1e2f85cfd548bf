import { MoePruneError } from '../core/errors.ts';
import type { FileSet } from './bytes.ts';

/**
 * A file every export writes first and removes last (CLI and page alike): a folder that still holds it was cut off
 * mid-export (full disk, crash, closed tab) and is never read as a checkpoint. The CLI's folder (node-output.ts) and
 * the page's picked folder (browser-output.ts) both write it, with this text.
 */
export const INCOMPLETE_MARKER = 'EXPORT_INCOMPLETE';

export const INCOMPLETE_MARKER_TEXT =
  'This folder is an unfinished export from MoE Prune Studio. It was interrupted or is still being written; ' +
  'do not load it. The marker is removed when every file has been written.\n';

export function refuseUnfinishedExport(files: FileSet): void {
  if (files.get(INCOMPLETE_MARKER))
    throw new MoePruneError(
      'TruncatedFile',
      'this folder is an export that did not finish (the disk filled up, or the run was stopped), so its shards may be cut short; delete it and export again',
      INCOMPLETE_MARKER,
    );
}
