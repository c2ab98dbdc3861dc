// Pure policy: caps a stream of frames at a frame rate by dropping, never by duplicating. It is
// GCRA (a token bucket): each admitted frame books one frame interval; a frame may come early by
// up to the tolerance. A source at exactly the cap whose frames arrive late and then bunched
// (network or scheduling jitter) loses none of them, while over any long stretch no more than
// the cap gets through. The caller passes the time, so the policy never reads a clock.

export interface RateCapOptions {
  /** How early a frame may arrive against the booked schedule (default 500 ms, at least one interval). */
  toleranceMs?: number;
}

export class FrameRateCap {
  private readonly intervalMs: number;
  private readonly toleranceMs: number;
  /** When the next frame is due on the booked schedule (GCRA's theoretical arrival time). */
  private due = -Infinity;
  /** Frames refused so far. */
  dropped = 0;

  /** `maxFps` of 0 (or less, or not finite) admits every frame. */
  constructor(maxFps: number, options: RateCapOptions = {}) {
    this.intervalMs = maxFps > 0 && Number.isFinite(maxFps) ? 1000 / maxFps : 0;
    this.toleranceMs = Math.max(this.intervalMs, options.toleranceMs ?? 500);
  }

  /** True when a frame arriving at `nowMs` may go out; it is then counted against the cap. */
  admit(nowMs: number): boolean {
    if (this.intervalMs === 0) return true;
    if (nowMs < this.due - this.toleranceMs) {
      this.dropped++;
      return false;
    }
    this.due = Math.max(this.due, nowMs) + this.intervalMs;
    return true;
  }
}
