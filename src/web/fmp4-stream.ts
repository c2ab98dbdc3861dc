// Writes a camera's shared H.264 stage to one HTTP response as fragmented MP4, for the page's
// H.264 view (Media Source Extensions): the init segment, then fragments from the newest key
// frame on. Like the MJPEG writer it keeps a slow viewer live: while the connection has much
// unacknowledged (send-queue.ts) it skips ahead to the next key frame rather than queue the
// past. The codec string goes in the Content-Type, so the page can open its SourceBuffer.
import { once } from 'node:events';
import type { ServerResponse } from 'node:http';

import type { H264Stage } from '../media/h264-stage';
import type { QueuePolicy, SendQueueProbe } from './send-queue';

export interface Fmp4StreamOptions {
  headers?: Record<string, string | string[] | number | undefined>;
  /** Skips to the next key frame while the connection has more unacknowledged than its policy allows. */
  sendQueue?: { probe: SendQueueProbe; policy: QueuePolicy };
}

/**
 * Pure policy: how much may be on its way to an H.264 viewer before it skips ahead: 0.6 s of its
 * measured delivery rate (a key-frame fragment of 100 KB must not cost a whole GOP), at least
 * 96 KiB; a second of the stream until a rate is measured.
 */
export function h264QueuePolicy(bitrateKbps: number): QueuePolicy {
  const second = Math.round((bitrateKbps * 1000) / 8);
  return { defaultBytes: Math.max(128 * 1024, second), minBytes: 96 * 1024, maxBytes: Math.max(1024 * 1024, 2 * second), seconds: 0.6 };
}

/** Streams until the viewer goes away, the stage closes, or its encoder is replaced (the page reconnects). */
export async function streamFmp4(res: ServerResponse, stage: H264Stage, options: Fmp4StreamOptions = {}): Promise<void> {
  const abort = new AbortController();
  res.once('close', () => abort.abort());
  res.socket?.setNoDelay(true);
  let started = false;
  let skipping = false;
  try {
    for await (const item of stage.read({ signal: abort.signal, maxQueuedBytes: 4 * 1024 * 1024 })) {
      if (res.destroyed) break;
      if (item.type === 'init') {
        // A new encoder: its fragments need a new SourceBuffer. End; the page opens the stream again.
        if (started) break;
        started = true;
        res.writeHead(200, {
          ...options.headers,
          'Content-Type': `video/mp4; codecs="${item.init.video.codec ?? 'avc1.4d401f'}"`,
          'Cache-Control': 'no-store, no-cache, must-revalidate, private',
          'X-Accel-Buffering': 'no',
        });
        res.write(item.init.data);
        continue;
      }
      const fragment = item.fragment;
      const gate = options.sendQueue;
      if (gate && res.socket && !gate.probe.mayQueue(res.socket, gate.policy)) skipping = true;
      else if (skipping && fragment.key) skipping = false;
      if (skipping) continue;
      if (gate && res.socket) gate.probe.noteWritten(res.socket, fragment.data.length);
      if (!res.write(fragment.data)) {
        await once(res, 'drain', { signal: abort.signal }).catch(() => undefined);
      }
    }
  } finally {
    if (!started && !res.headersSent && !res.destroyed) {
      res.writeHead(503, { 'Content-Type': 'text/plain; charset=utf-8', 'Retry-After': '5' });
      res.end('The H.264 stream is not available right now.\n');
    } else if (!res.writableEnded) {
      res.end();
    }
  }
}
