import { useEffect, useMemo, useRef, useState, type MouseEvent } from 'react';
import type { LayerPlan } from '../pipeline/job.ts';
import { ChartFrame } from './ChartFrame.tsx';

/**
 * Expert × expert router-distance matrix of one layer. Experts are ordered cluster by cluster so that each
 * cluster is a block on the diagonal and can be outlined; cells are painted on a canvas (n² cells, up to 256²),
 * outlines, markers and the hover read-out are SVG/HTML on top.
 */

const SIZE = 400; // px of the matrix itself
const LEFT = 34; // room for row labels
const TOP = 40; // room for column labels and keep/merge markers

/** Sequential scale: close experts are dark, distant ones pale (a blue ramp that prints and reads well). */
const STOPS: ReadonlyArray<readonly [number, number, number]> = [
  [8, 48, 107],
  [33, 113, 181],
  [107, 174, 214],
  [198, 219, 239],
  [247, 251, 255],
];

export function scaleColor(t: number): string {
  const x = Math.min(1, Math.max(0, t)) * (STOPS.length - 1);
  const i = Math.min(STOPS.length - 2, Math.floor(x));
  const f = x - i;
  const a = STOPS[i]!;
  const b = STOPS[i + 1]!;
  const c = (k: 0 | 1 | 2): number => Math.round(a[k] + (b[k] - a[k]) * f);
  return `rgb(${c(0)}, ${c(1)}, ${c(2)})`;
}

const GRADIENT = `linear-gradient(to right, ${STOPS.map((_, i) => scaleColor(i / (STOPS.length - 1))).join(', ')})`;

function fmt(v: number): string {
  if (!Number.isFinite(v)) return '—';
  return Math.abs(v) >= 100 || v === 0 ? v.toFixed(1) : v.toPrecision(3);
}

interface Layout {
  order: number[];
  /** position of each expert in `order` */
  pos: Int32Array;
  blocks: Array<{ start: number; size: number; merged: boolean; members: number[] }>;
  min: number;
  max: number;
}

function layoutOf(lp: LayerPlan): Layout {
  const order: number[] = [];
  const blocks: Layout['blocks'] = [];
  for (const c of lp.clusters) {
    blocks.push({ start: order.length, size: c.members.length, merged: c.action === 'merge', members: c.members });
    order.push(...c.members);
  }
  // Plans that keep experts by a score leave the removed ones in no cluster: they follow, one by one.
  const placed = new Set(order);
  for (let e = 0; e < lp.n; e++)
    if (!placed.has(e)) {
      blocks.push({ start: order.length, size: 1, merged: false, members: [e] });
      order.push(e);
    }
  const pos = new Int32Array(lp.n);
  order.forEach((e, i) => (pos[e] = i));
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < lp.n; i++)
    for (let j = 0; j < lp.n; j++) {
      if (i === j) continue;
      const v = lp.distances[i * lp.n + j]!;
      if (Number.isFinite(v)) {
        if (v < min) min = v;
        if (v > max) max = v;
      }
    }
  if (!Number.isFinite(min)) min = max = 0;
  return { order, pos, blocks, min, max };
}

/** `measure` names the distance shown (router, co-activation or mixed) in the legend. */
export function DistanceHeatmap({ lp, measure = 'router distance' }: { lp: LayerPlan; measure?: string }) {
  const canvas = useRef<HTMLCanvasElement>(null);
  const [hover, setHover] = useState<{ a: number; b: number; x: number; y: number } | null>(null);
  const L = useMemo(() => layoutOf(lp), [lp]);
  const n = lp.n;
  const cell = SIZE / n;
  const kept = useMemo(() => new Set(lp.kept), [lp]);
  const mergedMembers = useMemo(() => new Set(lp.merges.flatMap((m) => m.members)), [lp]);
  const showLabels = n <= 48;
  // Some measures are negative (co-activation: −a_ij / |mean a|); the scale reads from 0 at the closest pair then.
  const shift = L.min < 0 ? -L.min : 0;

  useEffect(() => {
    const cv = canvas.current;
    const ctx = cv?.getContext('2d');
    if (!cv || !ctx) return;
    const dpr = window.devicePixelRatio || 1;
    cv.width = Math.round(SIZE * dpr);
    cv.height = Math.round(SIZE * dpr);
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    const span = L.max - L.min || 1;
    // Cells overlap by a hair so no seams show between them at fractional sizes.
    const pad = n > 64 ? 0.5 : 0;
    for (let r = 0; r < n; r++)
      for (let c = 0; c < n; c++) {
        const a = L.order[r]!;
        const b = L.order[c]!;
        ctx.fillStyle = a === b ? '#e3e7ed' : scaleColor((lp.distances[a * n + b]! - L.min) / span);
        ctx.fillRect(c * cell, r * cell, cell + pad, cell + pad);
      }
  }, [L, lp, n, cell]);

  const onMove = (ev: MouseEvent<HTMLDivElement>) => {
    const box = ev.currentTarget.getBoundingClientRect();
    const x = ev.clientX - box.left;
    const y = ev.clientY - box.top;
    const c = Math.floor(x / cell);
    const r = Math.floor(y / cell);
    if (r < 0 || c < 0 || r >= n || c >= n) return setHover(null);
    setHover({ a: L.order[r]!, b: L.order[c]!, x, y });
  };

  const hoverText = hover
    ? hover.a === hover.b
      ? `expert ${hover.a}`
      : `experts ${hover.a} ↔ ${hover.b}: distance ${fmt(lp.distances[hover.a * n + hover.b]! + shift)}${lp.slotOf[hover.a]! >= 0 && lp.slotOf[hover.a] === lp.slotOf[hover.b] ? ' · same cluster' : ''}`
    : null;

  const roleOf = (e: number): string => (mergedMembers.has(e) ? 'averaged into one slot' : kept.has(e) ? 'kept' : 'removed');
  // The picture's numbers in its order (cluster by cluster), each row naming what happens to its expert.
  const table = () => (
    <table data-testid="heatmap-table-grid">
      <caption className="small muted">
        {measure}
        {shift > 0 ? `, shifted by +${fmt(shift)}` : ''}: smaller is more similar
      </caption>
      <thead>
        <tr>
          <th scope="col">expert</th>
          <th scope="col">role</th>
          {L.order.map((e) => (
            <th scope="col" key={e}>
              {e}
            </th>
          ))}
        </tr>
      </thead>
      <tbody>
        {L.order.map((a) => (
          <tr key={a} data-expert={a}>
            <th scope="row">{a}</th>
            <td>{roleOf(a)}</td>
            {L.order.map((b) => (
              <td key={b} className="mono">
                {a === b ? '—' : fmt(lp.distances[a * n + b]! + shift)}
              </td>
            ))}
          </tr>
        ))}
      </tbody>
    </table>
  );
  return (
    <ChartFrame name="heatmap" title={`${measure[0]!.toUpperCase()}${measure.slice(1)} between the experts of MoE layer ${lp.layer}`} table={table}>
    <div className="heatmap-wrap" data-testid="heatmap" data-layer={lp.layer} data-clusters={lp.clusters.length} data-kept={lp.kept.join(',')} data-n={n}>
      <div className="heatmap" style={{ width: LEFT + SIZE + 2, height: TOP + SIZE + 2 }}>
        <svg className="heatmap-axes" width={LEFT + SIZE + 2} height={TOP + SIZE + 2} aria-hidden>
          {L.order.map((e, i) => {
            const cx = LEFT + (i + 0.5) * cell;
            const cy = TOP + (i + 0.5) * cell;
            const role = kept.has(e) ? (mergedMembers.has(e) ? 'merged' : 'kept') : mergedMembers.has(e) ? 'merged' : 'removed';
            const r = Math.max(2, Math.min(5, cell / 3));
            return (
              <g key={e} className={`hm-${role}`} data-expert={e} data-role={role}>
                {role === 'kept' && <circle cx={cx} cy={TOP - 8} r={r} />}
                {role === 'merged' && <rect x={cx - r} y={TOP - 8 - r} width={2 * r} height={2 * r} transform={`rotate(45 ${cx} ${TOP - 8})`} />}
                {role === 'removed' && <circle cx={cx} cy={TOP - 8} r={r - 0.5} className="hm-hollow" />}
                {showLabels && (
                  <>
                    <text x={cx} y={TOP - 18} textAnchor="middle" className="hm-label">
                      {e}
                    </text>
                    <text x={LEFT - 6} y={cy} dy="0.35em" textAnchor="end" className="hm-label">
                      {e}
                    </text>
                  </>
                )}
              </g>
            );
          })}
        </svg>
        <canvas ref={canvas} className="heatmap-canvas" style={{ left: LEFT, top: TOP, width: SIZE, height: SIZE }} />
        <svg className="heatmap-overlay" style={{ left: LEFT, top: TOP }} width={SIZE + 2} height={SIZE + 2} aria-hidden>
          {L.blocks
            .filter((b) => b.size > 1)
            .map((b) => (
              <rect
                key={b.start}
                data-testid="cluster-outline"
                data-members={b.members.join(',')}
                className={b.merged ? 'hm-outline hm-outline-merged' : 'hm-outline'}
                x={b.start * cell + 1}
                y={b.start * cell + 1}
                width={b.size * cell - 1}
                height={b.size * cell - 1}
              />
            ))}
          {hover && (
            <rect className="hm-hover" x={L.pos[hover.b]! * cell} y={L.pos[hover.a]! * cell} width={cell} height={cell} />
          )}
        </svg>
        <div className="heatmap-hit" style={{ left: LEFT, top: TOP, width: SIZE, height: SIZE }} onMouseMove={onMove} onMouseLeave={() => setHover(null)} data-testid="heatmap-hit" />
        {hover && (
          <div className="heatmap-tip" data-testid="heatmap-tip" style={{ left: LEFT + Math.min(hover.x + 12, SIZE - 150), top: TOP + hover.y + 14 }}>
            {hoverText}
          </div>
        )}
      </div>
      <div className="heatmap-side">
        <div className="legend">
          <div className="legend-bar" style={{ background: GRADIENT }} />
          <div className="legend-ticks mono small">
            <span data-testid="legend-min">{fmt(L.min + shift)}</span>
            <span>{fmt((L.min + L.max) / 2 + shift)}</span>
            <span data-testid="legend-max">{fmt(L.max + shift)}</span>
          </div>
          <div className="legend-caption small muted">
            similar ← {measure} → different{shift > 0 ? ` (shifted by +${fmt(shift)} so the closest pair reads 0)` : ''}
          </div>
        </div>
        <ul className="hm-key small">
          <li>
            <svg width="14" height="14" aria-hidden>
              <circle cx="7" cy="7" r="5" className="hm-kept-dot" />
            </svg>
            kept expert
          </li>
          <li>
            <svg width="14" height="14" aria-hidden>
              <rect x="3" y="3" width="8" height="8" transform="rotate(45 7 7)" className="hm-merged-dot" />
            </svg>
            averaged into one slot
          </li>
          <li>
            <svg width="14" height="14" aria-hidden>
              <circle cx="7" cy="7" r="4.5" className="hm-removed-dot" />
            </svg>
            removed
          </li>
          <li>
            <svg width="14" height="14" aria-hidden>
              <rect x="1.5" y="1.5" width="11" height="11" className="hm-outline" />
            </svg>
            cluster (experts sharing a slot)
          </li>
        </ul>
        <p className="small muted">
          Rows and columns: experts (original index), ordered cluster by cluster, so each cluster is a block on the diagonal. Hover a cell for the distance.
        </p>
      </div>
    </div>
    </ChartFrame>
  );
}
