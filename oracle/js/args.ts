/** `--ids 1,2,3 [--ids ...] <dir> [<dir> ...]`: token windows and checkpoint folders for the forward drivers. */
export function parseForwardArgs(args: readonly string[], script: string): { windows: number[][]; dirs: string[] } {
  const windows: number[][] = [];
  const dirs: string[] = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--ids') windows.push(args[++i]!.split(',').map(Number));
    else dirs.push(args[i]!);
  }
  if (!windows.length || !dirs.length) throw new Error(`usage: ${script} --ids 1,2,3 [--ids ...] <dir> [<dir> ...]`);
  return { windows, dirs };
}
