/**
 * Multiple-choice task files: JSON Lines, one item per line, in our own form
 *   {"context": str, "choices": [str, …], "answer": int, "id"?: str|number}
 * or in one of the public formats people already have on disk, converted to it with the prompts of
 * lm-evaluation-harness's task configs (so a converted file scores as lm-eval's task does):
 *  - arc:       ARC `question` + `choices{text,label}` + `answerKey` → "Question: {q}\nAnswer: " (OpenBookQA's
 *               `question_stem` → "{q} ")
 *  - hellaswag: `ctx` (or `ctx_a`/`ctx_b`) + `endings` + `label`, with `activity_label` → lm-eval's preprocessing
 *  - piqa:      `goal` + `sol1`/`sol2` + `label` → "Question: {goal}\nAnswer: "
 *  - mmlu:      `question` + `choices` [4 strings] + `answer` (index or letter) → the question, lettered options,
 *               "Answer: ", choices " A"… as letters
 * The space lm-eval puts between prompt and answer (its target delimiter) ends the context here: the scoring rule
 * moves a context's trailing spaces to the front of each choice, which gives lm-eval's request exactly.
 * A line that does not fit its format is reported by number; nothing is guessed.
 */
import { MoePruneError } from '../../core/errors.ts';

export interface TaskItem {
  readonly context: string;
  readonly choices: readonly string[];
  /** Index of the correct choice. */
  readonly answer: number;
  readonly id?: string;
  /** 1-based line of the task file the item came from. */
  readonly line: number;
}

export const TASK_FORMATS = ['jsonl', 'arc', 'hellaswag', 'piqa', 'mmlu'] as const;
export type TaskFormat = (typeof TASK_FORMATS)[number];

export interface TaskFile {
  readonly name: string;
  readonly format: TaskFormat;
  readonly items: TaskItem[];
}

type Row = Record<string, unknown>;

class LineError extends Error {}

const str = (r: Row, k: string): string => {
  const v = r[k];
  if (typeof v !== 'string') throw new LineError(`"${k}" must be a string`);
  return v;
};

const strList = (v: unknown, what: string): string[] => {
  if (!Array.isArray(v) || v.length < 2 || !v.every((c) => typeof c === 'string')) throw new LineError(`${what} must be a list of at least 2 strings`);
  return v as string[];
};

const index = (v: unknown, n: number, what: string): number => {
  const i = typeof v === 'string' && /^\s*\d+\s*$/.test(v) ? Number(v) : v;
  if (typeof i !== 'number' || !Number.isInteger(i) || i < 0 || i >= n) throw new LineError(`${what} must be an integer from 0 to ${n - 1} (got ${JSON.stringify(v)})`);
  return i;
};

const idOf = (r: Row): { id?: string } => (typeof r['id'] === 'string' || typeof r['id'] === 'number' ? { id: String(r['id']) } : {});

function ours(r: Row): Omit<TaskItem, 'line'> {
  const choices = strList(r['choices'], '"choices"');
  return { context: str(r, 'context'), choices, answer: index(r['answer'], choices.length, '"answer"'), ...idOf(r) };
}

function arc(r: Row): Omit<TaskItem, 'line'> {
  const c = r['choices'] as { text?: unknown; label?: unknown } | null;
  if (typeof c !== 'object' || c === null || Array.isArray(c)) throw new LineError('"choices" must be an object with "text" and "label" lists');
  const text = strList(c.text, '"choices.text"');
  const label = strList(c.label, '"choices.label"');
  if (label.length !== text.length) throw new LineError(`"choices.label" has ${label.length} entries, "choices.text" ${text.length}`);
  const key = str(r, 'answerKey').trim();
  const answer = label.indexOf(key);
  if (answer < 0) throw new LineError(`"answerKey" ${JSON.stringify(key)} is not one of the labels ${JSON.stringify(label)}`);
  // OpenBookQA's prompt is the bare stem; ARC's wraps the question (lm-eval's arc_easy / openbookqa configs).
  const context = 'question_stem' in r ? `${str(r, 'question_stem')} ` : `Question: ${str(r, 'question')}\nAnswer: `;
  return { context, choices: text, answer, ...idOf(r) };
}

/** Python's str.capitalize(): first character upper case, the rest lower case. */
const capitalize = (s: string): string => (s ? s[0]!.toUpperCase() + s.slice(1).toLowerCase() : s);

/** lm-eval's hellaswag preprocess: strip, " [title]" → ". ", drop [bracketed] tags, collapse double spaces. */
export function hellaswagPreprocess(text: string): string {
  return text.trim().replaceAll(' [title]', '. ').replace(/\[.*?\]/g, '').replaceAll('  ', ' ');
}

function hellaswag(r: Row): Omit<TaskItem, 'line'> {
  const endings = strList(r['endings'], '"endings"');
  const ctx = 'ctx_a' in r ? `${str(r, 'ctx_a')} ${capitalize(str(r, 'ctx_b'))}` : str(r, 'ctx');
  const query = 'activity_label' in r ? `${str(r, 'activity_label')}: ${ctx}` : ctx;
  return {
    context: `${hellaswagPreprocess(query)} `,
    choices: endings.map(hellaswagPreprocess),
    answer: index(r['label'], endings.length, '"label"'),
    ...(typeof r['ind'] === 'number' ? { id: String(r['ind']) } : idOf(r)),
  };
}

function piqa(r: Row): Omit<TaskItem, 'line'> {
  return { context: `Question: ${str(r, 'goal')}\nAnswer: `, choices: [str(r, 'sol1'), str(r, 'sol2')], answer: index(r['label'], 2, '"label"'), ...idOf(r) };
}

const LETTERS = ['A', 'B', 'C', 'D'];

function mmlu(r: Row): Omit<TaskItem, 'line'> {
  const choices = strList(r['choices'], '"choices"');
  if (choices.length !== 4) throw new LineError(`"choices" must hold 4 options (got ${choices.length})`);
  const a = r['answer'];
  const answer = typeof a === 'string' && LETTERS.includes(a.trim()) ? LETTERS.indexOf(a.trim()) : index(a, 4, '"answer"');
  const subject = typeof r['subject'] === 'string' && r['subject'] ? `The following are multiple choice questions (with answers) about ${r['subject'].replaceAll('_', ' ')}.\n\n` : '';
  const options = choices.map((c, i) => `${LETTERS[i]}. ${c}`).join('\n');
  return { context: `${subject}${str(r, 'question').trim()}\n${options}\nAnswer: `, choices: LETTERS, answer, ...idOf(r) };
}

const CONVERT: Record<TaskFormat, (r: Row) => Omit<TaskItem, 'line'>> = { jsonl: ours, arc, hellaswag, piqa, mmlu };

/** The format of one parsed line by its fields, or null when it matches none. */
export function detectFormat(r: Row): TaskFormat | null {
  if ('context' in r && 'choices' in r && 'answer' in r) return 'jsonl';
  if ('endings' in r && ('ctx' in r || 'ctx_a' in r)) return 'hellaswag';
  if ('goal' in r && 'sol1' in r) return 'piqa';
  if ('answerKey' in r && 'choices' in r) return 'arc';
  if ('question' in r && Array.isArray(r['choices']) && 'answer' in r) return 'mmlu';
  return null;
}

/** Items of a task file's content. `format` 'auto' takes the format of the first item line (then every line must fit it). */
export function parseTaskFile(content: string, fileName: string, format: TaskFormat | 'auto' = 'auto'): TaskFile {
  const lines = content.replace(/^\uFEFF/, '').split(/\r?\n/);
  let fmt: TaskFormat | null = format === 'auto' ? null : format;
  const items: TaskItem[] = [];
  for (let i = 0; i < lines.length; i++) {
    const text = lines[i]!.trim();
    if (!text) continue;
    const at = (why: string) => new MoePruneError('InvalidArgument', `line ${i + 1}: ${why}`, fileName);
    let row: unknown;
    try {
      row = JSON.parse(text);
    } catch (e) {
      throw at(`not valid JSON (${(e as Error).message})`);
    }
    if (typeof row !== 'object' || row === null || Array.isArray(row)) throw at('not a JSON object');
    if (!fmt) {
      fmt = detectFormat(row as Row);
      if (!fmt)
        throw at(`no known task format: expected "context"/"choices"/"answer", or ARC/OpenBookQA ("question", "choices", "answerKey"), HellaSwag ("ctx", "endings", "label"), PIQA ("goal", "sol1", "sol2", "label") or MMLU ("question", "choices", "answer") fields`);
    }
    try {
      items.push({ ...CONVERT[fmt](row as Row), line: i + 1 });
    } catch (e) {
      if (e instanceof LineError) throw at(`${e.message} (format ${fmt})`);
      throw e;
    }
  }
  if (!items.length) throw new MoePruneError('InvalidArgument', 'the task file holds no items (one JSON object per line)', fileName);
  return { name: fileName, format: fmt!, items };
}

export function isTaskFormat(s: string): s is TaskFormat {
  return (TASK_FORMATS as readonly string[]).includes(s);
}
