import type { ReactNode } from 'react';
import { expertsPerLayerText } from '../models/catalogue.ts';
import { FAMILIES, familyById } from '../models/families.ts';
import type { LoneFileSummary } from '../models/lone-file.ts';
import type { CheckpointSummary } from '../models/types.ts';
import { formatBytes, formatCount, formatRanges } from '../core/format.ts';
import { storeCurrent, useApp, type CurrentModel } from './state.ts';

/** "0–3, 5, 7–9" for a sorted list of layer indices. */
const ranges = (xs: readonly number[]): string => formatRanges(xs, '–');

function routingText(r: CheckpointSummary['routing']): string {
  const bits = [r.scoring, r.normTopkProb ? 'renormalised top-k' : 'no renormalisation'];
  if (r.groups) bits.push(`group-limited ${r.groups.topkGroup} of ${r.groups.nGroup} groups`);
  if (r.routedScalingFactor !== undefined && r.routedScalingFactor !== 1) bits.push(`scaled ×${r.routedScalingFactor}`);
  if (r.correctionBias) bits.push('score-correction bias');
  return bits.join(', ');
}

function Fact({ label, children, testid }: { label: string; children: ReactNode; testid?: string }) {
  return (
    <div className="fact">
      <dt>{label}</dt>
      <dd data-testid={testid}>{children}</dd>
    </div>
  );
}

function NameList({ title, names, testid }: { title: string; names: readonly string[]; testid: string }) {
  return (
    <div className={`namelist${names.length ? ' namelist-bad' : ''}`} data-testid={testid} data-count={names.length}>
      <h3>
        {title} <span className="chip">{names.length}</span>
      </h3>
      {names.length > 0 && (
        <details>
          <summary>show</summary>
          <ul className="mono small">
            {names.slice(0, 200).map((n) => (
              <li key={n}>{n}</li>
            ))}
            {names.length > 200 && <li>… and {names.length - 200} more</li>}
          </ul>
        </details>
      )}
    </div>
  );
}

function fileRole(name: string, shards: readonly string[]): string {
  if (shards.includes(name)) return 'shard';
  if (name === 'config.json') return 'config';
  if (name.endsWith('.index.json')) return 'index';
  if (name.startsWith('tokenizer')) return 'tokenizer';
  return 'other';
}

function StorageActions({ cur }: { cur: CurrentModel }) {
  const ingesting = useApp((s) => s.ingest !== null);
  if (cur.mode === 'stored')
    return (
      <span className="chip chip-ok" data-testid="mode">
        Stored in this browser
      </span>
    );
  if (cur.lone)
    return (
      <span className="chip chip-warn" data-testid="mode" title="A single file without its config.json: only its header can be read">
        One file, no config.json · header only
      </span>
    );
  const unreadable = !cur.inspecting && cur.summary === null;
  if (unreadable)
    return (
      <span className="chip chip-warn" data-testid="mode">
        Not loadable · fix the file named above
      </span>
    );
  const partial = cur.match && !cur.match.record.complete;
  const already = cur.match?.record.complete;
  return (
    <div className="actions">
      <span className="chip" data-testid="mode" title="The pipeline reads the dropped files directly; nothing is copied">
        Reading the dropped files · nothing copied
      </span>
      <button className="btn btn-primary" data-testid="store-button" disabled={ingesting} onClick={() => void storeCurrent()}>
        {already
          ? 'Open stored copy'
          : partial
            ? `Resume storing (${formatBytes(cur.match!.record.totalBytes - cur.match!.storedBytes)} left)`
            : 'Store in browser'}
      </button>
    </div>
  );
}

/** Rows of the tensor table shown at once; the rest is counted (a real shard lists hundreds). */
const LONE_ROWS = 200;

/** A lone weights file: what its header says, the checks it passed, and why there is no family. */
function LoneFile({ d }: { d: LoneFileSummary }) {
  return (
    <div data-testid="lone-file">
      <p className="partial" data-testid="lone-needs-config">
        Header only: {d.needsConfig}.
      </p>
      <dl className="facts">
        <Fact label="Tensors" testid="lone-tensor-count">
          {d.tensorCount}
        </Fact>
        <Fact label="Elements" testid="lone-elements">
          {d.elements.toLocaleString('en-US')}
        </Fact>
        <Fact label="Size" testid="lone-bytes">
          {formatBytes(d.bytesOnDisk)} on disk · header {formatBytes(d.headerBytes)} · {formatBytes(d.tensorBytes)} tensor data
        </Fact>
        <Fact label="dtypes" testid="lone-dtypes">
          {Object.entries(d.dtypes)
            .sort((a, b) => b[1] - a[1])
            .map(([k, n]) => (
              <span className="chip" key={k}>
                {k} × {n}
              </span>
            ))}
        </Fact>
        <Fact label="Metadata" testid="lone-metadata">
          {d.metadata ? Object.entries(d.metadata).map(([k, v]) => `${k} = ${v}`).join(' · ') || 'empty' : 'none'}
        </Fact>
        <Fact label="Checks" testid="lone-checks">
          <ul className="small checklist">
            {d.checks.map((c) => (
              <li key={c}>✓ {c}</li>
            ))}
          </ul>
        </Fact>
      </dl>
      <h3>Tensors</h3>
      <table className="files" data-testid="lone-tensors">
        <thead>
          <tr>
            <th>Tensor</th>
            <th>dtype</th>
            <th>Shape</th>
            <th className="num">Bytes</th>
          </tr>
        </thead>
        <tbody>
          {d.tensors.slice(0, LONE_ROWS).map((t) => (
            <tr key={t.name} data-tensor={t.name}>
              <td className="mono">{t.name}</td>
              <td className="mono">{t.dtype}</td>
              <td className="mono">[{t.shape.join(', ')}]</td>
              <td className="num mono">{t.bytes.toLocaleString('en-US')}</td>
            </tr>
          ))}
          {d.tensors.length > LONE_ROWS && (
            <tr>
              <td colSpan={4} className="muted">
                … and {d.tensors.length - LONE_ROWS} more
              </td>
            </tr>
          )}
        </tbody>
      </table>
    </div>
  );
}

export function ModelSummary() {
  const cur = useApp((s) => s.current);
  if (!cur)
    return (
      <section className="card empty" data-testid="model-summary-empty">
        <h2>No checkpoint loaded</h2>
        <p className="muted">
          Drop a Hugging Face MoE checkpoint folder ({FAMILIES.map((f) => f.label).join(', ')}) or open one stored in this browser. Only
          the headers are read to summarise it.
        </p>
      </section>
    );
  const s = cur.summary;
  const shards = s?.shards ?? [];
  return (
    <section className="card summary" data-testid="model-summary" data-family={s?.family ?? ''}>
      <div className="card-head">
        <div>
          <h2 data-testid="model-name">{cur.name}</h2>
          {s && (
            <div className="muted">
              {[cur.name === s.architecture ? null : s.architecture, s.modelType, s.quantization].filter(Boolean).join(' · ')}
            </div>
          )}
        </div>
        <StorageActions cur={cur} />
      </div>

      {cur.inspecting && <div className="muted">Reading headers…</div>}
      {!cur.inspecting && !s && !cur.lone && <div className="muted">This checkpoint could not be summarised; see the message above.</div>}
      {cur.lone && <LoneFile d={cur.lone} />}

      {s && (
        <>
          <div className="headline">
            <div className="stat">
              <div className="stat-value" data-testid="summary-family">
                {familyById(s.family).label}
              </div>
              <div className="stat-label">family</div>
            </div>
            <div className="stat">
              <div className="stat-value" data-testid="summary-experts">
                {expertsPerLayerText(s)}
              </div>
              <div className="stat-label">experts / layer</div>
            </div>
            <div className="stat">
              <div className="stat-value" data-testid="summary-topk">
                {s.topK}
              </div>
              <div className="stat-label">top-k</div>
            </div>
            <div className="stat">
              <div className="stat-value" data-testid="summary-moe-layers">
                {s.moeLayers.length}
                <span className="stat-of"> / {s.layers}</span>
              </div>
              <div className="stat-label">MoE layers</div>
            </div>
            <div className="stat">
              <div className="stat-value" data-testid="summary-params">
                {formatCount(s.params.total)}
              </div>
              <div className="stat-label">parameters</div>
            </div>
          </div>

          <dl className="facts">
            <Fact label="Layers" testid="summary-layers">
              {s.layers} ({s.moeLayers.length} MoE: {ranges(s.moeLayers)}
              {s.denseLayers.length ? `; dense: ${ranges(s.denseLayers)}` : ''})
            </Fact>
            <Fact label="Routing" testid="summary-routing">
              {routingText(s.routing)}
            </Fact>
            <Fact label="Shared experts" testid="summary-shared">
              {s.sharedExperts ? `${s.sharedExperts.count} × ${s.sharedExperts.intermediateSize} wide` : 'none'}
            </Fact>
            <Fact label="Hidden size" testid="summary-hidden">
              {s.hiddenSize}
            </Fact>
            <Fact label="Expert width" testid="summary-expert-size">
              {s.expertIntermediateSize}
            </Fact>
            <Fact label="Vocabulary">{s.vocabSize}</Fact>
            <Fact label="Expert layout">{s.layout === 'fused' ? 'fused [E, …] tensors' : 'one tensor per expert'}</Fact>
            <Fact label="Expert count field">
              <code>{s.expertCountField}</code>
            </Fact>
            <Fact label="Parameters" testid="summary-param-split">
              {formatCount(s.params.total)} total · {formatCount(s.params.routedExperts)} in routed experts · {formatCount(s.params.perExpert)} per expert
            </Fact>
            <Fact label="Size" testid="summary-bytes">
              {formatBytes(s.bytesOnDisk)} on disk · {formatBytes(s.tensorBytes)} tensor data
            </Fact>
            <Fact label="dtypes" testid="summary-dtypes">
              {Object.entries(s.dtypes)
                .sort((a, b) => b[1] - a[1])
                .map(([d, n]) => (
                  <span className="chip" key={d}>
                    {d} × {n}
                  </span>
                ))}
            </Fact>
          </dl>

          <div className="namelists">
            <NameList title="Missing tensors" names={s.missingTensors} testid="summary-missing" />
            <NameList title="Extra tensors" names={s.extraTensors} testid="summary-extra" />
          </div>
        </>
      )}

      <h3>Files</h3>
      <table className="files" data-testid="summary-files">
        <thead>
          <tr>
            <th>File</th>
            <th>Kind</th>
            <th className="num">Size</th>
          </tr>
        </thead>
        <tbody>
          {cur.files.map((f) => (
            <tr key={f.name} data-file={f.name}>
              <td className="mono">{f.name}</td>
              <td>{fileRole(f.name, shards)}</td>
              <td className="num mono">{formatBytes(f.size)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
