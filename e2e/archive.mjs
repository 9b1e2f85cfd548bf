// The page's "one .zip download" export seen from the test side: click export, take the browser's download, and
// unpack it with a reader written here from the ZIP specification (central directory, ZIP64 fields), checking every
// member's CRC-32 with Node's zlib. The page's own ZIP writer is not used to read its output.
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { crc32 } from 'node:zlib';

/** Members of a ZIP file: [{ name, bytes }] in central-directory order, CRC-checked. Stored (method 0) only. */
export function readZip(buf) {
  const eocd = buf.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  assert.ok(eocd >= 0, 'no end-of-central-directory record: not a finished ZIP');
  let count = buf.readUInt16LE(eocd + 10);
  let cdOffset = buf.readUInt32LE(eocd + 16);
  if (cdOffset === 0xffffffff || count === 0xffff) {
    const loc = eocd - 20;
    assert.equal(buf.readUInt32LE(loc), 0x07064b50, 'ZIP64 locator');
    const rec = Number(buf.readBigUInt64LE(loc + 8));
    assert.equal(buf.readUInt32LE(rec), 0x06064b50, 'ZIP64 end record');
    count = Number(buf.readBigUInt64LE(rec + 32));
    cdOffset = Number(buf.readBigUInt64LE(rec + 48));
  }
  const members = [];
  let at = cdOffset;
  for (let i = 0; i < count; i++) {
    assert.equal(buf.readUInt32LE(at), 0x02014b50, `central directory entry ${i}`);
    const method = buf.readUInt16LE(at + 10);
    const crc = buf.readUInt32LE(at + 16);
    let csize = buf.readUInt32LE(at + 20);
    let size = buf.readUInt32LE(at + 24);
    const nameLen = buf.readUInt16LE(at + 28);
    const extraLen = buf.readUInt16LE(at + 30);
    const commentLen = buf.readUInt16LE(at + 32);
    let local = buf.readUInt32LE(at + 42);
    const name = buf.subarray(at + 46, at + 46 + nameLen).toString('utf8');
    // ZIP64 extra: the 8-byte values present are those whose 4-byte field is 0xFFFFFFFF, in this order.
    for (let e = at + 46 + nameLen; e < at + 46 + nameLen + extraLen; ) {
      const id = buf.readUInt16LE(e);
      const len = buf.readUInt16LE(e + 2);
      if (id === 0x0001) {
        let p = e + 4;
        if (size === 0xffffffff) (size = Number(buf.readBigUInt64LE(p))), (p += 8);
        if (csize === 0xffffffff) (csize = Number(buf.readBigUInt64LE(p))), (p += 8);
        if (local === 0xffffffff) local = Number(buf.readBigUInt64LE(p));
      }
      e += 4 + len;
    }
    assert.equal(method, 0, `${name} is stored, not compressed`);
    assert.equal(buf.readUInt32LE(local), 0x04034b50, `${name}: local header`);
    const start = local + 30 + buf.readUInt16LE(local + 26) + buf.readUInt16LE(local + 28);
    const bytes = buf.subarray(start, start + size);
    assert.equal(crc32(bytes) >>> 0, crc, `${name}: CRC-32`);
    members.push({ name, bytes });
    at += 46 + nameLen + extraLen + commentLen;
  }
  return members;
}

/** Writes the members under `dir` (their paths inside the archive kept). */
export function extractZip(buf, dir) {
  const members = readZip(buf);
  for (const m of members) {
    assert.ok(!m.name.startsWith('/') && !m.name.split('/').includes('..'), `${m.name} stays inside the folder`);
    mkdirSync(dirname(join(dir, m.name)), { recursive: true });
    writeFileSync(join(dir, m.name), m.bytes);
  }
  return members;
}

/**
 * Exports with the "one .zip download" target and waits for the browser's download to finish. `dir` receives the
 * archive's folder contents (what a user gets after unpacking). Checks: one download, named <folder>.zip, holding
 * exactly one folder, and the page's "done" notice names the archive and the number of files it holds.
 * Returns { names, zipName, zipPath }.
 */
export async function exportZip(page, dir, { timeout = 60_000, artifacts } = {}) {
  const btn = page.getByTestId('export-target').locator('[data-value="downloads"]');
  for (let i = 0; i < 3 && (await btn.getAttribute('aria-checked')) !== 'true'; i++) {
    await btn.click();
    await page.waitForTimeout(100);
  }
  assert.equal(await btn.getAttribute('aria-checked'), 'true', 'the download target is selected');
  const downloads = [];
  const onDownload = (d) => downloads.push(d);
  page.on('download', onDownload);
  try {
    const first = page.waitForEvent('download', { timeout });
    await page.getByTestId('export-button').click();
    const d = await first;
    const zipName = d.suggestedFilename();
    assert.match(zipName, /\.zip$/);
    const zipPath = join(artifacts ?? dirname(dir), zipName);
    await d.saveAs(zipPath);
    assert.equal(await d.failure(), null, 'the download completed');
    const notice = page.locator('[data-testid="export-done"]', { hasText: zipName });
    await notice.waitFor({ timeout });
    assert.equal(downloads.length, 1, 'one download for the whole export');
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const members = readZip(readFileSync(zipPath));
    const folder = zipName.replace(/\.zip$/, '');
    assert.ok(members.every((m) => m.name.startsWith(`${folder}/`)), `every file is inside ${folder}/`);
    const names = members.map((m) => m.name.slice(folder.length + 1));
    for (const m of members) writeFileSync(join(dir, m.name.slice(folder.length + 1)), m.bytes);
    assert.equal(names.length, Number(await notice.getAttribute('data-files')), 'the page counts exactly the files the archive holds');
    return { names, zipName, zipPath };
  } finally {
    page.off('download', onDownload);
  }
}
