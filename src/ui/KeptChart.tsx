import { Bar, BarChart, CartesianGrid, ResponsiveContainer, Tooltip, XAxis, YAxis } from 'recharts';
import type { ExpertPlan } from '../pipeline/job.ts';

/** Kept vs removed experts per MoE layer, stacked; click a bar to show that layer's heatmap. */
export function KeptChart({ plan, onPick }: { plan: ExpertPlan; onPick: (index: number) => void }) {
  const data = plan.layers.map((l) => ({ layer: `L${l.layer}`, kept: l.kept.length, removed: l.removed.length }));
  const n = Math.max(...plan.layers.map((l) => l.n));
  return (
    <div className="kept-chart" data-testid="kept-chart">
      <ResponsiveContainer width="100%" height={170}>
        <BarChart accessibilityLayer={false} data={data} margin={{ top: 6, right: 8, bottom: 0, left: -18 }} barCategoryGap={data.length > 24 ? 1 : '18%'}>
          <CartesianGrid vertical={false} stroke="#eef1f5" />
          <XAxis dataKey="layer" tick={{ fontSize: 11 }} interval="preserveStartEnd" tickLine={false} />
          <YAxis domain={[0, n]} allowDecimals={false} tick={{ fontSize: 11 }} tickLine={false} axisLine={false} />
          <Tooltip isAnimationActive={false} cursor={{ fill: 'rgba(37, 99, 201, 0.06)' }} />
          <Bar dataKey="kept" name="kept" stackId="e" fill="#2563c9" isAnimationActive={false} onClick={(_, i) => onPick(i)} />
          <Bar dataKey="removed" name="removed" stackId="e" fill="#d5dbe4" isAnimationActive={false} onClick={(_, i) => onPick(i)} />
        </BarChart>
      </ResponsiveContainer>
    </div>
  );
}
