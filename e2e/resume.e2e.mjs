// Long stage-2 jobs resume in the page: the run records every finished layer in an origin-private work folder, so a
// reload in the middle costs at most the layer in progress. A run stopped by a reload, reopened and resumed exports
// the same bytes as an uninterrupted run (each in its own fresh browser profile); a run of other settings refuses to
// take over the unfinished one until the user starts over.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { exportToFolder, openDemo, openStudio, setStage2, SETTINGS, waitForSavedLayers, workJob } from './studio.mjs';

const opened = [];
after(async () => {
  for (const b of opened) await b.close();
});

async function studio() {
  const b = await openStudio();
  opened.push(b);
  return b;
}

const result = (page) => page.locator('[data-testid="stage2-result"][data-fresh="true"]');

test('stage 2 stopped by a reload mid-job resumes from the recorded layer and exports the bytes of an uninterrupted run', { timeout: 300_000 }, async () => {
  // The uninterrupted run.
  const whole = await studio();
  await openDemo(whole.page);
  await setStage2(whole.page);
  await whole.page.getByTestId('stage2-run').click();
  await result(whole.page).waitFor({ timeout: 180_000 });
  assert.equal(await whole.page.getByTestId('stage2-result').getAttribute('data-resumed'), '0');
  const total = (await workJob(whole.page)).about.layers;
  assert.ok(total >= 3, `${total} decoder layers`);
  const reference = await exportToFolder(whole.page);
  const [refFolder] = Object.keys(reference);
  assert.ok(Object.keys(reference[refFolder]).some((f) => f.endsWith('.safetensors')));
  assert.deepEqual(whole.consoleErrors, []);

  // The same run, stopped by a reload once a layer is recorded.
  const b = await studio();
  const page = b.page;
  await openDemo(page);
  await setStage2(page);
  await page.getByTestId('stage2-run').click();
  await waitForSavedLayers(page, 1);
  await page.reload();
  const job = await workJob(page);
  assert.ok(job.layers.length >= 1 && job.layers.length < total, `stopped in the middle: ${job.layers.length} of ${total} layers recorded`);
  const saved = job.layers.length;
  assert.deepEqual(
    job.layers.map((l) => l.layer),
    [...Array(saved).keys()],
  );

  // Reopened: the page says where the run stopped and how to resume it.
  await openDemo(page);
  const notice = page.getByTestId('stage2-saved');
  await notice.waitFor({ timeout: 10_000 });
  assert.equal(await notice.getAttribute('data-layers'), String(saved));
  assert.equal(await page.getByTestId('stage2-resume-from').innerText(), `resume stage 2 from layer ${saved + 1} of ${total}`);
  assert.match(await notice.innerText(), /moe-demo/);

  // Other settings do not take the unfinished run over: a refusal, and Start over on offer.
  await setStage2(page, { ...SETTINGS, sparsity: SETTINGS.sparsity + 5 });
  await page.getByTestId('stage2-run').click();
  const refusal = page.getByTestId('stage2-error');
  await refusal.waitFor({ timeout: 60_000 });
  assert.match(await refusal.innerText(), /unfinished stage-2 run of other inputs is saved .*Set them as they were to resume it, or start over/);
  assert.equal(await page.getByTestId('stage2-result').count(), 0);
  assert.equal((await workJob(page)).layers.length, saved, 'the refused run recorded nothing');
  assert.equal(await page.locator('[data-testid="stage2-saved"][data-conflict="true"]').count(), 1);
  assert.equal(await page.getByTestId('stage2-start-over').isEnabled(), true);

  // The same settings again: the run resumes from the recorded layers.
  await setStage2(page);
  await page.getByTestId('stage2-run').click();
  await result(page).waitFor({ timeout: 180_000 });
  assert.equal(await page.getByTestId('stage2-error').count(), 0);
  assert.equal(await page.getByTestId('stage2-result').getAttribute('data-resumed'), String(saved));
  assert.match(await page.getByTestId('stage2-resumed').innerText(), new RegExp(`${saved} finished layers? restored`));
  assert.equal(await page.getByTestId('stage2-saved').count(), 0, 'no unfinished run is left');
  assert.equal((await workJob(page)).layers.length, total);

  const resumed = await exportToFolder(page);
  assert.deepEqual(Object.keys(resumed), [refFolder]);
  assert.deepEqual(Object.keys(resumed[refFolder]).sort(), Object.keys(reference[refFolder]).sort());
  for (const [f, d] of Object.entries(reference[refFolder])) assert.deepEqual(resumed[refFolder][f], d, `${f}: the resumed run's export differs from the uninterrupted run's`);
  assert.deepEqual(b.consoleErrors, []);
});
