// How an encoder fed by the FrameHub gets its frames: each JPEG as one multipart part with a
// Content-Length header on the encoder's stdin (ffmpeg's `-f mpjpeg` input), so each frame is
// complete the moment it arrives; a bare JPEG stream is only cut when the next frame starts.
import type { Writable } from 'node:stream';

import type { Frame } from './frame-hub';

/** The part boundary the encoder's mpjpeg demuxer looks for. */
export const PART_BOUNDARY = 'frame';

/**
 * Writes one JPEG as a part, its bytes as `pieces` (a frame's chunks, unjoined) and `size` in
 * all; true when the pipe can take more at once (else wait for 'drain').
 */
export function writeJpegPart(stdin: Writable, pieces: readonly Buffer[], size: number): boolean {
  stdin.cork();
  stdin.write(`--${PART_BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: ${size}\r\n\r\n`);
  for (const piece of pieces) stdin.write(piece);
  const flushed = stdin.write('\r\n');
  stdin.uncork();
  return flushed;
}

/** Writes a hub's frame as a part; calls `done` once the pipe can take the next one (latest-frame-wins upstream). */
export function writeFramePart(stdin: Writable, frame: Pick<Frame, 'pieces' | 'size'>, done: () => void): void {
  if (writeJpegPart(stdin, frame.pieces, frame.size)) done();
  else stdin.once('drain', done);
}
