import { Bar, BarChart, CartesianGrid, Legend, ReferenceLine, ResponsiveContainer, Tooltip, XAxis, YAxis } from 'recharts';
import type { StageTwoResult } from '../pipeline/job.ts';
import { ChartFrame } from './ChartFrame.tsx';

const pct = (v: number): number => Math.round(v * 10000) / 100;

/**
 * Per decoder layer: the sparsity achieved over the layer's scope (whole experts removed included) and the
 * unstructured ratio applied to what remained (one s_u for every layer, or OWL's spread around it). Dashed: the
 * overall target S; dotted: the overall achieved sparsity.
 */
export function Stage2Chart({ result }: { result: StageTwoResult }) {
  const sp = result.sparsity;
  const layers = Object.keys(sp.byLayer)
    .map(Number)
    .sort((a, b) => a - b);
  const data = layers.map((l) => {
    const b = sp.byLayer[String(l)]!;
    return { layer: String(l), achieved: pct(b.achieved), ratio: pct(b.target) };
  });
  const target = sp.target ?? null;
  const owl = result.owl !== null;
  return (
    <ChartFrame name="stage2-chart" title={`Sparsity per decoder layer${owl ? ' (OWL ratios per layer)' : ''}`} titled>
    <div
      className="stage2-chart"
      data-testid="stage2-chart"
      data-layers={layers.join(',')}
      data-achieved={layers.map((l) => sp.byLayer[String(l)]!.achieved).join(',')}
      data-ratios={layers.map((l) => sp.byLayer[String(l)]!.target).join(',')}
    >
      <h3 className="chart-title">Sparsity per decoder layer{owl ? ' (OWL ratios per layer)' : ''}</h3>
      <ResponsiveContainer width="100%" height={240}>
        <BarChart accessibilityLayer={false} data={data} margin={{ top: 8, right: 12, bottom: 18, left: 8 }} barCategoryGap={data.length > 24 ? 1 : '20%'}>
          <CartesianGrid vertical={false} stroke="#eef1f5" />
          <XAxis dataKey="layer" tick={{ fontSize: 11 }} interval="preserveStartEnd" tickLine={false} label={{ value: 'decoder layer', position: 'insideBottom', offset: -10, fontSize: 12 }} />
          <YAxis
            domain={[0, 100]}
            tick={{ fontSize: 11 }}
            tickLine={false}
            axisLine={false}
            unit="%"
            label={{ value: 'sparsity (% of parameters)', angle: -90, position: 'insideLeft', offset: 4, fontSize: 12, style: { textAnchor: 'middle' } }}
          />
          <Tooltip isAnimationActive={false} cursor={{ fill: 'rgba(37, 99, 201, 0.06)' }} labelFormatter={(l) => `layer ${String(l)}`} formatter={(v, name) => [`${String(v)} %`, name]} />
          <Legend verticalAlign="top" height={28} wrapperStyle={{ fontSize: 12 }} itemSorter="dataKey" />
          {target !== null && <ReferenceLine y={pct(target)} stroke="#b54708" strokeDasharray="6 4" ifOverflow="extendDomain" />}
          <ReferenceLine y={pct(sp.achieved)} stroke="#2563c9" strokeDasharray="2 3" ifOverflow="extendDomain" />
          <Bar dataKey="achieved" name="achieved over the layer's scope" fill="#2563c9" isAnimationActive={false} />
          <Bar dataKey="ratio" name={owl ? 'OWL ratio applied to the rest' : 'ratio applied to the rest (s_u)'} fill="#f2a65a" isAnimationActive={false} />
        </BarChart>
      </ResponsiveContainer>
      <div className="small muted chart-caption">
        {target !== null ? (
          <>
            <span className="line-key line-target" /> overall target {pct(target)} % ·{' '}
          </>
        ) : (
          `${sp.nm} pattern · `
        )}
        <span className="line-key line-achieved" /> overall achieved {pct(sp.achieved)} % · bars: per layer, whole experts removed included (blue) and the unstructured ratio applied to what remained
        {owl ? ' (OWL: higher where a layer has fewer outlier scores)' : ''}
      </div>
    </div>
    </ChartFrame>
  );
}
