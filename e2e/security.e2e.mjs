// The built page's Content-Security-Policy: present in index.html, connections only to the page's own origin, no
// inline script and no eval; and the page still works under it (summary, plan with its charts, a calibration run
// through the tokenizer and the GPU engine) without a single policy violation.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { baseUrl, browserPerFile } from './browser.mjs';
import { loadFixture } from './fixtures.mjs';
import { freePort } from './serve.mjs';

const BASE = baseUrl();
/** Console lines Chromium writes for each blocked load or call ("Refused to connect to ... because it violates ..."). */
const refused = [];

const b = browserPerFile(async (b) => {
  b.page.on('console', (m) => {
    if (/Content Security Policy/i.test(m.text())) refused.push(m.text());
  });
  // Recorded from the first script on, before the app runs (Playwright's init script is not subject to the policy).
  await b.context.addInitScript(() => {
    window.__csp = [];
    document.addEventListener('securitypolicyviolation', (e) => window.__csp.push({ directive: e.effectiveDirective, blocked: e.blockedURI }));
  });
});

/** The policy's directives as a map: name → source list. */
function directives(policy) {
  return new Map(
    policy
      .split(';')
      .map((d) => d.trim().split(/\s+/))
      .filter((d) => d[0])
      .map(([name, ...sources]) => [name, sources]),
  );
}

test('the built index.html carries the policy: own-origin connections, no inline script, no eval', async () => {
  const html = await (await fetch(`${BASE}/`)).text();
  const meta = /<meta http-equiv="Content-Security-Policy" content="([^"]+)"/.exec(html);
  assert.ok(meta, 'index.html has a Content-Security-Policy meta tag');
  const head = html.indexOf('<head>');
  assert.ok(meta.index > head && meta.index < html.indexOf('<script'), 'the policy comes before the first script');
  const d = directives(meta[1].replaceAll('&#39;', "'"));
  assert.deepEqual(d.get('connect-src'), ["'self'"]);
  assert.deepEqual(d.get('default-src'), ["'self'"]);
  assert.deepEqual(d.get('script-src'), ["'self'"], 'no unsafe-inline, no unsafe-eval, no other origin');
  assert.deepEqual(d.get('object-src'), ["'none'"]);
  assert.ok(!/<script(?![^>]*\bsrc=)[^>]*>/.test(html), 'no inline <script> in the built page');
});

test('the page works under the policy: summary, plan, calibration, with no violation', { timeout: 90_000 }, async () => {
  await b.page.goto(`${BASE}/`);
  await b.page.locator('[data-testid="adapter-panel"][data-status="ready"]').waitFor({ timeout: 20_000 });
  await loadFixture(b.page, 'mixtral');
  await b.page.locator('[data-testid="plan-panel"][data-ready="true"]').waitFor({ timeout: 20_000 });
  await b.page.getByTestId('heatmap').waitFor();
  await b.page.locator('[data-testid="eval-panel"][data-available="true"]').waitFor({ timeout: 10_000 });
  const text = 'The river ran quietly past the old mill, and the miller counted his sacks of grain.\n'.repeat(8);
  await b.page.getByTestId('calib-file').setInputFiles({ name: 'sentences.txt', mimeType: 'text/plain', buffer: Buffer.from(text) });
  await b.page.getByTestId('calib-text-name').filter({ hasText: 'sentences.txt' }).waitFor();
  await b.page.getByTestId('calib-run').click();
  await b.page.getByTestId('calib-result').waitFor({ timeout: 60_000 });
  assert.deepEqual(await b.page.evaluate(() => window.__csp), []);
  assert.deepEqual(refused, []);
  assert.deepEqual(b.consoleErrors, []);
  assert.deepEqual(b.foreignRequests(BASE), []);
});

// eval is not tried here: code run through Playwright's evaluate is exempt from the page's policy, so it would prove
// nothing; script-src without 'unsafe-eval' (first test) and the source scan (tests/unsafe-code.test.ts) cover it.
test('a fetch to another origin and an inline script are blocked by the policy', async () => {
  await b.page.goto(`${BASE}/`);
  // Chromium logs each refusal as a console error: provoked here on purpose.
  b.allowErrors(/Content Security Policy|Failed to fetch/);
  // Another origin on this machine: a port nothing listens on (the policy refuses it before any connection).
  const other = `http://127.0.0.1:${await freePort()}/exfiltrate`;
  const result = await b.page.evaluate(async (url) => {
    const out = { fetch: 'allowed', inline: 'ran' };
    try {
      await fetch(url, { method: 'POST', body: 'weights' });
    } catch (e) {
      out.fetch = String(e);
    }
    window.__inlineRan = false;
    const s = document.createElement('script');
    s.textContent = 'window.__inlineRan = true;';
    document.head.append(s);
    if (!window.__inlineRan) out.inline = 'blocked';
    await new Promise((r) => setTimeout(r, 100)); // violation events are dispatched asynchronously
    return { out, violations: window.__csp };
  }, other);
  assert.match(result.out.fetch, /TypeError/);
  assert.equal(result.out.inline, 'blocked');
  const seen = new Set(result.violations.map((v) => v.directive));
  assert.ok(seen.has('connect-src'), `connect-src violation reported (${JSON.stringify(result.violations)})`);
  assert.ok(result.violations.some((v) => v.directive === 'connect-src' && v.blocked.startsWith(other.slice(0, other.lastIndexOf('/')))));
  assert.ok(seen.has('script-src-elem'), 'inline script refused');
  assert.deepEqual(b.foreignRequests(BASE), [], 'the blocked fetch never left the page');
  refused.length = 0;
});
