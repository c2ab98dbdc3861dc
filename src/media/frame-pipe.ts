// How an encoder fed by the FrameHub gets its frames: each JPEG as one multipart part with a
// Content-Length header on the encoder's stdin (ffmpeg's `-f mpjpeg` input), so each frame is
// complete the moment it arrives; a bare JPEG stream is only cut when the next frame starts.
import type { Writable } from 'node:stream';

/** The part boundary the encoder's mpjpeg demuxer looks for. */
export const PART_BOUNDARY = 'frame';

/** Writes one frame as a part; calls `done` once the pipe can take the next one (latest-frame-wins upstream). */
export function writeFramePart(stdin: Writable, jpeg: Buffer, done: () => void): void {
  stdin.cork();
  stdin.write(`--${PART_BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: ${jpeg.length}\r\n\r\n`);
  stdin.write(jpeg);
  const flushed = stdin.write('\r\n');
  stdin.uncork();
  if (flushed) done();
  else stdin.once('drain', done);
}
