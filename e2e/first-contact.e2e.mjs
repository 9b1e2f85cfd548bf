// First contact with the page: a lone shard (no config.json) is listed from its header with a note that the family
// needs the config; a file that is not safetensors at all is called that, in plain words; messages on the page name
// the file and the rule without the internal error code (which stays in the banner's data-code).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { test } from 'node:test';
import { baseUrl, browserPerFile } from './browser.mjs';
import { fixtureDir } from './fixtures.mjs';

const BASE = baseUrl();
const b = browserPerFile(async (b) => {
  await b.page.goto(`${BASE}/`);
});

/** The header of a .safetensors file read straight from disk: tensor name → entry, plus __metadata__. */
function headerOf(path) {
  const buf = readFileSync(path);
  const n = Number(buf.readBigUInt64LE(0));
  return { json: JSON.parse(buf.subarray(8, 8 + n).toString('utf8')), headerBytes: 8 + n };
}

test('a lone shard dropped on the page lists its header and says the family needs config.json', async () => {
  const shard = join(fixtureDir('mixtral'), 'model-00002-of-00003.safetensors');
  const { json } = headerOf(shard);
  const names = Object.keys(json).filter((k) => k !== '__metadata__');
  await b.page.getByTestId('model-files').setInputFiles([shard]);
  const lone = b.page.getByTestId('lone-file');
  await lone.waitFor();
  assert.equal(await b.page.getByTestId('error-banner').count(), 0, 'no error for a sound lone file');
  assert.equal(await b.page.getByTestId('model-name').innerText(), basename(shard));
  assert.match(await b.page.getByTestId('lone-needs-config').innerText(), /family.*config\.json/);
  assert.equal(await b.page.getByTestId('mode').innerText(), 'One file, no config.json · header only');
  assert.equal(await b.page.getByTestId('lone-tensor-count').innerText(), String(names.length));
  const rows = await b.page.getByTestId('lone-tensors').locator('tbody tr').evaluateAll((trs) => trs.map((r) => [...r.children].map((c) => c.textContent)));
  assert.equal(rows.length, names.length);
  for (const [name, dtype, shape, bytes] of rows) {
    const t = json[name];
    assert.ok(t, `${name} is in the header`);
    assert.equal(dtype, t.dtype);
    assert.equal(shape, `[${t.shape.join(', ')}]`);
    assert.equal(Number(bytes.replaceAll(',', '')), t.data_offsets[1] - t.data_offsets[0]);
  }
  assert.match(await b.page.getByTestId('lone-metadata').innerText(), /format = pt/);
  assert.match(await b.page.getByTestId('lone-checks').innerText(), /tile the data/);
  // No plan or evaluation panel: there is no family to plan for.
  assert.equal(await b.page.getByTestId('plan-panel').count(), 0);
  await b.page.screenshot({ path: join(process.env.E2E_ARTIFACTS ?? '.', 'lone-shard.png') });
});

test('a file that is not safetensors is called that, in plain words, and no code in brackets is shown', async () => {
  await b.page.goto(`${BASE}/`);
  // The first bytes of a PyTorch checkpoint (a zip archive), under a safetensors name.
  const zip = Buffer.concat([Buffer.from('PK\x03\x04\x14\x00\x00\x00\x08\x00', 'latin1'), Buffer.alloc(64, 7)]);
  await b.page.getByTestId('model-files').setInputFiles([{ name: 'model.safetensors', mimeType: 'application/octet-stream', buffer: zip }]);
  const banner = b.page.getByTestId('error-banner').first();
  await banner.waitFor();
  const text = await banner.innerText();
  assert.match(text, /^model\.safetensors: not a safetensors file: it is a zip archive \(PyTorch saves \.bin and \.pt checkpoints as one\)/);
  assert.doesNotMatch(text, /header length|\[[A-Za-z]+\]/, 'no header arithmetic and no internal code');
  assert.equal(await banner.getAttribute('data-code'), 'NotSafetensors');
  await b.page.getByTestId('error-dismiss').first().click();
  assert.equal(await b.page.getByTestId('error-banner').count(), 0);
});
