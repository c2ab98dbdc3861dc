// One teardown point per object. An object that owns a process, a session or a server keeps one
// AbortController for its lifetime: every way it can end (stopped by its owner, its process
// exiting, a timeout, a failure) aborts that controller with a reason saying which, and the
// teardown registered here runs once, whichever came first. "Has it ended?" is
// `signal.aborted`, never a flag of its own (as homebridge-plugin-utils' FFmpeg processes do).

/**
 * Runs `teardown` once when `signal` aborts (at once if it already has), with the abort's
 * reason; its synchronous part runs inside `abort()`, so by the time `abort()` returns the object
 * has stopped taking part. Answers a promise of the teardown's completion, which never rejects (a
 * teardown that throws is reported to `onError`, default: ignored).
 */
export function whenAborted(signal: AbortSignal, teardown: (reason: unknown) => void | Promise<void>, onError?: (error: unknown) => void): Promise<void> {
  return new Promise<void>((resolve) => {
    const run = (): void => {
      let result: void | Promise<void>;
      try {
        result = teardown(signal.reason);
      } catch (error) {
        onError?.(error);
        resolve();
        return;
      }
      Promise.resolve(result)
        .catch((error: unknown) => onError?.(error))
        .finally(resolve);
    };
    if (signal.aborted) run();
    else signal.addEventListener('abort', run, { once: true });
  });
}

/** `fn`, run on the first call only: the end of a lease (a hold's release), however often it is called. */
export function once(fn: () => void): () => void {
  let pending: (() => void) | undefined = fn;
  return () => {
    const run = pending;
    pending = undefined;
    run?.();
  };
}
