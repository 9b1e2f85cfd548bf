import { Bar, BarChart, CartesianGrid, Cell, Legend, ReferenceLine, ResponsiveContainer, Tooltip, XAxis, YAxis, type XAxisTickContentProps } from 'recharts';
import type { MoeLayerStats } from '../pipeline/job.ts';
import { ChartFrame } from './ChartFrame.tsx';

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
  const table = () => (
    <table data-testid="routed-table-grid">
      <caption className="small muted">even share: {even.toFixed(1)} tokens per expert</caption>
      <thead>
        <tr>
          <th scope="col">expert</th>
          <th scope="col">tokens routed</th>
          <th scope="col">of the even share</th>
        </tr>
      </thead>
      <tbody>
        {counts.map((c, e) => (
          <tr key={e} data-expert={e}>
            <th scope="row">{e}</th>
            <td className="mono">{c}</td>
            <td className="mono">{even > 0 ? `${Math.round((100 * c) / even)} %` : '—'}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
  return (
    <ChartFrame name="routed-chart" title={`Calibration tokens routed to each expert, MoE layer ${layer.layer}`} table={table}>
    <div
      className="routed-chart"
      data-testid="routed-chart"
      data-layer={layer.layer}
      data-counts={counts.join(',')}
      data-sum={counts.reduce((a, b) => a + b, 0)}
    >
      <ResponsiveContainer width="100%" height={240}>
        <BarChart accessibilityLayer={false} data={data} margin={{ top: 8, right: 8, bottom: 16, left: 8 }} barCategoryGap={many ? 0 : '15%'}>
          <CartesianGrid vertical={false} stroke="#eef1f5" />
          <XAxis dataKey="expert" tick={tick} interval={many ? 'preserveStartEnd' : 0} tickLine={false} label={{ value: 'expert (original index)', position: 'insideBottom', offset: -10, fontSize: 12 }} />
          <YAxis
            allowDecimals={false}
            tick={{ fontSize: 11 }}
            tickLine={false}
            axisLine={false}
            label={{ value: 'tokens (count)', angle: -90, position: 'insideLeft', offset: 4, fontSize: 12, style: { textAnchor: 'middle' } }}
          />
          <Legend verticalAlign="top" height={24} wrapperStyle={{ fontSize: 12 }} />
          <Tooltip
            isAnimationActive={false}
            cursor={{ fill: 'rgba(37, 99, 201, 0.06)' }}
            labelFormatter={(e) => `expert ${String(e)}`}
            formatter={(v) => [`${String(v)} tokens`, 'routed']}
          />
          <ReferenceLine y={even} stroke="#8a94a6" strokeDasharray="4 3" ifOverflow="extendDomain" />
          <Bar dataKey="tokens" name="tokens routed (any top-k slot)" fill="#2563c9" isAnimationActive={false}>
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
    </ChartFrame>
  );
}
