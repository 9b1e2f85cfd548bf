#!/usr/bin/env node
// Writes the scale benchmark's synthetic Mixtral-shaped checkpoint (bench/scale-checkpoint.ts), reusing a complete
// one: `node tools/scale/make-scale-checkpoint.mjs [dir] [--layers N] [--seed S]`. Two layers take 6.33 GB of disk
// (default folder .bench-data/scale-mixtral, git-ignored); delete the folder and its .complete.json when done.
import { register as registerTsx } from 'tsx/esm/api';

registerTsx();
const { ensureScaleCheckpoint, scaleBytes, SCALE_DIR } = await import('../../bench/scale-checkpoint.ts');
const args = process.argv.slice(2);
const opt = (flag, dflt) => {
  const i = args.indexOf(flag);
  if (i < 0) return dflt;
  const v = Number(args.splice(i, 2)[1]);
  if (!Number.isInteger(v) || v < 1) {
    console.error(`${flag} takes a positive integer`);
    process.exit(2);
  }
  return v;
};
const layers = opt('--layers', 2);
const seed = opt('--seed', 1);
const dir = args[0] ?? SCALE_DIR;
console.error(`scale checkpoint: ${layers} Mixtral layer(s), ${(scaleBytes(layers) / 1e9).toFixed(2)} GB of bf16 in ${dir}`);
const r = await ensureScaleCheckpoint(dir, layers, seed, (name) => console.error(`  writing ${name}`));
console.error(r.generated ? `written in ${(r.generateMs / 1000).toFixed(1)} s` : 'already complete: reused');
