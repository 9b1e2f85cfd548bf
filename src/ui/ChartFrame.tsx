import { useRef, useState, type ReactNode } from 'react';
import { chartSvg, downloadBlob, fileStem, svgToPng } from './chart-export.ts';

/**
 * Any chart with "PNG" and "SVG" buttons that save what is drawn (title, axes, legend and caption included).
 * `title` is drawn as the chart's heading unless the chart draws its own (`titled`); `name` prefixes the buttons'
 * test ids (`${name}-png`, `${name}-svg`). `table` renders the same numbers as a table, shown by a "Show as table" toggle
 * (`${name}-table-toggle`) for keyboard and screen-reader users; it is not part of the saved picture.
 */
export function ChartFrame({
  name, title, titled = false, table, children,
}: { name: string; title: string; titled?: boolean; table?: () => ReactNode; children: ReactNode }) {
  const body = useRef<HTMLDivElement>(null);
  const [error, setError] = useState<string | null>(null);
  const [asTable, setAsTable] = useState(false);
  const save = async (kind: 'svg' | 'png') => {
    const root = body.current;
    if (!root) return;
    setError(null);
    try {
      const { svg, width, height } = chartSvg(root, title);
      const blob = kind === 'svg' ? new Blob([svg], { type: 'image/svg+xml' }) : await svgToPng(svg, width, height);
      downloadBlob(blob, `${fileStem(title)}.${kind}`);
    } catch (e) {
      setError(`Could not save the chart as ${kind.toUpperCase()}: ${e instanceof Error ? e.message : String(e)}`);
    }
  };
  return (
    <figure className="chart-frame" data-testid={`${name}-frame`}>
      <div className="chart-frame-tools" data-export="skip">
        {table && (
          <button type="button" className="btn btn-small" data-testid={`${name}-table-toggle`} aria-pressed={asTable} onClick={() => setAsTable((v) => !v)}>
            {asTable ? 'Hide table' : 'Show as table'}
          </button>
        )}
        <span className="small muted">Save:</span>
        <button type="button" className="btn btn-small" data-testid={`${name}-png`} onClick={() => void save('png')} aria-label={`Save “${title}” as PNG`}>
          PNG
        </button>
        <button type="button" className="btn btn-small" data-testid={`${name}-svg`} onClick={() => void save('svg')} aria-label={`Save “${title}” as SVG`}>
          SVG
        </button>
      </div>
      <div ref={body} className="chart-frame-body">
        {!titled && <h3 className="chart-title">{title}</h3>}
        {children}
      </div>
      {table && asTable && (
        <div className="chart-table" data-export="skip" data-testid={`${name}-table`} role="region" aria-label={`${title}: table`} tabIndex={0}>
          {table()}
        </div>
      )}
      {error && (
        <div className="notice notice-warn small" role="alert" data-export="skip">
          {error}
        </div>
      )}
    </figure>
  );
}
