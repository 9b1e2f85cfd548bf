import { describe, expect, it } from 'vitest';
import { asUserError, MoePruneError, withoutCodes } from './errors.ts';

describe('messages on the page: file and rule, no internal code', () => {
  it('text drops the code MoePruneError appends and keeps the rest', () => {
    const e = new MoePruneError('MissingFile', 'the checkpoint has no file "config.json"', 'config.json');
    expect(e.message).toBe('config.json: the checkpoint has no file "config.json" [MissingFile]'); // CLI and --json keep it
    expect(e.text).toBe('config.json: the checkpoint has no file "config.json"');
    expect(e.code).toBe('MissingFile');
    expect(new MoePruneError('Cancelled', 'cancelled by the user').text).toBe('cancelled by the user');
  });

  it('codes quoted inside another message go too; brackets that are not codes stay', () => {
    const inner = new MoePruneError('TruncatedFile', 'ended at byte 8', 'model.safetensors');
    const outer = new MoePruneError('IoError', `cannot fetch the demo model (${inner.message})`, 'moe-demo');
    expect(outer.text).toBe('moe-demo: cannot fetch the demo model (model.safetensors: ended at byte 8)');
    expect(withoutCodes('tensor "a" has shape [2, 3] [InvalidShape]')).toBe('tensor "a" has shape [2, 3]');
    expect(withoutCodes('a note [NotACode] stays')).toBe('a note [NotACode] stays');
  });

  it('any thrown value reads the same way', () => {
    expect(asUserError(new Error('disk on fire')).text).toBe('disk on fire');
    expect(asUserError(new MoePruneError('GpuLost', 'the GPU device was lost')).text).toBe('the GPU device was lost');
    expect(asUserError('x').text).toBe('x');
  });
});
