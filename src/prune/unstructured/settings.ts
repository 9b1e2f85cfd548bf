/**
 * STUN stage 2 settings: which unstructured method, how much, over which linear maps, and what happens to experts
 * no calibration token reaches. One set of defaults for the page and the CLI.
 */
import { MoePruneError } from '../../core/errors.ts';

export type UnstructuredMethod = 'wanda' | 'owl' | 'magnitude';
/** Which linear maps stage 2 prunes. Embeddings, norms and lm_head never. */
export type PruneScope = 'experts' | 'experts+shared' | 'all';
/** Experts without calibration tokens: statistics from every token entering the layer, magnitude scores, or left dense. */
export type UnroutedPolicy = 'all-tokens' | 'magnitude' | 'dense';
/** What a linear map is, for scope and reporting. */
export type MatrixKind = 'expert' | 'shared' | 'attention' | 'dense' | 'router';

export interface NmPattern {
  /** Pruned per group. */
  readonly n: number;
  /** Group width (consecutive inputs). */
  readonly m: number;
}

export interface UnstructuredSettings {
  readonly method: UnstructuredMethod;
  /** Total target sparsity S over the scope, expert removal included; null with N:M (the pattern fixes the ratio). */
  readonly sparsity: number | null;
  readonly nm: NmPattern | null;
  /** OWL: outlier threshold M (a score is an outlier above M·mean of its layer's scores). */
  readonly owlM: number;
  /** OWL: λ, the largest deviation of a layer's ratio from the target. */
  readonly owlLambda: number;
  readonly scope: PruneScope;
  readonly unrouted: UnroutedPolicy;
}

export const UNSTRUCTURED_DEFAULTS = {
  method: 'wanda',
  nm: null,
  owlM: 5,
  owlLambda: 0.08,
  scope: 'experts',
  unrouted: 'all-tokens',
} as const satisfies Omit<UnstructuredSettings, 'sparsity'>;

export const METHODS: readonly UnstructuredMethod[] = ['wanda', 'owl', 'magnitude'];
export const SCOPES: readonly PruneScope[] = ['experts', 'experts+shared', 'all'];
export const UNROUTED_POLICIES: readonly UnroutedPolicy[] = ['all-tokens', 'magnitude', 'dense'];
export const MATRIX_KINDS: readonly MatrixKind[] = ['expert', 'shared', 'attention', 'dense', 'router'];

export const SCOPE_KINDS: Readonly<Record<PruneScope, ReadonlySet<MatrixKind>>> = {
  experts: new Set(['expert']),
  'experts+shared': new Set(['expert', 'shared']),
  all: new Set(MATRIX_KINDS),
};

/** Wanda and OWL score weights by their inputs' norms: they need calibration text. */
export const needsCalibration = (m: UnstructuredMethod): boolean => m !== 'magnitude';

/** "2:4" → {n: 2, m: 4}; n < m, both positive integers. */
export function parseNm(text: string): NmPattern {
  const m = /^(\d+):(\d+)$/.exec(text.trim());
  const n = m ? Number(m[1]) : NaN;
  const w = m ? Number(m[2]) : NaN;
  if (!m || !(n >= 1) || !(w > n)) throw new MoePruneError('InvalidArgument', `N:M pattern "${text}" must be two integers n:m with 1 ≤ n < m (e.g. 2:4)`);
  return { n, m: w };
}

export const formatNm = (p: NmPattern | null): string | null => (p ? `${p.n}:${p.m}` : null);

/**
 * STUN's split of a total target: with a share s_e of the scope already removed with whole experts, the rest is
 * pruned at s_u = (S − s_e)/(1 − s_e), so that s_e + (1 − s_e)·s_u = S.
 */
export function unstructuredRatio(total: number, expertShare: number): number {
  if (!(total >= 0 && total < 1)) throw new MoePruneError('InvalidArgument', `total sparsity ${total} must be in [0, 1)`);
  if (total + 1e-12 < expertShare)
    throw new MoePruneError(
      'InvalidArgument',
      `total sparsity ${total} is below what expert pruning alone removes (${expertShare.toFixed(4)} of the scope); raise --sparsity or keep more experts`,
    );
  return expertShare >= 1 ? 0 : Math.max(0, (total - expertShare) / (1 - expertShare));
}

/** Rejects settings that contradict each other, before any work starts. */
export function checkUnstructuredSettings(s: UnstructuredSettings): void {
  if (s.nm && s.sparsity !== null)
    throw new MoePruneError('InvalidArgument', `an N:M pattern fixes the unstructured ratio (${s.nm.n}/${s.nm.m}); give either --sparsity or --nm, not both`);
  if (!s.nm && s.sparsity === null) throw new MoePruneError('InvalidArgument', 'give a total sparsity (--sparsity S) or an N:M pattern (--nm N:M)');
  if (s.nm && s.method === 'owl') throw new MoePruneError('InvalidArgument', 'OWL sets a ratio per layer; it cannot be combined with a fixed N:M pattern');
  if (!(s.owlM > 0)) throw new MoePruneError('InvalidArgument', `OWL's M must be positive (got ${s.owlM})`);
  if (!(s.owlLambda >= 0 && s.owlLambda < 1)) throw new MoePruneError('InvalidArgument', `OWL's λ must be in [0, 1) (got ${s.owlLambda})`);
}
