import { runEval } from './eval.ts';
import { asUserError, MoePruneError } from '../core/errors.ts';
import { runInspect } from './inspect.ts';
import { runPrune } from './prune.ts';
import { runCompare } from './compare.ts';

/** Where a command writes; process.stdout/stderr in the CLI, string collectors in tests. */
export interface CliIo {
  readonly stdout: { write(s: string): unknown };
  readonly stderr: { write(s: string): unknown };
  /** Aborted on Ctrl-C / SIGTERM (bin/moe-prune.mjs): long commands stop and remove what they had written. */
  readonly signal?: AbortSignal;
}

/**
 * Every command ends a failure the same way: one line on stderr (the error names the file and the rule), exit 2 for
 * bad input or a refused request (a MoePruneError), 1 for anything unexpected.
 */
export function reportFailure(e: unknown, io: CliIo): number {
  io.stderr.write(`${asUserError(e).message.replace(/\s*\n\s*/g, ' ')}\n`);
  return e instanceof MoePruneError ? 2 : 1;
}

interface Command {
  readonly summary: string;
  run(args: string[], io: CliIo): Promise<number>;
}

/** Subcommands; `prune` and `eval` join here as they land. */
const COMMANDS: Record<string, Command> = {
  inspect: { summary: 'inspect <checkpoint folder | .safetensors file> [--json]   summarise and check a MoE checkpoint', run: runInspect },
  eval: { summary: 'eval <checkpoint folder> --text <file> [--seq-len L] [--max-windows N] [--json] [--cpu]   perplexity on a text (WebGPU engine)', run: runEval },
  prune: { summary: 'prune <checkpoint folder> | --demo --out <folder> --experts-per-layer K | --expert-sparsity E [...]   remove experts (STUN stage 1)', run: runPrune },
  compare: { summary: 'compare <checkpoint folder> --experts-per-layer K --calib-text <file> [--eval-text <file>] [...]   which experts to drop: every criterion side by side', run: runCompare },
};

function usage(): string {
  const lines = Object.values(COMMANDS).map((c) => `  moe-prune ${c.summary}`);
  return `usage:\n${lines.join('\n')}\n`;
}

/** `moe-prune <command> ...`; returns the exit code (0 ok, 2 bad input, 1 internal failure). */
export async function main(argv: string[], io: CliIo): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined) {
    io.stderr.write(usage());
    return 2;
  }
  if (name === '--help' || name === '-h' || name === 'help') {
    io.stdout.write(usage());
    return 0;
  }
  const cmd = COMMANDS[name];
  if (!cmd) {
    io.stderr.write(`moe-prune: unknown command "${name}"; commands: ${Object.keys(COMMANDS).join(', ')}\n`);
    return 2;
  }
  return cmd.run(rest, io);
}
