/**
 * The checkpoint's own tokenizer: tokenizer.json run by @huggingface/tokenizers (a maintained implementation of
 * the HF tokenizers pipeline: normalizer, pre-tokenizer, BPE/Unigram/WordPiece model, post-processor).
 *
 * Special tokens: when tokenizer_config.json states `add_bos_token` / `add_eos_token`, those flags decide (BOS
 * before, EOS after the text, as transformers 4's fast Llama-style and all slow tokenizers do); otherwise the
 * post-processor in tokenizer.json decides (TemplateProcessing "<s> $A", ByteLevel = nothing added, …).
 * transformers 5.18's TokenizersBackend ignores the config flags and always uses the post-processor; the two
 * agree for every checkpoint whose flags and post-processor are consistent (Mixtral, DeepSeek-V3, Qwen).
 */
import { Tokenizer } from '@huggingface/tokenizers';
import { MoePruneError } from '../core/errors.ts';
import { readJson, type FileSet } from '../formats/bytes.ts';

export const TOKENIZER_FILE = 'tokenizer.json';
export const TOKENIZER_CONFIG_FILE = 'tokenizer_config.json';

export interface TokenizerFlags {
  /** null: the config does not say; the tokenizer.json post-processor decides. */
  readonly addBos: boolean | null;
  readonly addEos: boolean | null;
  readonly bosToken: string | null;
  readonly eosToken: string | null;
}

export interface EncodeOptions {
  /** false: the text's tokens only, no BOS/EOS/template tokens (default true). */
  readonly addSpecialTokens?: boolean;
}

function tokenName(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (typeof v === 'object' && v !== null && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  return null;
}

export function readTokenizerFlags(config: Record<string, unknown> | null): TokenizerFlags {
  const flag = (k: string) => (typeof config?.[k] === 'boolean' ? (config[k] as boolean) : null);
  return { addBos: flag('add_bos_token'), addEos: flag('add_eos_token'), bosToken: tokenName(config?.bos_token), eosToken: tokenName(config?.eos_token) };
}

export class CheckpointTokenizer {
  private readonly bosId: number | null;
  private readonly eosId: number | null;

  constructor(
    private readonly tok: Tokenizer,
    readonly flags: TokenizerFlags,
    file = TOKENIZER_FILE,
  ) {
    const id = (t: string | null, what: string): number | null => {
      if (t === null) return null;
      const i = tok.token_to_id(t);
      if (i === undefined) throw new MoePruneError('InvalidConfig', `${what} "${t}" is not in the vocabulary of ${file}`, TOKENIZER_CONFIG_FILE);
      return i;
    };
    this.bosId = flags.addBos ? id(flags.bosToken, 'bos_token') : null;
    this.eosId = flags.addEos ? id(flags.eosToken, 'eos_token') : null;
    if (flags.addBos && this.bosId === null) throw new MoePruneError('InvalidConfig', 'add_bos_token is true but there is no bos_token', TOKENIZER_CONFIG_FILE);
    if (flags.addEos && this.eosId === null) throw new MoePruneError('InvalidConfig', 'add_eos_token is true but there is no eos_token', TOKENIZER_CONFIG_FILE);
  }

  /** Token ids of `text` under the tokenizer's special-token rule. */
  encode(text: string, opts: EncodeOptions = {}): number[] {
    const special = opts.addSpecialTokens ?? true;
    const explicit = this.flags.addBos !== null || this.flags.addEos !== null;
    if (!special || !explicit) return this.tok.encode(text, { add_special_tokens: special }).ids;
    const ids = this.tok.encode(text, { add_special_tokens: false }).ids;
    if (this.bosId !== null) ids.unshift(this.bosId);
    if (this.eosId !== null) ids.push(this.eosId);
    return ids;
  }

  /**
   * lm-eval's prefix_token_id (HFLM): the bos_token's id when the tokenizer names one, else the eos_token's (its
   * EOT); null when it names neither or the name is not in the vocabulary.
   */
  prefixTokenId(): number | null {
    for (const t of [this.flags.bosToken, this.flags.eosToken]) {
      const i = t === null ? undefined : this.tok.token_to_id(t);
      if (i !== undefined) return i;
    }
    return null;
  }

  decode(ids: readonly number[]): string {
    return ids.length ? this.tok.decode([...ids]) : '';
  }

  /** Special tokens the rule adds around a text ([before], [after]), e.g. [[1], []] for "<s> $A". */
  specialTokenCounts(): { before: number; after: number } {
    const probe = this.encode('a');
    const bare = this.encode('a', { addSpecialTokens: false });
    const before = probe.findIndex((_, i) => probe.slice(i, i + bare.length).every((v, j) => v === bare[j]));
    return before < 0 ? { before: 0, after: probe.length - bare.length } : { before, after: probe.length - bare.length - before };
  }
}

/** Builds the tokenizer from parsed tokenizer.json and (optional) tokenizer_config.json. */
export function createTokenizer(tokenizerJson: unknown, tokenizerConfig: unknown, file = TOKENIZER_FILE): CheckpointTokenizer {
  if (typeof tokenizerJson !== 'object' || tokenizerJson === null || !('model' in tokenizerJson))
    throw new MoePruneError('InvalidConfig', 'not a tokenizers JSON file (no "model")', file);
  const cfg = typeof tokenizerConfig === 'object' && tokenizerConfig !== null && !Array.isArray(tokenizerConfig) ? (tokenizerConfig as Record<string, unknown>) : null;
  let tok: Tokenizer;
  try {
    tok = new Tokenizer(tokenizerJson, cfg ?? {});
  } catch (e) {
    throw new MoePruneError('InvalidConfig', `the tokenizer cannot be built (${(e as Error).message})`, file, { cause: e });
  }
  return new CheckpointTokenizer(tok, readTokenizerFlags(cfg), file);
}

/** Loads tokenizer.json (+ tokenizer_config.json when present) from a checkpoint's files. */
export async function loadTokenizer(files: FileSet, signal?: AbortSignal): Promise<CheckpointTokenizer> {
  const src = files.get(TOKENIZER_FILE);
  if (!src)
    throw new MoePruneError(
      'MissingFile',
      `the checkpoint has no ${TOKENIZER_FILE}; calibration and perplexity tokenize text with the model's own tokenizer: copy ${TOKENIZER_FILE} from the model's original folder`,
      TOKENIZER_FILE,
    );
  const json = await readJson(src, signal);
  const cfgSrc = files.get(TOKENIZER_CONFIG_FILE);
  const cfg = cfgSrc ? await readJson(cfgSrc, signal) : null;
  return createTokenizer(json, cfg);
}
