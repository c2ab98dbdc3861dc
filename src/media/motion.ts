// Motion detection on a FrameHub: two frames a second (sampleFps; the others are passed over
// undecoded) are shrunk to a small grey image (sharp, decoding the JPEG at 1/8 of its size: a
// 1280x720 frame costs about half a full decode, ~4-5 ms of one core here) and compared with the
// previous one; enough changed pixels is motion. Half a second apart, a person walking through
// the picture has moved far enough to count, and motion is seen well inside HomeKit Secure
// Video's 4 s prebuffer. A scene in which nothing has changed for 10 s is sampled once a second
// (stillSampleFps) until something does: the usual case of a camera watching an empty room costs
// half, and motion is still seen within a second. Motion sets `detected`
// for `cooldownSeconds`, then clears; new motion inside that window does not extend it, so a
// scene that keeps moving gives one notification per cooldown, as HomeKit users expect.
import { EventEmitter } from 'node:events';

import sharp from 'sharp';

import type { Log } from '../log';
import type { Frame, FrameHub, Subscription } from './frame-hub';

export const ANALYSIS_WIDTH = 64;
export const ANALYSIS_HEIGHT = 48;
/** A pixel counts as changed when its grey level moved by more than this (0..255). */
export const PIXEL_THRESHOLD = 24;
/** Frames analysed per second at most, unless the options say otherwise. */
export const DEFAULT_SAMPLE_FPS = 2;

/** Frames analysed per second of a still scene. */
export const STILL_SAMPLE_FPS = 1;
/** A scene counts as still after this long without a change worth a second look (ms). */
export const STILL_AFTER_MS = 10_000;

/** Pure policy: whether a frame that arrived at `frameTime` is analysed, the last one having been at `lastSample` (ms). */
export function isSampleDue(frameTime: number, lastSample: number, intervalMs: number): boolean {
  return frameTime - lastSample >= intervalMs;
}

export interface SamplingPolicy {
  /** Between samples while the scene moves, or moved within stillAfterMs (ms). */
  intervalMs: number;
  /** Between samples of a still scene (ms). */
  stillIntervalMs: number;
  stillAfterMs: number;
}

/** Pure policy: the interval before the next sample, the scene having last changed at `lastChangeAt` (ms). */
export function sampleInterval(now: number, lastChangeAt: number, policy: SamplingPolicy): number {
  return now - lastChangeAt >= policy.stillAfterMs ? policy.stillIntervalMs : policy.intervalMs;
}

/** Pure policy: the fraction of changed pixels that counts as motion for a sensitivity 0..100. */
export function motionThreshold(sensitivity: number): number {
  const s = Math.min(100, Math.max(0, sensitivity)) / 100;
  // Geometric from 30 % of the picture (0) through about 2.4 % (50) to 0.2 % (100).
  return 0.002 * 150 ** (1 - s);
}

/** Pure: the fraction of pixels whose grey level differs by more than `pixelThreshold`. */
export function changedFraction(a: Uint8Array, b: Uint8Array, pixelThreshold = PIXEL_THRESHOLD): number {
  const n = Math.min(a.length, b.length);
  if (n === 0) return 0;
  let changed = 0;
  for (let i = 0; i < n; i++) {
    const x = a.at(i);
    const y = b.at(i);
    if (x !== undefined && y !== undefined && Math.abs(x - y) > pixelThreshold) changed++;
  }
  return changed / n;
}

/** A small grey copy of a JPEG, for comparing frames cheaply. */
export function greyThumbnail(jpeg: Buffer): Promise<Buffer> {
  return sharp(jpeg, { failOn: 'none' })
    .resize(ANALYSIS_WIDTH, ANALYSIS_HEIGHT, { fit: 'fill', fastShrinkOnLoad: true })
    .greyscale()
    .raw()
    .toBuffer();
}

export interface MotionOptions {
  sensitivity: number;
  cooldownSeconds: number;
  /** Frames analysed per second at most (default DEFAULT_SAMPLE_FPS). */
  sampleFps?: number;
  /** Frames analysed per second of a still scene (default STILL_SAMPLE_FPS). */
  stillSampleFps?: number;
  /** How long without change makes a scene still, ms (default STILL_AFTER_MS). */
  stillAfterMs?: number;
}

export interface MotionEvent {
  /** The frame in which motion was seen (the alerts attach it). */
  frame: Frame;
  /** The fraction of the picture that changed. */
  score: number;
}

/** MotionDetector's events and what each listener is called with. */
export interface MotionDetectorEvents {
  /** Motion started (the detector was clear); `detected` is true from now until 'clear'. */
  motion: [event: MotionEvent];
  /** The cooldown after 'motion' has passed, or stop() ended a detection; `detected` is false again. */
  clear: [];
}

/** Emits 'motion' when motion starts and 'clear' when the cooldown has passed (MotionDetectorEvents). */
export class MotionDetector extends EventEmitter<MotionDetectorEvents> {
  private subscription?: Subscription;
  private previous?: Buffer;
  private lastSample = 0;
  /** When the picture last changed enough to be worth a second look (or the detector began comparing). */
  private lastChangeAt = 0;
  private clearTimer?: NodeJS.Timeout;
  private _detected = false;
  private readonly threshold: number;
  private readonly sampling: SamplingPolicy;
  /** Frames decoded and compared so far (the rest were passed over). */
  framesAnalysed = 0;

  constructor(
    private readonly hub: FrameHub,
    private readonly options: MotionOptions,
    private readonly log: Log,
  ) {
    super();
    this.threshold = motionThreshold(options.sensitivity);
    const intervalMs = 1000 / (options.sampleFps ?? DEFAULT_SAMPLE_FPS);
    this.sampling = {
      intervalMs,
      // Never more often than a moving scene is sampled.
      stillIntervalMs: Math.max(intervalMs, 1000 / (options.stillSampleFps ?? STILL_SAMPLE_FPS)),
      stillAfterMs: options.stillAfterMs ?? STILL_AFTER_MS,
    };
  }

  get detected(): boolean {
    return this._detected;
  }

  /** After a capture restart the picture may jump (exposure settling): compare only new frames. */
  private readonly forget = (): void => {
    this.previous = undefined;
  };

  /** Starts watching; this keeps the camera's capture running. */
  start(): void {
    if (this.subscription) return;
    this.hub.on('offline', this.forget);
    this.hub.on('online', this.forget);
    this.subscription = this.hub.subscribe((frame, done) => {
      if (!isSampleDue(frame.time, this.lastSample, sampleInterval(frame.time, this.lastChangeAt, this.sampling))) {
        done();
        return;
      }
      this.lastSample = frame.time;
      this.framesAnalysed++;
      this.analyse(frame).then(done, (error: unknown) => {
        this.log.debug(`Motion analysis skipped a frame: ${(error as Error).message}`);
        done();
      });
    });
  }

  stop(): void {
    this.subscription?.unsubscribe();
    this.subscription = undefined;
    this.hub.off('offline', this.forget);
    this.hub.off('online', this.forget);
    this.previous = undefined;
    clearTimeout(this.clearTimer);
    if (this._detected) {
      this._detected = false;
      this.emit('clear');
    }
  }

  private async analyse(frame: Frame): Promise<void> {
    const grey = await greyThumbnail(frame.data);
    const previous = this.previous;
    this.previous = grey;
    if (!this.subscription) return;
    // Comparing begins (or begins again after a restart) at the moving scene's rate.
    if (!previous) {
      this.lastChangeAt = frame.time;
      return;
    }
    const score = changedFraction(previous, grey);
    // Half the motion threshold, or motion still detected, keeps the scene "moving".
    if (score >= this.threshold / 2 || this._detected) this.lastChangeAt = frame.time;
    if (score < this.threshold || this._detected) return;
    this._detected = true;
    this.log.debug(`Motion: ${(score * 100).toFixed(1)} % of the picture changed.`);
    this.emit('motion', { frame, score });
    this.clearTimer = setTimeout(() => {
      this._detected = false;
      this.emit('clear');
    }, this.options.cooldownSeconds * 1000);
    this.clearTimer.unref();
  }
}
