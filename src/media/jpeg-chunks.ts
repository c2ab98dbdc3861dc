// A JPEG as the chunks of the byte stream it arrived in (an HTTP answer, ffmpeg's pipe), joined
// into one buffer of its own the first time its bytes are read. The readers (mjpeg-parts.ts, the
// JPEG splitter) hand frames on this way; the FrameHub joins one when a consumer reads its data.
//
// Why: most frames of a camera nobody watches are only passed over (motion looks at two a
// second), and the encoder's stdin and a viewer's socket take a frame's chunks as they are.
// Left unjoined, each saves a ~100 KiB copy, and Homebridge's process the garbage collections
// that 30 such copies a second set off (bench/README.md, "Footprint").

/** A JPEG as the chunks it arrived in, joined into one buffer of its own when first read. */
export class JpegChunks {
  private joined?: Buffer;

  /** Its size in bytes. */
  readonly length: number;

  /** `parts`: views into a stream's chunks, which other frames' bytes may share (copied when joined). */
  constructor(private parts: Buffer[]) {
    this.length = parts.reduce((sum, part) => sum + part.length, 0);
  }

  /**
   * Its first `n` bytes (fewer when it is shorter): a view of the first chunk when that holds
   * them, else a small copy of the first chunks' bytes; the frame itself stays unjoined.
   */
  head(n: number): Buffer {
    if (this.joined) return this.joined.subarray(0, n);
    const first = this.parts[0] ?? Buffer.alloc(0);
    if (first.length >= n || this.parts.length === 1) return first.subarray(0, n);
    const pieces: Buffer[] = [];
    let left = n;
    for (const part of this.parts) {
      if (left <= 0) break;
      pieces.push(part.subarray(0, left));
      left -= part.length;
    }
    return Buffer.concat(pieces);
  }

  /**
   * Its bytes as buffers to write one after the other (a socket's or pipe's writev), without
   * joining them: the stream's chunks, or the one joined buffer once something has read `bytes()`.
   */
  pieces(): readonly Buffer[] {
    return this.joined ? [this.joined] : this.parts;
  }

  /** The whole JPEG in one buffer of its own; joined once, after which the chunks are let go. */
  bytes(): Buffer {
    if (!this.joined) {
      // Copied even from one chunk: a frame that lives on in the hub must not keep the stream's chunks alive.
      this.joined = Buffer.concat(this.parts, this.length);
      this.parts = [];
    }
    return this.joined;
  }
}
