import { formatBytes } from '../core/format.ts';
import { initGpu, useApp, type AdapterInfo } from './state.ts';

const KEY_LIMITS: ReadonlyArray<{ key: keyof AdapterInfo['limits']; label: string; bytes: boolean }> = [
  { key: 'maxBufferSize', label: 'Max buffer', bytes: true },
  { key: 'maxStorageBufferBindingSize', label: 'Max storage binding', bytes: true },
  { key: 'maxComputeWorkgroupStorageSize', label: 'Workgroup memory', bytes: true },
  { key: 'maxComputeInvocationsPerWorkgroup', label: 'Invocations / workgroup', bytes: false },
];

function binaryBytes(n: number): string {
  if (n >= 1 << 30) return `${(n / (1 << 30)).toFixed(n % (1 << 30) ? 1 : 0)} GiB`;
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(n % (1 << 20) ? 1 : 0)} MiB`;
  if (n >= 1 << 10) return `${(n / (1 << 10)).toFixed(n % (1 << 10) ? 1 : 0)} KiB`;
  return formatBytes(n);
}

export function AdapterPanel() {
  const gpu = useApp((s) => s.gpu);
  if (gpu.status === 'pending')
    return (
      <div className="adapter" data-testid="adapter-panel" data-status="pending">
        <span className="muted">Looking for a WebGPU adapter…</span>
      </div>
    );
  if (gpu.status === 'unavailable')
    return (
      <div className="adapter adapter-missing" data-testid="adapter-panel" data-status="unavailable">
        <div className="adapter-title">
          <span className="dot dot-bad" /> WebGPU is not available
        </div>
        {gpu.reason === 'lost' ? (
          <div className="adapter-why">
            <p>The GPU device was lost; work that was running on it stopped. Stored models and the loaded checkpoint are kept.</p>
            <span className="muted small adapter-detail">{gpu.message}</span>
            <button type="button" className="btn" data-testid="gpu-reconnect" onClick={() => void initGpu()}>
              Reconnect GPU
            </button>
          </div>
        ) : gpu.reason === 'no-api' ? (
          <p className="adapter-why">This browser does not offer WebGPU here.</p>
        ) : (
          <p className="adapter-why">
            WebGPU is present but no GPU adapter was offered.
            <span className="muted small adapter-detail">{gpu.message}</span>
          </p>
        )}
        <ul className="adapter-help">
          <li>Use Chrome or Edge 113 or newer (desktop).</li>
          {!gpu.secureContext && <li>Open the page over https:// or from localhost / 127.0.0.1.</li>}
          <li>
            On Linux, enable WebGPU at <code>chrome://flags/#enable-unsafe-webgpu</code> or start Chrome with <code>--enable-unsafe-webgpu</code>.
          </li>
          <li>
            Turn on hardware acceleration (<code>chrome://settings/system</code>) and update the GPU driver; <code>chrome://gpu</code> shows why WebGPU is off.
          </li>
        </ul>
        <p className="muted small">You can still load and inspect checkpoints; pruning needs a GPU.</p>
      </div>
    );
  const { adapter, limits, features } = gpu.info;
  return (
    <div className="adapter" data-testid="adapter-panel" data-status="ready">
      <div className="adapter-title">
        <span className="dot dot-ok" />
        <span data-testid="adapter-name">
          {[adapter.vendor, adapter.architecture].filter(Boolean).join(' · ') || adapter.label}
        </span>
        {adapter.isFallbackAdapter && (
          <span className="chip chip-warn" data-testid="adapter-fallback" title="A software adapter: correct but slow">
            software fallback
          </span>
        )}
      </div>
      {(adapter.description || adapter.device) && <div className="adapter-desc">{adapter.description || adapter.device}</div>}
      <dl className="limits">
        {KEY_LIMITS.map((l) => (
          <div key={l.key}>
            <dt>{l.label}</dt>
            <dd>{l.bytes ? binaryBytes(limits[l.key]) : limits[l.key]}</dd>
          </div>
        ))}
      </dl>
      {features.length > 0 && <div className="muted small">features: {features.join(', ')}</div>}
    </div>
  );
}
