// Device loss from the test side. WebGPU gives a page no way to lose its device on purpose, and a driver reset cannot
// be ordered; destroying the GPUDevice behind the app's back is what the app sees of one (device.lost resolves, every
// pending read fails). An init script wraps GPUAdapter.prototype.requestDevice to remember the devices the page opens,
// so `loseGpu` can destroy them from page.evaluate; the product keeps no hook for it.

/** Installs the device tracker in `context` (every page, before its own scripts). */
export async function trackGpuDevices(context) {
  await context.addInitScript(() => {
    if (typeof GPUAdapter === 'undefined') return;
    const open = GPUAdapter.prototype.requestDevice;
    window.__testGpuDevices = [];
    GPUAdapter.prototype.requestDevice = async function (...args) {
      const device = await open.apply(this, args);
      window.__testGpuDevices.push(device);
      return device;
    };
  });
}

/** Destroys every device the page opened and has not lost yet; returns how many. */
export function loseGpu(page) {
  return page.evaluate(() => {
    let n = 0;
    for (const d of window.__testGpuDevices ?? []) {
      if (d.__testLost) continue;
      d.__testLost = true;
      d.destroy();
      n++;
    }
    return n;
  });
}
