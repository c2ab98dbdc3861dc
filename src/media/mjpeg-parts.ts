// Reads the body of a multipart/x-mixed-replace MJPEG answer (another webcam server, an ESP32-CAM,
// an IP camera) into whole JPEG frames, and reads a JPEG's size from its SOF marker. Parts are
// cut by their Content-Length, so nothing inside a frame is ever searched; the boundary lines
// and blank lines between parts are skipped whatever they say (cameras disagree on the leading
// dashes). A camera that sends parts without Content-Length is read with the JPEG splitter from
// then on, which skips the text between frames. Pure: bytes in, frames out.
import { JpegChunks } from './jpeg-chunks';
import { JpegSplitter } from './jpeg-splitter';

/** Largest part header block kept while looking for its end. */
const MAX_HEADER_BYTES = 8 * 1024;

export interface MultipartJpegReaderOptions {
  /** A larger part is a broken stream (default 16 MiB). */
  maxFrameBytes?: number;
}

/** Thrown from push() when the bytes are not a multipart MJPEG stream. */
export class MultipartError extends Error {
  override name = 'MultipartError';
}

export class MultipartJpegReader {
  private buffer: Buffer = Buffer.alloc(0);
  /** Bytes still to read of the current part's body (-1: looking for part headers). */
  private bodyLeft = -1;
  private body: Buffer[] = [];
  private bodyType = '';
  private splitter?: JpegSplitter;
  private readonly maxFrameBytes: number;
  /** Parts that were not JPEG (their Content-Type), dropped. */
  skipped = 0;
  /** The Content-Type of the last part that was not a JPEG, for explaining a stream without frames. */
  lastSkippedType = '';

  constructor(
    private readonly onFrame: (jpeg: JpegChunks) => void,
    options: MultipartJpegReaderOptions = {},
  ) {
    this.maxFrameBytes = options.maxFrameBytes ?? 16 * 1024 * 1024;
  }

  /** True once parts without Content-Length made the reader fall back to the JPEG splitter. */
  get splitting(): boolean {
    return this.splitter !== undefined;
  }

  /** Feeds the next chunk of the answer's body; throws MultipartError when it cannot be read. */
  push(chunk: Buffer): void {
    if (this.splitter) {
      this.splitter.push(chunk);
      return;
    }
    this.buffer = this.buffer.length ? Buffer.concat([this.buffer, chunk]) : chunk;
    // readHeaders() may switch to the splitter: `splitting` is read again each time round.
    while (this.buffer.length > 0 && !this.splitting) {
      if (this.bodyLeft >= 0) {
        if (!this.readBody()) return;
      } else if (!this.readHeaders()) {
        return;
      }
    }
  }

  /** Takes body bytes; true when the part is complete (and handed on). */
  private readBody(): boolean {
    const take = Math.min(this.bodyLeft, this.buffer.length);
    this.body.push(this.buffer.subarray(0, take));
    this.buffer = this.buffer.subarray(take);
    this.bodyLeft -= take;
    if (this.bodyLeft > 0) return false;
    // Handed on as the chunks it came in: joined only when something reads its bytes.
    const jpeg = new JpegChunks(this.body);
    this.body = [];
    this.bodyLeft = -1;
    const head = jpeg.head(2);
    if (jpeg.length >= 4 && head[0] === 0xff && head[1] === 0xd8) {
      this.onFrame(jpeg);
    } else {
      this.skipped++;
      this.lastSkippedType = this.bodyType || 'no Content-Type';
    }
    return true;
  }

  /** Reads one header block (boundary line, headers, blank line); false when it is incomplete. */
  private readHeaders(): boolean {
    const end = findBlankLine(this.buffer);
    if (!end) {
      if (this.buffer.length > MAX_HEADER_BYTES) {
        throw new MultipartError(`no part headers in the first ${MAX_HEADER_BYTES} bytes: this is not an MJPEG stream`);
      }
      return false;
    }
    const text = this.buffer.subarray(0, end.headersEnd).toString('latin1');
    const rest = this.buffer.subarray(end.bodyStart);
    const headers = parseHeaderLines(text);
    this.buffer = rest;
    if (headers.size === 0) return true; // blank lines and a boundary between parts
    const lengthText = headers.get('content-length');
    this.bodyType = headers.get('content-type') ?? '';
    if (lengthText === undefined) {
      // No length to cut by: follow the JPEG structure for the rest of the stream.
      this.splitter = new JpegSplitter(this.onFrame, { maxFrameBytes: this.maxFrameBytes });
      this.buffer = Buffer.alloc(0);
      this.splitter.push(rest);
      return true;
    }
    const length = Number(lengthText);
    if (!/^\d+$/.test(lengthText) || length > this.maxFrameBytes) {
      throw new MultipartError(`a part says Content-Length: ${lengthText.slice(0, 40)}, which cannot be a frame`);
    }
    this.bodyLeft = length;
    return true;
  }
}

/** Where the first empty line is: the header text ends at `headersEnd`, the body starts at `bodyStart`. */
function findBlankLine(buffer: Buffer): { headersEnd: number; bodyStart: number } | undefined {
  const limit = Math.min(buffer.length, MAX_HEADER_BYTES + 4);
  let lineStart = 0;
  for (let i = 0; i < limit; i++) {
    if (buffer[i] !== 0x0a) continue;
    // A line ends at i ("\n" or "\r\n"); an empty line there ends the headers.
    const contentEnd = i > lineStart && buffer[i - 1] === 0x0d ? i - 1 : i;
    if (contentEnd === lineStart) return { headersEnd: lineStart, bodyStart: i + 1 };
    lineStart = i + 1;
  }
  return undefined;
}

/** `Name: value` lines, lower-cased names; other lines (the boundary) are ignored. */
function parseHeaderLines(text: string): Map<string, string> {
  const headers = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const match = /^([A-Za-z0-9-]+)\s*:\s*(.*)$/.exec(line);
    if (!match) continue;
    const [, name = '', value = ''] = match; // both groups take part in every match
    headers.set(name.toLowerCase(), value.trim());
  }
  return headers;
}

/** Start-of-frame markers that carry the picture's size (every SOF except DHT, JPG and DAC). */
function isSof(marker: number): boolean {
  return marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;
}

/** A JPEG's width and height from its SOF marker; undefined when it has none before the scan. */
export function jpegSize(jpeg: Buffer): { width: number; height: number } | undefined {
  if (jpeg.length < 4 || jpeg[0] !== 0xff || jpeg[1] !== 0xd8) return undefined;
  let i = 2;
  while (i + 4 <= jpeg.length) {
    if (jpeg.readUInt8(i) !== 0xff) return undefined;
    const marker = jpeg.readUInt8(i + 1);
    if (marker === 0xff) {
      i++; // fill byte
      continue;
    }
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {
      i += 2; // no length
      continue;
    }
    if (marker === 0xda || marker === 0xd9) return undefined; // scan or end before any SOF
    const length = jpeg.readUInt16BE(i + 2);
    if (isSof(marker)) {
      if (i + 9 > jpeg.length) return undefined;
      return { height: jpeg.readUInt16BE(i + 5), width: jpeg.readUInt16BE(i + 7) };
    }
    i += 2 + length;
  }
  return undefined;
}
