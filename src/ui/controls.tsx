import type { ReactNode } from 'react';

/** A progress bar; `done` and `total` are also data attributes so tests read the numbers, not the width. */
export function Bar({ done, total, testid }: { done: number; total: number; testid?: string }) {
  const pct = total > 0 ? Math.min(100, (done / total) * 100) : 0;
  return (
    <div className="bar" data-testid={testid} data-done={done} data-total={total}>
      <div className="bar-fill" style={{ width: `${pct}%` }} />
    </div>
  );
}

/** A labelled form row with an optional hint under it. */
export function Field({ label, hint, children }: { label: string; hint?: string; children: ReactNode }) {
  return (
    <div className="field">
      <div className="field-label">{label}</div>
      <div className="field-body">{children}</div>
      {hint && <div className="field-hint small muted">{hint}</div>}
    </div>
  );
}

/** A radio group drawn as joined buttons. `offReason(v)` returns why option v is unavailable (disabled, shown as its
 * tooltip; "" disables without one) or undefined when it is available; `data` adds data-* attributes to the group. */
export function Segmented<T extends string>({
  value,
  options,
  onChange,
  testid,
  offReason,
  data,
}: {
  value: T;
  options: ReadonlyArray<readonly [T, string]>;
  onChange: (v: T) => void;
  testid: string;
  offReason?: (v: T) => string | undefined;
  data?: Record<`data-${string}`, string>;
}) {
  return (
    <div className="segmented" role="radiogroup" data-testid={testid} {...data}>
      {options.map(([v, label]) => {
        const why = offReason?.(v);
        return (
          <button
            key={v}
            type="button"
            role="radio"
            aria-checked={v === value}
            className={v === value ? 'on' : ''}
            data-value={v}
            disabled={why !== undefined}
            title={why || undefined}
            onClick={() => onChange(v)}
          >
            {label}
          </button>
        );
      })}
    </div>
  );
}
