import type { KeyboardEvent, ReactNode } from 'react';

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
  const enabled = options.filter(([v]) => offReason?.(v) === undefined).map(([v]) => v);
  // A radio group is one tab stop (the checked option); arrow keys move the choice, skipping unavailable options.
  const onKeyDown = (ev: KeyboardEvent<HTMLDivElement>): void => {
    const step = ev.key === 'ArrowRight' || ev.key === 'ArrowDown' ? 1 : ev.key === 'ArrowLeft' || ev.key === 'ArrowUp' ? -1 : 0;
    if (!step || enabled.length === 0) return;
    ev.preventDefault();
    const at = enabled.indexOf(value);
    const next = enabled[(at + step + enabled.length) % enabled.length]!;
    onChange(next);
    ev.currentTarget.querySelector<HTMLButtonElement>(`[data-value="${CSS.escape(next)}"]`)?.focus();
  };
  const focusable = enabled.includes(value) ? value : enabled[0];
  return (
    <div className="segmented" role="radiogroup" data-testid={testid} onKeyDown={onKeyDown} {...data}>
      {options.map(([v, label]) => {
        const why = offReason?.(v);
        return (
          <button
            key={v}
            type="button"
            role="radio"
            aria-checked={v === value}
            tabIndex={v === focusable ? 0 : -1}
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

/** Slider plus number box, both editing one integer (clamped to [min, max]); `disabled` greys both out. */
export function IntControl({
  value,
  min,
  max,
  onChange,
  testid,
  suffix,
  disabled,
}: {
  value: number;
  min: number;
  max: number;
  onChange: (v: number) => void;
  testid: string;
  suffix?: string;
  disabled?: boolean;
}) {
  const set = (raw: string) => {
    const v = Math.round(Number(raw));
    if (Number.isFinite(v)) onChange(Math.min(max, Math.max(min, v)));
  };
  return (
    <div className="intcontrol">
      <input type="range" min={min} max={max} step={1} value={value} disabled={disabled} data-testid={`${testid}-slider`} onChange={(e) => set(e.currentTarget.value)} />
      <input type="number" min={min} max={max} step={1} value={value} disabled={disabled} data-testid={`${testid}-input`} onChange={(e) => set(e.currentTarget.value)} />
      {suffix && <span className="muted small">{suffix}</span>}
    </div>
  );
}
