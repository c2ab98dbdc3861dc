// Writes a FrameHub's frames to one HTTP response as multipart/x-mixed-replace (MJPEG):
//  - every part has Content-Type and Content-Length, and the boundary that closes a part goes out
//    in the same write (one writev) as the JPEG, so a browser paints the frame at once;
//  - no chunked encoding; the connection closes when the stream ends;
//  - latest-frame-wins: while the socket has not drained, newer frames replace the waiting one,
//    so a slow viewer costs at most one frame of memory and never slows the others;
//  - bounded delay: a frame goes out only while the connection has little still unacknowledged
//    in the kernel (send-queue.ts), so a viewer on a slow link gets fewer frames, never old ones;
//  - `maxFps` skips frames to cap the rate.
import type { ServerResponse } from 'node:http';

import type { Frame, FrameHub } from '../media/frame-hub';
import type { QueuePolicy, SendQueueProbe } from './send-queue';

/**
 * How much an MJPEG viewer may have on its way before its next frame: 60 ms of its measured
 * delivery rate (the link stays busy until the next frame arrives from the camera), 8 to 64 KiB;
 * 32 KiB until a rate is measured. What it sees is then at most that much, plus one frame,
 * behind live.
 */
export const MJPEG_QUEUE: QueuePolicy = { defaultBytes: 32 * 1024, minBytes: 8 * 1024, maxBytes: 64 * 1024, seconds: 0.06 };

export const BOUNDARY = 'webcamframe';
const OPENING = Buffer.from(`--${BOUNDARY}\r\n`);
const CLOSING = Buffer.from(`\r\n--${BOUNDARY}\r\n`);

/** Pure policy: may a frame at `now` go out, given the last one sent at `lastSent`? */
export function allowedByRate(now: number, lastSent: number, maxFps: number | undefined): boolean {
  if (!maxFps) return true;
  // A little slack so a 30 fps source capped at 30 does not drop frames to timer jitter.
  return now - lastSent >= (1000 / maxFps) * 0.9;
}

/** Part headers, made once per frame and shared by every viewer. */
const headers = new WeakMap<Frame, Buffer>();

export function partHeader(frame: Frame): Buffer {
  let header = headers.get(frame);
  if (!header) {
    header = Buffer.from(`Content-Type: image/jpeg\r\nContent-Length: ${frame.size}\r\n\r\n`);
    headers.set(frame, header);
  }
  return header;
}

/**
 * Streams `hub` to `res` until the client goes away or the hub closes. `headers` are extra
 * response headers (security headers set earlier in the request).
 */
export function streamMjpeg(
  res: ServerResponse,
  hub: FrameHub,
  options: {
    maxFps?: number;
    headers?: Record<string, string | string[] | number | undefined>;
    /** Holds frames back while the connection has more unacknowledged than its policy allows. */
    sendQueue?: { probe: SendQueueProbe; policy: QueuePolicy };
  } = {},
): void {
  res.useChunkedEncodingByDefault = false;
  res.socket?.setNoDelay(true);
  res.writeHead(200, {
    ...options.headers,
    'Content-Type': `multipart/x-mixed-replace; boundary=${BOUNDARY}`,
    'Cache-Control': 'no-store, no-cache, must-revalidate, private',
    Pragma: 'no-cache',
    // nginx in front must not buffer the stream.
    'X-Accel-Buffering': 'no',
    Connection: 'close',
  });
  res.write(OPENING);

  let lastSent = 0;
  const writeFrame = (frame: Frame, done: () => void): void => {
    if (res.destroyed || res.writableEnded) return; // 'close' unsubscribes
    // The kernel still holds much of what went before (a slow link): this frame would only wait
    // there and arrive late. Skip it; a newer one is offered as soon as it comes.
    const gate = options.sendQueue;
    if (gate && res.socket && !gate.probe.mayQueue(res.socket, gate.policy)) {
      done();
      return;
    }
    if (options.maxFps) {
      const now = Date.now();
      if (!allowedByRate(now, lastSent, options.maxFps)) {
        done();
        return;
      }
      lastSent = now;
    }
    if (gate && res.socket) gate.probe.noteWritten(res.socket, frame.size);
    res.cork();
    res.write(partHeader(frame));
    for (const piece of frame.pieces) res.write(piece);
    // The callback runs once this part has left user space for the kernel: then the next frame
    // may go. (write()'s return value only compares with the high-water mark, which can be larger
    // than a frame, so it cannot tell.)
    res.write(CLOSING, () => done());
    res.uncork();
    // The kernel usually takes the whole part during uncork(): then there is nothing to wait for,
    // and frames that arrive together (after a stall) all go out. A second done() is ignored.
    if (res.socket?.writableLength === 0) done();
  };

  const subscription = hub.subscribe(writeFrame, {
    // The hub shut down (server stopping): end the stream properly.
    onClose: () => {
      if (!res.writableEnded) res.end();
    },
  });
  res.once('close', () => subscription.unsubscribe());
}
