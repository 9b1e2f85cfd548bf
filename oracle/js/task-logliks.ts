/**
 * Oracle helper: scores a multiple-choice task file (src/eval/tasks, lm-evaluation-harness rules) on fixture
 * checkpoints through the pruning job's task evaluation (the WebGPU engine, all choices in one padded pass), in ONE
 * process, and prints JSON for oracle/tests/test_task_accuracy.py, which recomputes every log-likelihood with torch.
 *
 *   npx tsx oracle/js/task-logliks.ts --task items.jsonl --window W <checkpoint dir> [<dir> ...]
 *
 * Output: {"adapter": "...", "results": {"<dir>": {"n", "acc", "acc_norm", "acc_stderr", "acc_norm_stderr", "logliks":
 * [[per choice] per item], "tokens": [[scored tokens per choice] per item], "truncated": n}}}, or {"<dir>": {"error"}}.
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { register } from 'node:module';

register(new URL('../../src/cli/wgsl-loader.mjs', import.meta.url));
process.env.XDG_RUNTIME_DIR ??= '/tmp';

async function main(): Promise<void> {
  const { openNodeFileSet } = await import('../../src/cli/node-files.ts');
  const { PruneJob, readTask } = await import('../../src/pipeline/job.ts');
  const args = process.argv.slice(2);
  let taskPath = '';
  let window = 0;
  const dirs: string[] = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--task') taskPath = args[++i]!;
    else if (args[i] === '--window') window = Number(args[++i]);
    else dirs.push(args[i]!);
  }
  if (!taskPath || !window || !dirs.length) throw new Error('usage: task-logliks.ts --task items.jsonl --window W <dir> [<dir> ...]');
  const task = readTask({ name: basename(taskPath), bytes: readFileSync(taskPath) }, 'jsonl');
  const { runPerCheckpoint } = await import('./runner.ts');
  await runPerCheckpoint(dirs, async (gpu, dir) => {
    const job = await PruneJob.open(await openNodeFileSet(dir), gpu);
    const r = await job.taskAccuracy(task, undefined, { window });
    return {
      n: r.n, acc: r.acc, acc_norm: r.acc_norm, acc_stderr: r.acc_stderr, acc_norm_stderr: r.acc_norm_stderr,
      logliks: r.logliks, tokens: r.choiceTokens, truncated: r.truncated,
    };
  });
}

await main();
