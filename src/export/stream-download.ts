/**
 * One download fed piece by piece, never held whole: a service worker (public/stream-download-sw.js) answers a hidden
 * frame's request with a stream whose pieces this page sends as the worker asks for them. Browsers drop some of many
 * downloads a page starts at once; one streamed download has nothing to drop, and pieces go to disk as they come.
 */
import { MoePruneError } from '../core/errors.ts';
import type { ArchiveSink } from './zip-stream.ts';

const WORKER = 'stream-download-sw.js';
const SCOPE = 'stream-download/';
/** How long the browser may take to request the frame's URL before the download counts as not started. */
const START_MS = 15_000;
/** Message events keep the worker alive; the browser stops an idle one after about 30 s. */
const PING_MS = 10_000;

export interface StreamDownload extends ArchiveSink {
  /** Every piece was handed to the browser's download, which is now complete. */
  close(): Promise<void>;
  /** Fails the download (the browser shows it as failed and keeps no partial file). */
  abort(reason: string): Promise<void>;
}

export function canStreamDownload(): boolean {
  return typeof navigator !== 'undefined' && 'serviceWorker' in navigator && typeof ReadableStream === 'function' && window.isSecureContext;
}

function base(): string {
  return import.meta.env.BASE_URL.endsWith('/') ? import.meta.env.BASE_URL : `${import.meta.env.BASE_URL}/`;
}

async function activeWorker(): Promise<ServiceWorker> {
  const reg = await navigator.serviceWorker.register(base() + WORKER, { scope: base() + SCOPE }).catch((e: unknown) => {
    throw new MoePruneError('IoError', `cannot start the download helper (${(e as Error).message}); export into a folder instead`, WORKER, { cause: e });
  });
  const sw = reg.active ?? reg.waiting ?? reg.installing;
  if (!sw) throw new MoePruneError('IoError', 'the download helper did not start; export into a folder instead', WORKER);
  if (sw.state === 'activated') return sw;
  await new Promise<void>((resolve, reject) => {
    const check = (): void => {
      if (sw.state === 'activated') resolve();
      else if (sw.state === 'redundant') reject(new MoePruneError('IoError', 'the download helper stopped while starting; export into a folder instead', WORKER));
    };
    sw.addEventListener('statechange', check);
    check();
  });
  return sw;
}

type FromWorker = { type: 'ready' | 'started' | 'pull' | 'ended' } | { type: 'cancelled'; reason: string };

/** Starts the download of `name` (what the browser saves it as); write its bytes in order, then close(). */
export async function openStreamDownload(name: string): Promise<StreamDownload> {
  if (!canStreamDownload()) throw new MoePruneError('IoError', 'this browser cannot stream a download (no service workers here); export into a folder instead');
  const sw = await activeWorker();
  const id = crypto.randomUUID();
  const channel = new MessageChannel();
  const port = channel.port1;

  let credits = 0; // pulls the worker asked for and we have not answered
  let wake: (() => void) | null = null;
  let failure: MoePruneError | null = null;
  let started = false;
  let ended: (() => void) | null = null;
  const fail = (e: MoePruneError): void => {
    failure ??= e;
    wake?.();
    ended?.();
  };
  const ready = new Promise<void>((resolve) => {
    port.onmessage = (event: MessageEvent<FromWorker>) => {
      const msg = event.data;
      if (msg.type === 'ready') resolve();
      else if (msg.type === 'started') started = true;
      else if (msg.type === 'pull') {
        credits++;
        wake?.();
      } else if (msg.type === 'ended') ended?.();
      else if (msg.type === 'cancelled') fail(new MoePruneError('IoError', 'the download was cancelled or failed in the browser', name));
    };
  });
  sw.postMessage({ type: 'open', id, name, port: channel.port2 }, [channel.port2]);
  await ready;

  const frame = document.createElement('iframe');
  frame.hidden = true;
  frame.src = `${base()}${SCOPE}${id}/${encodeURIComponent(name)}`;
  document.body.append(frame);
  const ping = setInterval(() => sw.postMessage({ type: 'ping' }), PING_MS);
  const startTimer = setTimeout(() => {
    if (!started) fail(new MoePruneError('IoError', 'the browser did not start the download; export into a folder instead', name));
  }, START_MS);
  const cleanup = (): void => {
    clearInterval(ping);
    clearTimeout(startTimer);
    // The frame only carried the request; the browser's download goes on without it.
    setTimeout(() => frame.remove(), 1000);
  };

  const credit = async (): Promise<void> => {
    while (credits === 0 && !failure) await new Promise<void>((r) => (wake = r));
    wake = null;
    if (failure) throw failure;
    credits--;
  };

  let closed = false;
  return {
    async write(bytes) {
      await credit();
      // A copy of its own, handed over without another copy (the caller may reuse its buffer).
      const own = bytes.slice();
      port.postMessage({ type: 'piece', bytes: own.buffer }, [own.buffer]);
    },
    async close() {
      await credit();
      const done = new Promise<void>((r) => (ended = r));
      port.postMessage({ type: 'end' });
      await done;
      closed = true;
      cleanup();
      if (failure) throw failure;
    },
    async abort(reason) {
      if (closed) return;
      closed = true;
      fail(new MoePruneError('Cancelled', reason));
      port.postMessage({ type: 'abort', reason });
      cleanup();
    },
  };
}
