import { Bar, BarChart, CartesianGrid, Cell, ReferenceLine, ResponsiveContainer, Tooltip, XAxis, YAxis, type XAxisTickContentProps } from 'recharts';
import type { MoeLayerStats } from '../pipeline/job.ts';

/**
 * Calibration tokens routed to each expert of one MoE layer (any top-k slot). The dashed line is the even share
 * (tokens × top-k / experts); experts that got no token are marked in red on the axis.
 */
export function RoutedChart({ layer }: { layer: MoeLayerStats }) {
  const counts = Array.from(layer.tokensPerExpert);
  const data = counts.map((tokens, e) => ({ expert: String(e), tokens }));
  const even = (layer.tokens * layer.topK) / layer.experts;
  const many = layer.experts > 32;
  // Zero-height bars are invisible, so an expert without tokens is marked by a red label and a dot on the axis.
  const tick = ({ x, y, payload }: XAxisTickContentProps) => {
    const zero = counts[Number(payload.value)] === 0;
    return (
      <g transform={`translate(${Number(x)}, ${Number(y)})`}>
        {zero && <circle cy={-4} r={3} fill="#b42318" />}
        <text dy={10} textAnchor="middle" fontSize={11} fill={zero ? '#b42318' : '#5d6b7e'} fontWeight={zero ? 600 : 400}>
          {String(payload.value)}
        </text>
      </g>
    );
  };
  return (
    <div
      className="routed-chart"
      data-testid="routed-chart"
      data-layer={layer.layer}
      data-counts={counts.join(',')}
      data-sum={counts.reduce((a, b) => a + b, 0)}
    >
      <ResponsiveContainer width="100%" height={200}>
        <BarChart accessibilityLayer={false} data={data} margin={{ top: 8, right: 8, bottom: 0, left: -8 }} barCategoryGap={many ? 0 : '15%'}>
          <CartesianGrid vertical={false} stroke="#eef1f5" />
          <XAxis dataKey="expert" tick={tick} interval={many ? 'preserveStartEnd' : 0} tickLine={false} />
          <YAxis allowDecimals={false} tick={{ fontSize: 11 }} tickLine={false} axisLine={false} />
          <Tooltip
            isAnimationActive={false}
            cursor={{ fill: 'rgba(37, 99, 201, 0.06)' }}
            labelFormatter={(e) => `expert ${String(e)}`}
            formatter={(v) => [`${String(v)} tokens`, 'routed']}
          />
          <ReferenceLine y={even} stroke="#8a94a6" strokeDasharray="4 3" ifOverflow="extendDomain" />
          <Bar dataKey="tokens" isAnimationActive={false}>
            {counts.map((c, e) => (
              <Cell key={e} fill={c === 0 ? '#b42318' : '#2563c9'} />
            ))}
          </Bar>
        </BarChart>
      </ResponsiveContainer>
      <div className="small muted chart-caption">
        tokens routed to each expert of MoE layer {layer.layer} · dashed: even share ({even.toFixed(1)}){counts.includes(0) ? ' · red: no token' : ''}
      </div>
    </div>
  );
}
