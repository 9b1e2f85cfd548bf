import { useEffect, useMemo, useRef, useState, type MouseEvent } from 'react';
import type { MoeLayerStats } from '../pipeline/job.ts';
import { ChartFrame } from './ChartFrame.tsx';
import { scaleColor } from './DistanceHeatmap.tsx';

/**
 * Co-activation of one MoE layer: cell (a, b) counts calibration tokens that chose both experts a and b among
 * their top-k. Painted on a canvas in expert order (no clustering here, unlike the router-distance heatmap);
 * the diagonal (tokens per expert) is grey so it does not swamp the scale.
 */
const SIZE = 260;
/** Room for expert numbers above and left of the matrix (shown up to 32 experts). */
const MARGIN = 20;

export function CoactivationMap({ layer }: { layer: MoeLayerStats }) {
  const canvas = useRef<HTMLCanvasElement>(null);
  const [hover, setHover] = useState<{ a: number; b: number; x: number; y: number } | null>(null);
  const n = layer.experts;
  const co = layer.coactivation;
  const cell = SIZE / n;
  const max = useMemo(() => {
    let m = 0;
    for (let a = 0; a < n; a++) for (let b = 0; b < n; b++) if (a !== b) m = Math.max(m, co[a * n + b]!);
    return m;
  }, [co, n]);

  useEffect(() => {
    const ctx = canvas.current?.getContext('2d');
    const cv = canvas.current;
    if (!cv || !ctx) return;
    const dpr = window.devicePixelRatio || 1;
    cv.width = Math.round(SIZE * dpr);
    cv.height = Math.round(SIZE * dpr);
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    const pad = n > 64 ? 0.5 : 0;
    for (let a = 0; a < n; a++)
      for (let b = 0; b < n; b++) {
        // Many shared tokens → dark, none → pale (the plan heatmap's ramp, reversed).
        ctx.fillStyle = a === b ? '#e3e7ed' : scaleColor(1 - (max ? co[a * n + b]! / max : 0));
        ctx.fillRect(b * cell, a * cell, cell + pad, cell + pad);
      }
  }, [co, n, cell, max]);

  const labels = n <= 32;
  const off = labels ? MARGIN : 0;
  const onMove = (ev: MouseEvent<HTMLDivElement>) => {
    const box = ev.currentTarget.getBoundingClientRect();
    const x = ev.clientX - box.left;
    const y = ev.clientY - box.top;
    const a = Math.floor(y / cell);
    const b = Math.floor(x / cell);
    setHover(a >= 0 && b >= 0 && a < n && b < n ? { a, b, x, y } : null);
  };
  const tip = hover
    ? hover.a === hover.b
      ? `expert ${hover.a}: ${layer.tokensPerExpert[hover.a]} tokens`
      : `experts ${hover.a} + ${hover.b}: ${co[hover.a * n + hover.b]} tokens together`
    : null;

  return (
    <ChartFrame name="coactivation" title={`Co-activation between the experts of MoE layer ${layer.layer}`}>
    <div className="coact" data-testid="coactivation" data-layer={layer.layer} data-n={n} data-max={max}>
      <div className="coact-map" style={{ width: off + SIZE, height: off + SIZE }}>
        {labels &&
          Array.from({ length: n }, (_, e) => (
            <span key={e} aria-hidden>
              <span className="coact-label mono" style={{ left: off + (e + 0.5) * cell, top: off / 2 }}>
                {e}
              </span>
              <span className="coact-label mono" style={{ left: off / 2, top: off + (e + 0.5) * cell }}>
                {e}
              </span>
            </span>
          ))}
        <canvas ref={canvas} style={{ left: off, top: off, width: SIZE, height: SIZE }} />
        <div className="heatmap-hit" style={{ left: off, top: off, width: SIZE, height: SIZE }} onMouseMove={onMove} onMouseLeave={() => setHover(null)} />
        {hover && (
          <div className="heatmap-tip" style={{ left: off + Math.min(hover.x + 12, SIZE - 120), top: off + hover.y + 14 }}>
            {tip}
          </div>
        )}
      </div>
      <div className="coact-legend" style={{ marginLeft: off }}>
        <div className="legend-bar" style={{ background: `linear-gradient(to right, ${[1, 0.75, 0.5, 0.25, 0].map((t) => scaleColor(t)).join(', ')})` }} />
        <div className="legend-ticks mono small">
          <span>0</span>
          <span>{max}</span>
        </div>
        <div className="small muted">tokens (count) that chose both the row and the column expert · rows and columns: experts (original index)</div>
      </div>
    </div>
    </ChartFrame>
  );
}
