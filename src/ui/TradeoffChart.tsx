import { CartesianGrid, Legend, ResponsiveContainer, Scatter, ScatterChart, Tooltip, XAxis, YAxis } from 'recharts';
import type { SeriesKind, TradeoffPoint } from '../pipeline/job.ts';
import type { XAxisChoice, YAxisChoice } from './tradeoff-state.ts';

const COLORS: Record<SeriesKind, string> = { original: '#1f2937', unstructured: '#b54708', experts: '#7c3aed', stun: '#2563c9' };
const STUN_SHADES = ['#2563c9', '#0e9f6e', '#0891b2', '#4f46e5', '#65a30d'];
const CURRENT = '#e11d48';

interface Datum {
  readonly x: number;
  readonly y: number;
  readonly measured: boolean;
  readonly label: string;
}

interface Series {
  readonly key: string;
  readonly name: string;
  readonly color: string;
  readonly data: Datum[];
  readonly line: boolean;
}

const pct = (v: number): number => Math.round(v * 10000) / 100;

function seriesName(p: TradeoffPoint): string {
  if (p.series === 'original') return 'original model';
  if (p.series === 'unstructured') return `unstructured only (${p.method})`;
  if (p.series === 'experts') return 'expert pruning only';
  return `STUN: experts take ${Math.round(100 * (p.share ?? 0))} % of S`;
}

function seriesKey(p: TradeoffPoint): string {
  return p.series === 'stun' ? `stun:${p.share}` : p.series;
}

export function xOf(p: TradeoffPoint, axis: XAxisChoice, originalParams: number): number {
  return axis === 'params' ? pct(p.nonzeroParams / originalParams) : pct(p.totalSparsity);
}

/** The point's y: perplexity, or accuracy (acc, %) when the point was measured with the task; null when it has none. */
export function yOf(p: TradeoffPoint, y: YAxisChoice): number | null {
  return y === 'accuracy' ? (p.acc === undefined ? null : pct(p.acc)) : p.perplexity;
}

function describe(p: TradeoffPoint): string {
  const s = p.series === 'original' ? 'original' : `K = ${Math.round(p.expertsPerLayer * 100) / 100}, total ${pct(p.totalSparsity)} %`;
  return `${s}${p.unstructuredSparsity ? `, s_u ${pct(p.unstructuredSparsity)} %` : ''}`;
}

/** Hollow circles for estimates, filled for measured points; the current setting as a larger ring. */
function Dot(props: { cx?: number; cy?: number; fill?: string; payload?: Datum; current?: boolean }) {
  const { cx, cy, fill, payload } = props;
  if (cx === undefined || cy === undefined || !payload) return null;
  if (props.current)
    return (
      <g>
        <circle cx={cx} cy={cy} r={9} fill="none" stroke={CURRENT} strokeWidth={2.5} />
        {/* A measured setting is a point of its own line, drawn under the ring; an estimate is drawn here, hollow. */}
        {!payload.measured && <circle cx={cx} cy={cy} r={4} fill="#fff" stroke={CURRENT} strokeWidth={2} />}
      </g>
    );
  return <circle cx={cx} cy={cy} r={5} fill={payload.measured ? fill : '#fff'} stroke={fill} strokeWidth={2} />;
}

/**
 * Size against quality: parameters kept (or total sparsity) on x, held-out perplexity on y, one line per way of
 * pruning. Measured points are filled, estimates hollow, the setting on screen is ringed.
 */
export function TradeoffChart({
  points, current, axis, originalParams, y = 'perplexity',
}: { points: readonly TradeoffPoint[]; current: TradeoffPoint | null; axis: XAxisChoice; originalParams: number; y?: YAxisChoice }) {
  const byKey = new Map<string, Series>();
  let shade = 0;
  for (const p of points) {
    const v = yOf(p, y);
    if (v === null) continue;
    const key = seriesKey(p);
    let s = byKey.get(key);
    if (!s) {
      const color = p.series === 'stun' ? STUN_SHADES[shade++ % STUN_SHADES.length]! : COLORS[p.series];
      s = { key, name: seriesName(p), color, data: [], line: p.series !== 'original' };
      byKey.set(key, s);
    }
    s.data.push({ x: xOf(p, axis, originalParams), y: v, measured: p.measured, label: describe(p) });
  }
  const order: Record<SeriesKind, number> = { original: 0, unstructured: 1, stun: 2, experts: 3 };
  const series = [...byKey.values()].sort((a, b) => order[a.key.split(':')[0] as SeriesKind] - order[b.key.split(':')[0] as SeriesKind] || a.key.localeCompare(b.key));
  for (const s of series) s.data.sort((a, b) => a.x - b.x);
  const curY = current ? yOf(current, y) : null;
  const cur = current && curY !== null ? [{ x: xOf(current, axis, originalParams), y: curY, measured: current.measured, label: describe(current) }] : [];
  const xLabel = axis === 'params' ? 'parameters kept, non-zero (% of the original model)' : 'total sparsity over the scope (%)';
  const measured = points.filter((p) => p.measured && yOf(p, y) !== null);
  const yName = y === 'accuracy' ? 'accuracy' : 'perplexity';
  return (
    <div
      className="tradeoff-chart"
      data-testid="tradeoff-chart"
      data-points={measured.length}
      data-series={series.map((s) => s.key).join(',')}
      data-current={current ? (curY === null ? 'none' : current.measured ? 'measured' : 'estimate') : ''}
      data-y={y}
    >
      <h3 className="chart-title">Size against quality: {y === 'accuracy' ? 'task accuracy' : 'held-out perplexity'} of each pruned model</h3>
      <ResponsiveContainer width="100%" height={320}>
        <ScatterChart margin={{ top: 8, right: 16, bottom: 24, left: 12 }} accessibilityLayer={false}>
          <CartesianGrid stroke="#eef1f5" />
          <XAxis
            type="number"
            dataKey="x"
            domain={axis === 'params' ? ['auto', 100] : [0, 'auto']}
            // Nothing keeps more than the whole model: without this the nice ticks would stretch the axis past 100 %.
            allowDataOverflow={axis === 'params'}
            reversed={axis === 'params'}
            tick={{ fontSize: 11 }}
            unit="%"
            name={axis === 'params' ? 'parameters kept' : 'total sparsity'}
            label={{ value: xLabel, position: 'insideBottom', offset: -14, fontSize: 12 }}
          />
          <YAxis
            type="number"
            dataKey="y"
            domain={['auto', 'auto']}
            tick={{ fontSize: 11 }}
            name={yName}
            unit={y === 'accuracy' ? '%' : undefined}
            label={{ value: y === 'accuracy' ? 'task accuracy, acc (higher is better)' : 'held-out perplexity (lower is better)', angle: -90, position: 'insideLeft', offset: 0, fontSize: 12, style: { textAnchor: 'middle' } }}
          />
          <Tooltip
            isAnimationActive={false}
            formatter={(v, name) => [typeof v === 'number' ? (name === 'perplexity' ? v.toFixed(3) : name === 'accuracy' ? `${v.toFixed(1)} %` : `${v} %`) : String(v), String(name)]}
            labelFormatter={() => ''}
          />
          <Legend verticalAlign="top" height={40} wrapperStyle={{ fontSize: 12 }} />
          {series.map((s) => (
            <Scatter key={s.key} name={s.name} data={s.data} fill={s.color} line={s.line ? { stroke: s.color, strokeWidth: 1.5 } : false} shape={<Dot />} isAnimationActive={false} />
          ))}
          {cur.length > 0 && <Scatter name="setting on screen" data={cur} fill={CURRENT} shape={<Dot current />} isAnimationActive={false} />}
        </ScatterChart>
      </ResponsiveContainer>
      <div className="small muted chart-caption">
        Filled: measured on the {y === 'accuracy' ? 'task' : 'held-out text'} with the pruning applied on the fly. {y === 'accuracy' ? 'Accuracy is never estimated.' : ''} Hollow: estimated between measured points of the same line (not measured).
        Ringed: the setting on screen. {axis === 'params' ? 'Right: smaller models.' : 'Right: more pruned.'}
      </div>
    </div>
  );
}
