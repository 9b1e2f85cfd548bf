import { Bar, BarChart, CartesianGrid, Legend, ResponsiveContainer, Tooltip, XAxis, YAxis } from 'recharts';
import type { ExpertPlan } from '../pipeline/job.ts';
import { ChartFrame } from './ChartFrame.tsx';

/** Kept vs removed experts per MoE layer, stacked; click a bar to show that layer's heatmap. */
export function KeptChart({ plan, onPick }: { plan: ExpertPlan; onPick: (index: number) => void }) {
  const data = plan.layers.map((l) => ({ layer: `L${l.layer}`, kept: l.kept.length, removed: l.removed.length }));
  const n = Math.max(...plan.layers.map((l) => l.n));
  return (
    <ChartFrame name="kept-chart" title="Experts kept and removed per MoE layer">
      <div className="kept-chart" data-testid="kept-chart">
        <ResponsiveContainer width="100%" height={210}>
          <BarChart accessibilityLayer={false} data={data} margin={{ top: 6, right: 8, bottom: 16, left: 8 }} barCategoryGap={data.length > 24 ? 1 : '18%'}>
            <CartesianGrid vertical={false} stroke="#eef1f5" />
            <XAxis dataKey="layer" tick={{ fontSize: 11 }} interval="preserveStartEnd" tickLine={false} label={{ value: 'MoE layer', position: 'insideBottom', offset: -10, fontSize: 12 }} />
            <YAxis
              domain={[0, n]}
              allowDecimals={false}
              tick={{ fontSize: 11 }}
              tickLine={false}
              axisLine={false}
              label={{ value: 'experts (count)', angle: -90, position: 'insideLeft', offset: 4, fontSize: 12, style: { textAnchor: 'middle' } }}
            />
            <Tooltip isAnimationActive={false} cursor={{ fill: 'rgba(37, 99, 201, 0.06)' }} />
            <Legend verticalAlign="top" height={24} wrapperStyle={{ fontSize: 12 }} />
            <Bar dataKey="kept" name="kept" stackId="e" fill="#2563c9" isAnimationActive={false} onClick={(_, i) => onPick(i)} />
            <Bar dataKey="removed" name="removed" stackId="e" fill="#d5dbe4" isAnimationActive={false} onClick={(_, i) => onPick(i)} />
          </BarChart>
        </ResponsiveContainer>
      </div>
    </ChartFrame>
  );
}
