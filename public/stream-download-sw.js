// Service worker behind "Export as one download" (src/export/stream-download.ts): the page opens a stream here over a
// MessageChannel, then loads <scope>/<id>/<name> in a hidden frame; this worker answers that request with the stream
// as an attachment, so the browser saves it to disk as it arrives and the page never holds the archive. Its scope is
// that one folder: it controls no page and sees no other request.
'use strict';

self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

/** Streams opened by the page and not yet requested by its frame, by id. */
const opened = new Map();

function openStream(id, name, port) {
  let waiting = null; // the pull() waiting for the page's next piece
  const stream = new ReadableStream(
    {
      // One piece at a time: the page sends the next only when asked, so at most a piece or two are in flight.
      pull(controller) {
        return new Promise((resolve) => {
          waiting = { controller, resolve };
          port.postMessage({ type: 'pull' });
        });
      },
      // The user cancelled the download in the browser (or it failed on their disk): the page stops the export.
      cancel(reason) {
        port.postMessage({ type: 'cancelled', reason: String(reason ?? '') });
      },
    },
    { highWaterMark: 1 },
  );
  port.onmessage = (event) => {
    const msg = event.data;
    if (msg.type === 'abort') {
      waiting?.controller.error(new Error(msg.reason || 'the export was stopped'));
      waiting?.resolve();
      waiting = null;
      opened.delete(id);
      port.close();
      return;
    }
    if (!waiting) return;
    const { controller, resolve } = waiting;
    waiting = null;
    if (msg.type === 'piece') controller.enqueue(new Uint8Array(msg.bytes));
    else if (msg.type === 'end') {
      controller.close();
      port.postMessage({ type: 'ended' });
    }
    resolve();
  };
  opened.set(id, { stream, name, port });
  port.postMessage({ type: 'ready' });
}

self.addEventListener('message', (event) => {
  const msg = event.data;
  // 'ping' only keeps this worker alive during a long export (a message event resets the browser's idle timer).
  if (msg && msg.type === 'open' && typeof msg.id === 'string' && typeof msg.name === 'string' && msg.port) openStream(msg.id, msg.name, msg.port);
});

self.addEventListener('fetch', (event) => {
  const scope = new URL(self.registration.scope);
  const url = new URL(event.request.url);
  if (url.origin !== scope.origin || !url.pathname.startsWith(scope.pathname)) return;
  const id = url.pathname.slice(scope.pathname.length).split('/')[0];
  const entry = opened.get(id);
  if (!entry) {
    event.respondWith(new Response('This download is no longer available.', { status: 404, headers: { 'Content-Type': 'text/plain' } }));
    return;
  }
  opened.delete(id);
  entry.port.postMessage({ type: 'started' });
  const ascii = entry.name.replace(/[^\x20-\x7e]|["\\]/g, '_');
  event.respondWith(
    new Response(entry.stream, {
      headers: {
        'Content-Type': 'application/zip',
        'Content-Disposition': `attachment; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(entry.name)}`,
        'X-Content-Type-Options': 'nosniff',
      },
    }),
  );
});
