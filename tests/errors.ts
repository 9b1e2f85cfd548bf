import { MoePruneError } from '../src/core/errors.ts';

/** The MoePruneError a promise rejects with; any other outcome fails the test. */
export async function rejection(p: Promise<unknown>): Promise<MoePruneError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof MoePruneError) return e;
    throw e;
  }
  throw new Error('expected a MoePruneError');
}

/** The MoePruneError a call throws; any other outcome fails the test. */
export function thrown(f: () => unknown): MoePruneError {
  try {
    f();
  } catch (e) {
    if (e instanceof MoePruneError) return e;
    throw e;
  }
  throw new Error('expected a MoePruneError');
}
