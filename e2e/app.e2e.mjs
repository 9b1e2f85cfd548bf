// The page: adapter panel, loading a sharded checkpoint by file input and by folder drop, error banners,
// no request beyond the page's own origin, and a screenshot of a loaded summary.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { test } from 'node:test';
import { baseUrl, browserPerFile, openBrowser } from './browser.mjs';
import { loseGpu, trackGpuDevices } from './gpu-devices.mjs';
import { dropFolder, expected, fixtureFiles, loadFixture, summaryOf } from './fixtures.mjs';

const BASE = baseUrl();

const b = browserPerFile(async (b) => {
  await b.page.goto(`${BASE}/`);
});


test('adapter panel shows the SwiftShader adapter and its limits', async () => {
  const panel = b.page.getByTestId('adapter-panel');
  await panel.and(b.page.locator('[data-status="ready"]')).waitFor({ timeout: 20_000 });
  const text = await panel.innerText();
  assert.match(text.toLowerCase(), /swiftshader/);
  assert.match(text.toLowerCase(), /google/);
  assert.equal(await b.page.getByTestId('adapter-fallback').isVisible(), true);
  assert.match(text, /Max buffer\s+1 GiB/);
});

test('without a WebGPU adapter the panel explains what to do and loading still works', async () => {
  const nogpu = await openBrowser({ webgpu: false });
  try {
    await nogpu.page.goto(`${BASE}/`);
    const panel = nogpu.page.locator('[data-testid="adapter-panel"][data-status="unavailable"]');
    await panel.waitFor({ timeout: 20_000 });
    const text = await panel.innerText();
    assert.match(text, /WebGPU is not available/);
    assert.match(text, /Chrome or Edge 113/);
    assert.match(text, /--enable-unsafe-webgpu/);
    assert.match(text, /hardware acceleration/);
    await loadFixture(nogpu.page, 'mixtral');
    await nogpu.page.screenshot({ path: join(process.env.E2E_ARTIFACTS ?? '.', 'no-webgpu.png') });
  } finally {
    await nogpu.close();
  }
});

test('a sharded checkpoint picked with the file input is summarised', async () => {
  const exp = expected('mixtral');
  await loadFixture(b.page, 'mixtral');
  assert.equal(await b.page.getByTestId('summary-family').innerText(), 'Mixtral');
  assert.equal(await b.page.getByTestId('summary-experts').innerText(), String(exp.num_experts));
  assert.equal(await b.page.getByTestId('summary-topk').innerText(), String(exp.top_k));
  assert.match(await b.page.getByTestId('summary-moe-layers').innerText(), new RegExp(`^${exp.moe_layers.length}\\s*/ ${exp.num_layers}$`));
  assert.equal(await b.page.getByTestId('summary-hidden').innerText(), String(exp.hidden_size));
  assert.equal(await b.page.getByTestId('summary-expert-size').innerText(), String(exp.expert_intermediate_size));
  assert.equal(await b.page.getByTestId('summary-missing').getAttribute('data-count'), '0');
  const files = await b.page.getByTestId('summary-files').locator('tbody tr').evaluateAll((rows) => rows.map((r) => [r.getAttribute('data-file'), r.children[1].textContent]));
  for (const shard of exp.shards) assert.deepEqual(files.find((f) => f[0] === shard), [shard, 'shard']);
  assert.equal(await b.page.getByTestId('mode').innerText(), 'Reading the dropped files · nothing copied');
});

test('a checkpoint folder dropped on the page is walked recursively and summarised', async () => {
  const exp = expected('qwen3_moe');
  const files = fixtureFiles('qwen3_moe');
  await dropFolder(b.page, 'Qwen3-tiny', files);
  await summaryOf(b.page, 'qwen3_moe').waitFor();
  assert.equal(await b.page.getByTestId('model-name').innerText(), 'Qwen3-tiny');
  assert.equal(await b.page.getByTestId('summary-experts').innerText(), String(exp.num_experts));
  assert.equal(await b.page.getByTestId('summary-topk').innerText(), String(exp.top_k));
  const names = await b.page.getByTestId('summary-files').locator('tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-file')));
  assert.deepEqual(names, files.map((p) => basename(p)).sort());
});

test('files dropped through a real DataTransfer are summarised', async () => {
  const paths = fixtureFiles('olmoe');
  const payload = paths.map((p) => ({ name: basename(p), base64: readFileSync(p).toString('base64') }));
  const dt = await b.page.evaluateHandle((files) => {
    const dt = new DataTransfer();
    for (const f of files) dt.items.add(new File([Uint8Array.from(atob(f.base64), (c) => c.charCodeAt(0))], f.name));
    return dt;
  }, payload);
  await b.page.dispatchEvent('[data-testid="drop-zone"]', 'drop', { dataTransfer: dt });
  await summaryOf(b.page, 'olmoe').waitFor();
  assert.equal(await b.page.getByTestId('summary-experts').innerText(), String(expected('olmoe').num_experts));
});

test('a malformed shard shows a dismissible error naming the file, and the page keeps working', async () => {
  const good = fixtureFiles('mixtral').filter((p) => !p.endsWith('model-00002-of-00003.safetensors'));
  const broken = { name: 'model-00002-of-00003.safetensors', mimeType: 'application/octet-stream', buffer: Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0x7b, 0x7d]) };
  const buffers = [...good.map((p) => ({ name: basename(p), mimeType: 'application/octet-stream', buffer: readFileSync(p) })), broken];
  await b.page.getByTestId('model-files').setInputFiles(buffers);
  const banner = b.page.getByTestId('error-banner').first();
  await banner.waitFor();
  const msg = await banner.innerText();
  assert.match(msg, /model-00002-of-00003\.safetensors/);
  // The page shows the file and the rule; the internal code stays out of the text, in data-code.
  assert.doesNotMatch(msg, /\[[A-Za-z]+\]/, 'no internal code in brackets on the page');
  assert.match(await banner.getAttribute('data-code'), /^[A-Z][A-Za-z]+$/);
  await b.page.screenshot({ path: join(process.env.E2E_ARTIFACTS ?? '.', 'error-banner.png') });
  await b.page.getByTestId('error-dismiss').first().click();
  assert.equal(await b.page.getByTestId('error-banner').count(), 0);
  await loadFixture(b.page, 'mixtral');
});

test('screenshot of the loaded summary, and no request left the page origin', async () => {
  await loadFixture(b.page, 'deepseek_v3');
  await b.page.screenshot({ path: join(process.env.E2E_ARTIFACTS ?? '.', 'main-page.png'), fullPage: true });
  assert.deepEqual(b.foreignRequests(BASE), []);
  assert.ok(b.requests.length >= 3, 'the page and its assets were requested');
  assert.deepEqual(b.consoleErrors, []);
});

test('a lost GPU device is reported, the loaded model stays, and Reconnect brings the adapter back', async () => {
  const lost = await openBrowser();
  const page = lost.page;
  try {
    await trackGpuDevices(lost.context);
    await page.goto(`${BASE}/`);
    await page.locator('[data-testid="adapter-panel"][data-status="ready"]').waitFor({ timeout: 20_000 });
    await loadFixture(page, 'mixtral');
    assert.equal(await loseGpu(page), 1);
    await page.locator('[data-testid="adapter-panel"][data-status="unavailable"]').waitFor({ timeout: 20_000 });
    assert.match(await page.getByTestId('error-banner').first().innerText(), /GPU device .* was lost/);
    assert.equal(await summaryOf(page, 'mixtral').isVisible(), true);
    await page.getByTestId('gpu-reconnect').click();
    await page.locator('[data-testid="adapter-panel"][data-status="ready"]').waitFor({ timeout: 20_000 });
  } finally {
    await lost.close();
  }
});
