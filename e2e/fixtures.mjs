// Test checkpoints on disk and the small readers the tests use to know what the page should show.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** Where a test leaves screenshots and exports (the runner names it; a file run alone uses the default). */
export const ARTIFACTS = process.env.E2E_ARTIFACTS ?? join(REPO, 'e2e', '.artifacts');

/** A few plain sentences: enough for 4 windows of 16 tokens with the fixtures' tiny tokenizer. */
export const SAMPLE_TEXT = [
  'The river ran quietly past the old mill, and the miller counted his sacks of grain.',
  'In the evening the children read aloud by the fire while the wind rattled the shutters.',
  'A letter arrived on Tuesday; nobody could say who had written it, or why it smelled of roses.',
  'She walked to the village, bought bread and candles, and came home before the rain began.',
].join('\n');

export function fixtureDir(name) {
  return join(REPO, 'fixtures', 'models', name);
}

/** Checkpoint files of a fixture (what a user would drop), without the test oracle's expected.json. */
export function fixtureFiles(name) {
  const dir = fixtureDir(name);
  return readdirSync(dir)
    .filter((f) => f !== 'expected.json' && statSync(join(dir, f)).isFile())
    .sort()
    .map((f) => join(dir, f));
}

export function expected(name) {
  return JSON.parse(readFileSync(join(fixtureDir(name), 'expected.json'), 'utf8'));
}

/** Bytes of one tensor read straight from the .safetensors file on disk (u64 header length, JSON header, data). */
export function tensorBytesOnDisk(name, tensor) {
  const dir = fixtureDir(name);
  const index = JSON.parse(readFileSync(join(dir, 'model.safetensors.index.json'), 'utf8'));
  const shard = index.weight_map[tensor];
  if (!shard) throw new Error(`${tensor} is not in the ${name} weight map`);
  const buf = readFileSync(join(dir, shard));
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
  const [b, e] = header[tensor].data_offsets;
  return buf.subarray(8 + n + b, 8 + n + e);
}

/** Locator of the model summary once it shows a checkpoint of `family`. */
export function summaryOf(page, family) {
  return page.locator(`[data-testid="model-summary"][data-family="${family}"]`);
}

/** Picks a fixture's files with the file input and waits for its summary. */
export async function loadFixture(page, name, { timeout } = {}) {
  await page.getByTestId('model-files').setInputFiles(fixtureFiles(name));
  await summaryOf(page, expected(name).model_type).waitFor({ timeout });
}

/** Drops files from disk (`paths`) as one folder named `folder`, through a directory-entry tree built in the page
 * that hands out entries in batches and then an empty batch, as Chromium does. */
export async function dropFolder(page, folder, paths) {
  const files = paths.map((p) => ({ name: basename(p), base64: readFileSync(p).toString('base64') }));
  await page.evaluate(
    ({ folder, files }) => {
      const decode = (b64) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const fileEntry = (name, bytes) => ({
        isFile: true,
        isDirectory: false,
        name,
        fullPath: `/${folder}/${name}`,
        file: (ok) => ok(new File([bytes], name, { lastModified: 1_700_000_000_000 })),
      });
      const children = files.map((f) => fileEntry(f.name, decode(f.base64)));
      const root = {
        isFile: false,
        isDirectory: true,
        name: folder,
        fullPath: `/${folder}`,
        createReader() {
          let i = 0;
          return {
            readEntries(ok) {
              const batch = children.slice(i, i + 3);
              i += batch.length;
              setTimeout(() => ok(batch), 0);
            },
          };
        },
      };
      const ev = new DragEvent('drop', { bubbles: true, cancelable: true });
      const item = { kind: 'file', type: '', webkitGetAsEntry: () => root, getAsFile: () => null };
      Object.defineProperty(ev, 'dataTransfer', { value: { items: [item], files: [], dropEffect: 'copy' } });
      document.querySelector('[data-testid="drop-zone"]').dispatchEvent(ev);
    },
    { folder, files },
  );
}
