// Snapshots at a requested size, from the FrameHub's latest frame (no ffmpeg per snapshot).
// Scaled with sharp (libvips: shrink-on-load JPEG decoding makes a 1280x720 -> 640x360 resize
// take milliseconds), cached per size for a short time, and concurrent requests for the same
// size share one piece of work.
import sharp from 'sharp';

import type { Frame, FrameHub } from './frame-hub';

export interface SnapshotOptions {
  /** A cached snapshot is reused for this long (default 1 s). */
  maxAgeMs?: number;
  /** How long to wait for a frame when the capture has to start (default 4 s). */
  timeoutMs?: number;
  /** JPEG quality of scaled snapshots (default 80). */
  quality?: number;
}

interface CacheEntry {
  frameSeq: number;
  /** When the frame it was made from arrived. */
  frameTime: number;
  image: Promise<Buffer>;
}

export class Snapshotter {
  private readonly cache = new Map<string, CacheEntry>();
  private readonly maxAgeMs: number;
  private readonly timeoutMs: number;
  private readonly quality: number;

  constructor(
    private readonly hub: FrameHub,
    options: SnapshotOptions = {},
  ) {
    this.maxAgeMs = options.maxAgeMs ?? 1_000;
    this.timeoutMs = options.timeoutMs ?? 4_000;
    this.quality = options.quality ?? 80;
  }

  /**
   * A JPEG of exactly `width` x `height` (the frame is scaled to cover that box and centred),
   * or the frame as it is when no size is given.
   */
  async get(width?: number, height?: number): Promise<Buffer> {
    const frame = await this.hub.snapshot(this.maxAgeMs, this.timeoutMs);
    if (!width || !height) return frame.data;
    const key = `${width}x${height}`;
    const cached = this.cache.get(key);
    // Reused while its frame is the one at hand, or no older than maxAgeMs itself.
    if (cached && (cached.frameSeq === frame.seq || Date.now() - cached.frameTime <= this.maxAgeMs)) return cached.image;
    const image = this.scale(frame, width, height);
    this.cache.set(key, { frameSeq: frame.seq, frameTime: frame.time, image });
    // A failed scale is not kept.
    image.catch(() => {
      if (this.cache.get(key)?.image === image) this.cache.delete(key);
    });
    return image;
  }

  private scale(frame: Frame, width: number, height: number): Promise<Buffer> {
    return sharp(frame.data, { failOn: 'none' })
      .resize(width, height, { fit: 'cover', position: 'centre', fastShrinkOnLoad: true })
      .jpeg({ quality: this.quality, mozjpeg: false })
      .toBuffer();
  }
}
