// Preloaded (`node --import ./bench/mem-probe.mjs …`) into a process the scale benchmark measures: samples its
// memory every 50 ms and, on exit, writes the peaks and CPU times as JSON to $MOE_BENCH_MEM_OUT. Bench-side only:
// the measured command runs unchanged.
import { writeFileSync } from 'node:fs';

const out = process.env.MOE_BENCH_MEM_OUT;
if (out) {
  const peak = { rss: 0, heapUsed: 0, heapTotal: 0, arrayBuffers: 0 };
  const sample = () => {
    const m = process.memoryUsage();
    for (const k of Object.keys(peak)) peak[k] = Math.max(peak[k], m[k]);
  };
  setInterval(sample, 50).unref();
  process.on('exit', () => {
    sample();
    const r = process.resourceUsage();
    // maxRSS (kB) is the kernel's own high-water mark: it catches peaks between samples.
    peak.rss = Math.max(peak.rss, r.maxRSS * 1024);
    writeFileSync(out, JSON.stringify({ peak, userMs: r.userCPUTime / 1000, systemMs: r.systemCPUTime / 1000 }));
  });
}
