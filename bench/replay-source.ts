// A FrameSource that replays the benchmark corpus at a fixed rate, in place of an ffmpeg capture.
// Both benchmarked servers use it, so they get the same frames at the same times. Each frame is
// stamped (see corpus.ts) with its sequence number and its scheduled time: the moment a camera
// would have produced it. A server whose event loop is busy runs the timer late, and that delay
// shows up as latency, as it would with a real camera whose frames wait in a pipe. Overdue frames
// go out one per turn of the event loop, as successive reads of a pipe would deliver them. When
// the loop falls more than `maxBurst` frames behind, the oldest missed frames are skipped (their
// sequence numbers are used up, so viewers see them as lost) and counted.
import { EventEmitter } from 'node:events';

import type { CaptureExit, FrameSource } from '../src/media/capture';
import { nowMs, stampFrame } from './corpus';

/** Shared by every source of one process, so sequence numbers keep counting across restarts. */
export class ReplayStats {
  /** The last sequence number used. */
  seq = 0;
  emitted = 0;
  skipped = 0;
  /** How late a frame left compared with its schedule: worst and total (for the mean). */
  maxLateMs = 0;
  totalLateMs = 0;
  starts = 0;

  /** Restarts the counters (not the sequence number). */
  reset(): void {
    this.emitted = 0;
    this.skipped = 0;
    this.maxLateMs = 0;
    this.totalLateMs = 0;
  }
}

export class ReplaySource extends EventEmitter implements FrameSource {
  private timer?: NodeJS.Timeout;
  private immediate?: NodeJS.Immediate;
  private anchor = 0;
  /** Frames emitted or skipped since start(). */
  private done = 0;
  private exited = false;
  private readonly periodMs: number;

  constructor(
    private readonly frames: Buffer[],
    private readonly stats: ReplayStats,
    fps = 30,
    private readonly maxBurst = 5,
  ) {
    super();
    if (frames.length === 0) throw new Error('a replay needs at least one frame');
    this.periodMs = 1000 / fps;
  }

  start(): void {
    this.stats.starts++;
    this.anchor = nowMs();
    this.done = 0;
    this.tick();
  }

  stop(): Promise<void> {
    clearTimeout(this.timer);
    clearImmediate(this.immediate);
    this.timer = undefined;
    if (!this.exited) {
      this.exited = true;
      const exit: CaptureExit = { code: 0, signal: null, stderr: '', requested: true };
      process.nextTick(() => this.emit('exit', exit));
    }
    return Promise.resolve();
  }

  private tick(): void {
    this.timer = undefined;
    if (this.exited) return;
    const now = nowMs();
    const due = Math.floor((now - this.anchor) / this.periodMs) + 1;
    const behind = due - this.done;
    if (behind > this.maxBurst) {
      const skip = behind - this.maxBurst;
      this.stats.skipped += skip;
      this.stats.seq += skip;
      this.done += skip;
    }
    if (this.done < due) {
      const scheduled = this.anchor + this.done * this.periodMs;
      const seq = ++this.stats.seq;
      this.done++;
      const late = now - scheduled;
      this.stats.emitted++;
      this.stats.totalLateMs += late;
      if (late > this.stats.maxLateMs) this.stats.maxLateMs = late;
      const frame = this.frames[(seq - 1) % this.frames.length];
      if (frame) this.emit('frame', stampFrame(frame, seq, scheduled));
    }
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- a frame listener may have stopped the source
    if (this.exited) return;
    if (this.done < due) {
      // Behind schedule: the next frame in the next turn of the event loop, as the next read of
      // a pipe would bring it (a 1280x720 frame is larger than a pipe's 64 KiB buffer).
      this.immediate = setImmediate(() => this.tick());
      return;
    }
    const next = this.anchor + this.done * this.periodMs;
    this.timer = setTimeout(() => this.tick(), Math.max(0, next - nowMs()));
  }
}
