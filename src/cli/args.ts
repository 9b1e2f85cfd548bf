import { MoePruneError } from '../core/errors.ts';

/** `--name value`, `--name=value` and boolean `--flag` options (`-h` for `--help`) plus positional arguments. */
export interface ParsedArgs {
  readonly positional: string[];
  readonly values: Map<string, string>;
  readonly flags: Set<string>;
}

export function parseArgs(args: readonly string[], spec: { values: readonly string[]; flags: readonly string[] }, usage: string): ParsedArgs {
  const positional: string[] = [];
  const values = new Map<string, string>();
  const flags = new Set<string>();
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '-h' && spec.flags.includes('help')) {
      flags.add('help');
      continue;
    }
    if (!a.startsWith('--')) {
      positional.push(a);
      continue;
    }
    const [name, inline] = a.slice(2).split(/=(.*)/s, 2) as [string, string | undefined];
    if (spec.flags.includes(name) && inline === undefined) flags.add(name);
    else if (spec.values.includes(name)) {
      const v = inline ?? args[++i];
      if (v === undefined) throw new MoePruneError('InvalidArgument', `--${name} needs a value; ${usage}`);
      values.set(name, v);
    } else throw new MoePruneError('InvalidArgument', `unknown option "${a}"; ${usage}`);
  }
  return { positional, values, flags };
}

export function numberArg(p: ParsedArgs, name: string, check: (n: number) => boolean, what: string): number | undefined {
  const v = p.values.get(name);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || !check(n)) throw new MoePruneError('InvalidArgument', `--${name} must be ${what}, got "${v}"`);
  return n;
}

export function choiceArg<T extends string>(p: ParsedArgs, name: string, choices: readonly T[], fallback: T): T {
  const v = p.values.get(name);
  if (v === undefined) return fallback;
  if (!(choices as readonly string[]).includes(v)) throw new MoePruneError('InvalidArgument', `--${name} must be one of ${choices.join(', ')}, got "${v}"`);
  return v as T;
}
