// The FrameHub owns one camera's capture and shares its frames with every consumer: web viewers,
// snapshots, HomeKit streams, motion detection. It keeps the latest frame; it runs the capture
// only while something consumes it (plus an idle grace period); it restarts the capture with
// exponential backoff when it exits or stalls, and consumers stay attached across restarts.
// Delivery is latest-frame-wins: a busy consumer has at most one frame waiting, the newest.
import { EventEmitter } from 'node:events';

import type { Log } from '../log';
import { backoffDelay } from '../util/backoff';
import { once, whenAborted } from '../util/lifetime';
import type { CaptureExit, FrameSource } from './capture';
import { JpegChunks } from './jpeg-chunks';

export interface Frame {
  /** One complete JPEG in one buffer (joined on first read). Consumers must not modify it. */
  readonly data: Buffer;
  /** The same bytes as buffers to write one after the other, unjoined: for pipes and sockets. */
  readonly pieces: readonly Buffer[];
  /** Its size in bytes. */
  readonly size: number;
  /** Counts frames from this hub, starting at 1. */
  seq: number;
  /** Arrival time, milliseconds since the epoch. */
  time: number;
}

export type HubState = 'idle' | 'starting' | 'streaming' | 'offline';

/** Called with a frame; call `done` once the consumer can take the next one. */
export type Deliver = (frame: Frame, done: () => void) => void;

export interface Subscription {
  unsubscribe(): void;
}

export interface FrameHubOptions {
  /** Camera name, for log lines. */
  name: string;
  /** Makes a new, unstarted source (an ffmpeg capture) each time the hub starts one. */
  createSource: () => FrameSource;
  log: Log;
  /** How long the capture keeps running after its last consumer left (default 10 s). */
  idleGraceMs?: number;
  /** No frame for this long while streaming counts as a stall (default 5 s). */
  stallTimeoutMs?: number;
  /** No first frame for this long after a start counts as a failure (default 15 s). */
  startTimeoutMs?: number;
  /** Restart delays: the first, doubled per consecutive failure up to the max (0.5 s .. 30 s). */
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  /**
   * A capture that delivered frames for this long before it ended was healthy: the next restart
   * waits only the first delay again (default 3 s). A camera that dies every few seconds must not
   * end up waiting longer and longer for each restart.
   */
  healthyRunMs?: number;
}

export interface SubscribeOptions {
  /** Called once if the hub shuts down while subscribed (end the response, say). */
  onClose?: () => void;
}

/** Why a subscription ends: its consumer let go, or the hub shut down (then `onClose` is called). */
type SubscriptionEnd = 'unsubscribed' | 'hub closed';

/** One consumer's delivery slot: one frame in flight, at most one waiting. */
class Subscriber {
  private busy = false;
  private pending?: Frame;
  private token = 0;
  /** Aborted once, with a SubscriptionEnd; nothing is delivered after that. */
  readonly lifetime = new AbortController();

  constructor(
    private readonly deliver: Deliver,
    private readonly onError: (error: unknown) => void,
  ) {}

  /** Ends the subscription (the first reason wins). */
  end(reason: SubscriptionEnd): void {
    this.lifetime.abort(reason);
  }

  offer(frame: Frame): void {
    if (this.lifetime.signal.aborted) return;
    if (this.busy) {
      this.pending = frame;
      return;
    }
    this.busy = true;
    const token = ++this.token;
    try {
      this.deliver(frame, () => this.done(token));
    } catch (error) {
      // A broken consumer must not take the capture (or Homebridge) down with it.
      this.onError(error);
    }
  }

  private done(token: number): void {
    if (token !== this.token || !this.busy) return; // a second call for the same frame
    this.busy = false;
    const next = this.pending;
    this.pending = undefined;
    if (next) this.offer(next);
  }
}

/** What 'restart' tells: a capture ended and the next one starts after `delayMs`. */
export interface HubRestart {
  /** The backoff before the next start, in milliseconds. */
  delayMs: number;
  /** Consecutive failed captures, this one included (reset by a healthy run). */
  failures: number;
}

/** FrameHub's events and what each listener is called with. */
export interface FrameHubEvents {
  /** Every frame from the capture, as it arrives (subscribers get it latest-frame-wins after this). */
  frame: [frame: Frame];
  /** The hub's state changed to `state`. */
  state: [state: HubState];
  /** A capture delivered its first frame (after a start, a restart, or being offline). */
  online: [];
  /** A capture that was not already failing ended or stalled; `reason` is its last error. */
  offline: [reason: string];
  /** A capture ended unrequested (failed or stalled); the next one starts after the backoff. */
  restart: [restart: HubRestart];
  /** close() has stopped the capture and ended every subscription. */
  close: [];
}

/** Emits FrameHubEvents. */
export class FrameHub extends EventEmitter<FrameHubEvents> {
  readonly name: string;
  private readonly opts: Required<Omit<FrameHubOptions, 'name' | 'createSource' | 'log'>>;
  private readonly createSource: () => FrameSource;
  private readonly log: Log;

  private source?: FrameSource;
  private readonly subscribers = new Set<Subscriber>();
  private holds = 0;
  private _latest?: Frame;
  private _state: HubState = 'idle';
  private seq = 0;
  private failures = 0;
  private startedAt = 0;
  private firstFrameAt = 0;
  private lastFrameAt = 0;
  private restartTimer?: NodeJS.Timeout;
  /** No capture starts before this time (the restart backoff), whoever asks. */
  private nextStartAt = 0;
  private idleTimer?: NodeJS.Timeout;
  private watchdog?: NodeJS.Timeout;
  private stalled = false;
  /** Aborted by close(): the hub's one teardown stops the capture and ends every subscription. */
  private readonly lifetime = new AbortController();
  private readonly torndown: Promise<void>;
  private _lastError = '';
  /** How many sources this hub has started (tests check there is one capture per camera). */
  starts = 0;

  constructor(options: FrameHubOptions) {
    super();
    // Every waiting snapshot listens for a frame; there is no fixed limit to how many wait.
    this.setMaxListeners(0);
    this.name = options.name;
    this.createSource = options.createSource;
    this.log = options.log;
    this.opts = {
      idleGraceMs: options.idleGraceMs ?? 10_000,
      stallTimeoutMs: options.stallTimeoutMs ?? 5_000,
      startTimeoutMs: options.startTimeoutMs ?? 15_000,
      backoffInitialMs: options.backoffInitialMs ?? 500,
      backoffMaxMs: options.backoffMaxMs ?? 30_000,
      healthyRunMs: options.healthyRunMs ?? 3_000,
    };
    this.torndown = whenAborted(this.lifetime.signal, () => this.teardown());
  }

  private get closed(): boolean {
    return this.lifetime.signal.aborted;
  }

  get state(): HubState {
    return this._state;
  }

  /** False only while the capture is failing; an idle hub is not offline. */
  get online(): boolean {
    return this._state !== 'offline';
  }

  get latest(): Frame | undefined {
    return this._latest;
  }

  /** The last error the capture reported, for pages and log lines ('' when none). */
  get lastError(): string {
    return this._lastError;
  }

  get consumerCount(): number {
    return this.subscribers.size + this.holds;
  }

  /**
   * Receives every frame, latest-frame-wins. A new subscriber is handed the latest frame at once
   * when the capture is streaming. The capture starts if it is not running.
   */
  subscribe(deliver: Deliver, options: SubscribeOptions = {}): Subscription {
    if (this.closed) {
      options.onClose?.();
      return { unsubscribe: () => {} };
    }
    const subscriber: Subscriber = new Subscriber(deliver, (error) => {
      this.log.error(`A frame consumer failed and was detached: ${(error instanceof Error ? error.stack : undefined) ?? String(error)}`);
      unsubscribe();
    });
    const unsubscribe = (): void => subscriber.end('unsubscribed');
    void whenAborted(subscriber.lifetime.signal, (reason) => {
      if (reason === 'hub closed') {
        options.onClose?.();
        return;
      }
      this.subscribers.delete(subscriber);
      this.release();
    });
    this.subscribers.add(subscriber);
    this.demand();
    if (this._state === 'streaming' && this._latest) subscriber.offer(this._latest);
    return { unsubscribe };
  }

  /** Keeps the capture running without receiving frames; call the returned function to let go. */
  hold(): () => void {
    this.holds++;
    this.demand();
    return once(() => {
      this.holds--;
      this.release();
    });
  }

  /**
   * The latest frame when it is at most `maxAgeMs` old; else starts the capture (if needed) and
   * waits for the next frame, up to `timeoutMs`.
   */
  async snapshot(maxAgeMs = 1_000, timeoutMs = 5_000): Promise<Frame> {
    const latest = this._latest;
    if (latest && this._state === 'streaming' && Date.now() - latest.time <= maxAgeMs) return latest;
    if (this.closed) throw new Error(`${this.name}: the camera is shut down`);
    const release = this.hold();
    try {
      return await new Promise<Frame>((resolve, reject) => {
        const cleanup = () => {
          clearTimeout(timer);
          this.off('frame', onFrame);
          this.off('offline', onOffline);
        };
        const fail = (why: string) => {
          cleanup();
          reject(new Error(`${this.name}: ${why}`));
        };
        const onFrame = (frame: Frame) => {
          cleanup();
          resolve(frame);
        };
        // A capture that fails while we wait answers at once, with its reason.
        const onOffline = () => fail(`camera offline: ${this.lastErrorLine()}`);
        // A camera already known to be failing gets a short wait, not the whole timeout.
        const wait = this._state === 'offline' ? Math.min(timeoutMs, 2_000) : timeoutMs;
        const timer = setTimeout(() => {
          const why = this._lastError ? `: ${this.lastErrorLine()}` : '';
          fail(`no frame within ${wait} ms (camera ${this._state}${why})`);
        }, wait);
        this.on('frame', onFrame);
        this.on('offline', onOffline);
      });
    } finally {
      release();
    }
  }

  /** The most useful line of the last error: the hint when there is one, else ffmpeg's last word. */
  private lastErrorLine(): string {
    return this._lastError.split('\n').filter(Boolean).pop() ?? 'unknown error';
  }

  /** Stops the capture for good; later demand is ignored. */
  close(): Promise<void> {
    this.lifetime.abort();
    return this.torndown;
  }

  private async teardown(): Promise<void> {
    clearTimeout(this.restartTimer);
    clearTimeout(this.idleTimer);
    await this.stopSource();
    this.setState('idle');
    const subscribers = [...this.subscribers];
    this.subscribers.clear();
    for (const subscriber of subscribers) subscriber.end('hub closed');
    this.emit('close');
  }

  /** Ends the current capture as if it had failed (used by the stall watchdog; tests too). */
  async restart(reason: string): Promise<void> {
    if (!this.source) return;
    this.log.warn(`Restarting the capture: ${reason}`);
    this.stalled = true;
    this._lastError = reason;
    await this.source.stop();
  }

  private demand(): void {
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    if (this.source || this.restartTimer || this.closed) return;
    const wait = this.nextStartAt - Date.now();
    if (wait > 0) this.scheduleStart(wait);
    else this.startSource();
  }

  /** Starts a capture after `delay` ms if something still wants one then. */
  private scheduleStart(delay: number): void {
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      if (!this.closed && !this.source && this.consumerCount > 0) this.startSource();
    }, delay);
    this.restartTimer.unref();
  }

  private release(): void {
    if (this.consumerCount > 0 || this.closed) return;
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      this.idleTimer = undefined;
      if (this.consumerCount > 0) return;
      clearTimeout(this.restartTimer);
      this.restartTimer = undefined;
      this.log.debug('No consumers left: stopping the capture.');
      void this.stopSource().then(() => {
        if (this.consumerCount === 0 && !this.closed) this.setState('idle');
      });
    }, this.opts.idleGraceMs);
    this.idleTimer.unref();
  }

  private startSource(): void {
    const source = this.createSource();
    this.source = source;
    this.starts++;
    this.stalled = false;
    this.startedAt = Date.now();
    this.firstFrameAt = 0;
    this.lastFrameAt = 0;
    if (this._state !== 'offline') this.setState('starting');
    source.on('frame', (data: Buffer | JpegChunks) => this.onFrame(source, data));
    source.once('exit', (exit: CaptureExit) => this.onExit(source, exit));
    this.watchdog = setInterval(() => this.checkStall(source), Math.min(1_000, this.opts.stallTimeoutMs / 2));
    this.watchdog.unref();
    this.log.debug('Capture starting.');
    try {
      source.start();
    } catch (error) {
      this.onExit(source, { code: null, signal: null, stderr: '', requested: false, spawnError: error as Error });
    }
  }

  private async stopSource(): Promise<void> {
    const source = this.source;
    if (!source) return;
    clearInterval(this.watchdog);
    await source.stop();
  }

  private onFrame(source: FrameSource, data: Buffer | JpegChunks): void {
    if (source !== this.source) return;
    const seq = ++this.seq;
    const time = Date.now();
    // A frame still in its stream's chunks is joined when a consumer first reads its bytes.
    const frame: Frame =
      data instanceof JpegChunks
        ? { get data() { return data.bytes(); }, get pieces() { return data.pieces(); }, size: data.length, seq, time }
        : { data, pieces: [data], size: data.length, seq, time };
    this.firstFrameAt ||= frame.time;
    this.lastFrameAt = frame.time;
    this._latest = frame;
    if (this._state !== 'streaming') {
      const wasOffline = this._state === 'offline';
      this.setState('streaming');
      this._lastError = '';
      this.log.info(wasOffline ? 'Camera is back online.' : `Capture running (${data.length} bytes a frame).`);
      this.emit('online');
    }
    this.emit('frame', frame);
    for (const subscriber of this.subscribers) subscriber.offer(frame);
  }

  private checkStall(source: FrameSource): void {
    if (source !== this.source || this.stalled) return;
    const now = Date.now();
    if (this.lastFrameAt > 0 && now - this.lastFrameAt > this.opts.stallTimeoutMs) {
      void this.restart(`no frame for ${Math.round((now - this.lastFrameAt) / 1000)} s (stalled)`);
    } else if (this.lastFrameAt === 0 && now - this.startedAt > this.opts.startTimeoutMs) {
      void this.restart(`no first frame within ${Math.round(this.opts.startTimeoutMs / 1000)} s`);
    }
  }

  private onExit(source: FrameSource, exit: CaptureExit): void {
    if (source !== this.source) return;
    clearInterval(this.watchdog);
    this.source = undefined;
    if (this.closed) return;
    if (exit.requested && !this.stalled) {
      // Stopped on purpose for idleness; a consumer that arrived during the stop gets a new capture.
      if (this.consumerCount > 0) this.startSource();
      return;
    }

    const detail = exit.spawnError
      ? `could not start ffmpeg (${exit.spawnError.message})`
      : exit.stderr || `ffmpeg exited with ${exit.signal ?? `code ${exit.code}`}`;
    if (!this.stalled) this._lastError = detail;
    if (this.firstFrameAt > 0 && this.lastFrameAt - this.firstFrameAt >= this.opts.healthyRunMs) this.failures = 0;
    const delay = backoffDelay(++this.failures, this.opts.backoffInitialMs, this.opts.backoffMaxMs);
    this.emit('restart', { delayMs: delay, failures: this.failures });
    const wasUp = this._state !== 'offline';
    this.setState('offline');
    const message = `Capture ended: ${this._lastError.split('\n').slice(-3).join(' | ')}. Retrying in ${(delay / 1000).toFixed(1)} s.`;
    if (wasUp) {
      this.log.error(message);
      this.emit('offline', this._lastError);
    } else {
      this.log.debug(message);
    }
    this.nextStartAt = Date.now() + delay;
    // With no consumer left, the next demand starts it (still after the backoff).
    if (this.consumerCount > 0) this.scheduleStart(delay);
  }

  private setState(state: HubState): void {
    if (state === this._state) return;
    this._state = state;
    this.emit('state', state);
  }
}
