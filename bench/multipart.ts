// The benchmark clients' MJPEG reader: parses an HTTP response carrying multipart/x-mixed-replace
// from a raw TCP byte stream, cheaply. Header blocks (the HTTP head, then each part's boundary and
// headers) end at a blank line; a part's body is skipped by its Content-Length, keeping only its
// first STAMP_BYTES to read the COM stamp. Nothing else of a frame is copied.
import type { Stamp } from './corpus';
import { readStamp, STAMP_BYTES } from './corpus';

export interface ReceivedFrame {
  /** Undefined when the frame carried no bench stamp. */
  stamp?: Stamp;
  bytes: number;
}

const MAX_HEAD = 8 * 1024;
const HEAD_STEP = 512;
const CONTENT_LENGTH = /(?:^|\r\n)content-length:[ \t]*(\d+)/i;

export class MjpegReader {
  /** The HTTP status, once the response head has arrived. */
  status?: number;
  private inBody = false;
  private head = '';
  private remaining = 0;
  private bodyBytes = 0;
  private readonly stampBuffer = Buffer.alloc(STAMP_BYTES);
  private stampFill = 0;

  constructor(
    private readonly onFrame: (frame: ReceivedFrame) => void,
    private readonly onError: (message: string) => void,
  ) {}

  /** Feeds the next chunk; returns false after an error (stop feeding). */
  push(chunk: Buffer): boolean {
    let i = 0;
    const n = chunk.length;
    while (i < n) {
      if (!this.inBody) {
        // Header blocks are short: look at a small window of new bytes at a time.
        const window = chunk.toString('latin1', i, Math.min(n, i + HEAD_STEP));
        const text = this.head + window;
        const end = text.indexOf('\r\n\r\n');
        if (end === -1) {
          if (text.length >= MAX_HEAD) return this.fail('a header block longer than 8 KB');
          this.head = text;
          i += window.length;
          continue;
        }
        const block = text.slice(0, end);
        i += end + 4 - this.head.length;
        this.head = '';
        if (!this.headerBlock(block)) return false;
        continue;
      }
      const take = Math.min(this.remaining, n - i);
      if (this.stampFill < STAMP_BYTES) {
        const copy = Math.min(STAMP_BYTES - this.stampFill, take);
        chunk.copy(this.stampBuffer, this.stampFill, i, i + copy);
        this.stampFill += copy;
      }
      i += take;
      this.remaining -= take;
      if (this.remaining === 0) {
        this.inBody = false;
        this.onFrame({ stamp: readStamp(this.stampBuffer), bytes: this.bodyBytes });
      }
    }
    return true;
  }

  private headerBlock(block: string): boolean {
    if (this.status === undefined) {
      const match = /^HTTP\/1\.[01] (\d{3})/.exec(block);
      if (!match) return this.fail(`not an HTTP response: ${JSON.stringify(block.slice(0, 40))}`);
      this.status = Number(match[1]);
      if (this.status !== 200) return this.fail(`HTTP ${this.status}`);
      if (!/content-type:[ \t]*multipart\/x-mixed-replace/i.test(block)) return this.fail('not multipart/x-mixed-replace');
      return true;
    }
    const match = CONTENT_LENGTH.exec(block);
    if (!match) return this.fail(`a part without Content-Length: ${JSON.stringify(block.slice(0, 80))}`);
    this.bodyBytes = Number(match[1]);
    this.remaining = this.bodyBytes;
    this.stampFill = 0;
    this.stampBuffer.fill(0);
    this.inBody = true;
    if (this.remaining === 0) {
      this.inBody = false;
      this.onFrame({ bytes: 0 });
    }
    return true;
  }

  private fail(message: string): boolean {
    this.onError(message);
    return false;
  }
}
