// Splits a byte stream of concatenated JPEG images (ffmpeg's `-f mjpeg` output, an MJPEG camera)
// into whole frames. It follows the JPEG structure instead of searching for FFD8/FFD9 pairs:
// marker segments are skipped by their length (so an EXIF thumbnail, a JPEG inside an APP1
// segment, cannot end the frame early), and only entropy-coded data after SOS is scanned for
// markers. Markers and lengths split across chunks, several frames in one chunk and bytes
// between frames are all handled. Frames are handed on as the chunks they came in (JpegChunks).

import { JpegChunks } from './jpeg-chunks';

const enum State {
  /** Outside a frame, looking for the SOI marker (FF D8). */
  SeekSoi,
  /** Inside the header: expecting FF, the start of the next marker. */
  MarkerPrefix,
  /** Read FF (and maybe fill bytes): the next byte is the marker code. */
  MarkerCode,
  /** Reading the two-byte big-endian length of a marker segment. */
  LengthHigh,
  LengthLow,
  /** Skipping the rest of a marker segment. */
  Skip,
  /** In entropy-coded data after SOS, scanning for a marker that is not stuffing or a restart. */
  Entropy,
  /** In entropy-coded data, the previous byte was FF. */
  EntropyFF,
}

const SOI = 0xd8;
const EOI = 0xd9;
const SOS = 0xda;
const SOI_BYTES = Buffer.from([0xff, SOI]);

export interface JpegSplitterOptions {
  /** Frames larger than this are dropped and the splitter resynchronises (default 16 MiB). */
  maxFrameBytes?: number;
}

export class JpegSplitter {
  private state = State.SeekSoi;
  private afterSegment = State.MarkerPrefix;
  private sawFF = false;
  private lengthHigh = 0;
  private skipRemaining = 0;
  private marker = 0;
  private parts: Buffer[] = [];
  private partBytes = 0;
  private readonly maxFrameBytes: number;
  /** Frames dropped for being over the size limit or malformed. */
  dropped = 0;

  constructor(
    private readonly onFrame: (frame: JpegChunks) => void,
    options: JpegSplitterOptions = {},
  ) {
    this.maxFrameBytes = options.maxFrameBytes ?? 16 * 1024 * 1024;
  }

  /** Feeds the next chunk; `onFrame` is called for every frame it completes. */
  push(chunk: Buffer): void {
    let i = 0;
    let frameStart = this.state === State.SeekSoi ? -1 : 0;
    const n = chunk.length;

    while (i < n) {
      switch (this.state) {
        case State.SeekSoi: {
          if (this.sawFF && chunk[i] === SOI) {
            // The FF may have been the last byte of the previous chunk: the frame's parts start
            // with a fresh SOI and continue after it.
            i++;
            this.beginFrame();
            frameStart = i;
            this.state = State.MarkerPrefix;
            break;
          }
          const ff = chunk.indexOf(0xff, i);
          if (ff === -1) {
            this.sawFF = false;
            i = n;
            break;
          }
          this.sawFF = true;
          i = ff + 1;
          break;
        }
        case State.MarkerPrefix:
          if (chunk[i] !== 0xff) {
            this.abandonFrame();
            frameStart = -1;
            this.state = State.SeekSoi;
            this.sawFF = false;
            break;
          }
          i++;
          this.state = State.MarkerCode;
          break;
        case State.MarkerCode: {
          const code = chunk.readUInt8(i++);
          if (code === 0xff) break; // fill byte
          this.marker = code;
          if (code === EOI) {
            frameStart = this.emitFrame(chunk, frameStart, i);
            break;
          }
          if (code === SOI || code === 0x01 || (code >= 0xd0 && code <= 0xd7)) {
            // Stand-alone markers without a length. A second SOI inside a header means the
            // previous frame was cut short: start over from here.
            if (code === SOI) {
              this.dropped++;
              this.beginFrame();
              frameStart = i;
            }
            this.state = State.MarkerPrefix;
            break;
          }
          this.state = State.LengthHigh;
          break;
        }
        case State.LengthHigh:
          this.lengthHigh = chunk.readUInt8(i++);
          this.state = State.LengthLow;
          break;
        case State.LengthLow: {
          const length = (this.lengthHigh << 8) | chunk.readUInt8(i++);
          if (length < 2) {
            this.abandonFrame();
            frameStart = -1;
            this.state = State.SeekSoi;
            this.sawFF = false;
            break;
          }
          this.skipRemaining = length - 2;
          this.afterSegment = this.marker === SOS ? State.Entropy : State.MarkerPrefix;
          this.state = this.skipRemaining > 0 ? State.Skip : this.afterSegment;
          break;
        }
        case State.Skip: {
          const take = Math.min(this.skipRemaining, n - i);
          i += take;
          this.skipRemaining -= take;
          if (this.skipRemaining === 0) this.state = this.afterSegment;
          break;
        }
        case State.Entropy: {
          const ff = chunk.indexOf(0xff, i);
          if (ff === -1) {
            i = n;
            break;
          }
          i = ff + 1;
          this.state = State.EntropyFF;
          break;
        }
        case State.EntropyFF: {
          const code = chunk.readUInt8(i++);
          if (code === 0x00 || (code >= 0xd0 && code <= 0xd7)) {
            this.state = State.Entropy; // byte stuffing or a restart marker
          } else if (code === 0xff) {
            // fill byte: stay in EntropyFF
          } else if (code === EOI) {
            frameStart = this.emitFrame(chunk, frameStart, i);
          } else {
            // Another marker segment (a progressive JPEG's next DHT/SOS, say).
            this.marker = code;
            this.state = State.LengthHigh;
          }
          break;
        }
      }
      if (frameStart !== -1 && this.partBytes + (i - frameStart) > this.maxFrameBytes) {
        this.dropped++;
        this.abandonFrame();
        frameStart = -1;
        this.state = State.SeekSoi;
        this.sawFF = false;
      }
    }

    if (frameStart !== -1 && this.state !== State.SeekSoi) {
      const rest = chunk.subarray(frameStart);
      this.parts.push(rest);
      this.partBytes += rest.length;
    }
  }

  private beginFrame(): void {
    this.parts = [SOI_BYTES];
    this.partBytes = SOI_BYTES.length;
    this.sawFF = false;
  }

  private abandonFrame(): void {
    this.parts = [];
    this.partBytes = 0;
  }

  /** Completes the frame ending before `end` in `chunk`; returns the new frame start (-1). */
  private emitFrame(chunk: Buffer, frameStart: number, end: number): number {
    const frame = new JpegChunks([...this.parts, chunk.subarray(frameStart, end)]);
    this.parts = [];
    this.partBytes = 0;
    this.state = State.SeekSoi;
    this.sawFF = false;
    this.onFrame(frame);
    return -1;
  }
}
