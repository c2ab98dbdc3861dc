// The one restart/retry backoff: how long to wait after a run of failures. The capture (FrameHub),
// the H.264 stage, the warm HomeKit encoder and the alert mailer each keep their own numbers; the
// rule is this one.

/**
 * Doubling delays: `initialMs` after the first failure, then 2x, 4x ... up to `maxMs`.
 * `failures` counts the failures in a row so far, the one just seen included (0 is read as 1).
 */
export function backoffDelay(failures: number, initialMs: number, maxMs: number): number {
  return Math.min(maxMs, initialMs * 2 ** Math.min(Math.max(0, failures - 1), 30));
}
