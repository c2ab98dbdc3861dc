// The shared H.264 stage of one camera: one encoder ffmpeg fed the FrameHub's JPEG frames, writing
// fragmented MP4 (an init segment, then fragments that start a new GOP at every key frame), kept
// in a ring buffer that always reaches back at least `bufferMs` from a key frame. It runs only
// while a consumer holds it (HomeKit Secure Video while recording is on; browsers watching the
// H.264 view) and stops a short grace period after the last one lets go. It knows nothing of
// HomeKit or HTTP: consumers read it with `read()`, an async iterator of the init segment and the
// fragments, starting as far back as they ask.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';

import type { Log } from '../log';
import { backoffDelay } from '../util/backoff';
import { once, whenAborted } from '../util/lifetime';
import { LineRing } from './capture';
import type { Fmp4Fragment, Fmp4Init } from './fmp4';
import { BoxSplitter, Fmp4Assembler } from './fmp4';
import type { FrameHub, Subscription } from './frame-hub';
import { writeFramePart } from './frame-pipe';
import type { H264Settings } from './h264-args';
import { buildFmp4Args, sameSettings } from './h264-args';
import { stopProcess, track } from './processes';

/** What a reader gets: the init segment (again after every encoder restart), then fragments. */
export type StageItem = { type: 'init'; init: Fmp4Init } | { type: 'fragment'; fragment: Fmp4Fragment };

export interface H264StageOptions {
  /** Camera name, for log lines. */
  name: string;
  hub: FrameHub;
  ffmpegPath: string;
  settings: H264Settings;
  log: Log;
  /** Media the ring buffer keeps, from a key frame (default 8 s: twice HomeKit's 4 s prebuffer). */
  bufferMs?: number;
  /** How long the encoder keeps running after its last holder let go (default 3 s). */
  idleGraceMs?: number;
  /** Restart delays after the encoder dies while held (default 1 s, doubling up to 30 s). */
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  /** A reader with more than this many bytes waiting is skipped to the next key frame (default 16 MB). */
  maxQueuedBytes?: number;
}

export interface ReadOptions {
  /** Start this much media before the live edge, at a key frame (0: at the newest key frame). */
  backMs?: number;
  /** Ends the iteration. */
  signal?: AbortSignal;
  /** This reader's queue bound (default the stage's maxQueuedBytes): past it, it skips to the next key frame. */
  maxQueuedBytes?: number;
}

/** Pure policy: the index of the fragment a reader starts at to get `backMs` before the live edge. */
export function startIndex(fragments: ReadonlyArray<Pick<Fmp4Fragment, 'key' | 'startMs' | 'durationMs'>>, backMs: number): number {
  const last = fragments.at(-1);
  if (!last) return 0;
  const edge = last.startMs + last.durationMs;
  let start = -1;
  for (let i = fragments.length - 1; i >= 0; i--) {
    const fragment = fragments.at(i);
    if (!fragment?.key) continue;
    start = i;
    if (edge - fragment.startMs >= backMs) break;
  }
  return start === -1 ? fragments.length : start;
}

/** Pure policy: how many of the oldest fragments to drop so the ring still reaches `bufferMs` back from a key frame. */
export function trimCount(fragments: ReadonlyArray<Pick<Fmp4Fragment, 'key' | 'startMs' | 'durationMs'>>, bufferMs: number): number {
  const keep = startIndex(fragments, bufferMs);
  return keep >= fragments.length ? 0 : keep;
}

/** One reader's queue: items waiting for it, bounded by skipping ahead to the next key frame. */
class Reader {
  private queue: StageItem[] = [];
  private queuedBytes = 0;
  private wake?: () => void;
  private skipping = false;
  /** Aborted when the reader stops reading (it returned, or broke off). */
  private readonly own = new AbortController();
  /** The reader's lifetime: its own, the reader's signal and the stage's, whichever ends first. */
  private readonly signal: AbortSignal;

  constructor(
    private readonly maxBytes: number,
    signals: Array<AbortSignal | undefined>,
  ) {
    this.signal = AbortSignal.any([this.own.signal, ...signals.filter((signal): signal is AbortSignal => signal !== undefined)]);
    this.signal.addEventListener('abort', () => this.wake?.(), { once: true });
  }

  push(item: StageItem): void {
    if (this.signal.aborted) return;
    if (item.type === 'fragment') {
      if (this.skipping && !item.fragment.key) return;
      this.skipping = false;
      if (this.queuedBytes + item.fragment.data.length > this.maxBytes) {
        // A stalled reader: drop what waits, resume at the next key frame (never grow without end).
        this.queue = this.queue.filter((queued) => queued.type === 'init');
        this.queuedBytes = 0;
        this.skipping = !item.fragment.key;
        if (this.skipping) return;
      }
      this.queuedBytes += item.fragment.data.length;
    } else {
      // A new encoder: what waited belongs to the old one and cannot be decoded after this init.
      this.queue = [];
      this.queuedBytes = 0;
      this.skipping = true;
    }
    this.queue.push(item);
    this.wake?.();
  }

  async *items(): AsyncGenerator<StageItem> {
    try {
      for (;;) {
        const item = this.queue.shift();
        if (item) {
          if (item.type === 'fragment') this.queuedBytes -= item.fragment.data.length;
          yield item;
          continue;
        }
        if (this.signal.aborted) return;
        await new Promise<void>((resolve) => (this.wake = resolve));
        this.wake = undefined;
      }
    } finally {
      this.own.abort();
    }
  }
}

/** The reason an encoder's lifetime ends when the stage stops it (any other: its process ended by itself). */
const ENCODER_STOPPED = 'stopped';

/** One encoder process of the stage, from spawn to its one teardown. */
interface EncoderRun {
  child: ChildProcess;
  /** Aborted once: ENCODER_STOPPED by the stage, or { code, signal } when the process closed by itself. */
  lifetime: AbortController;
  /** Its frames from the hub. */
  subscription?: Subscription;
  stderr: LineRing;
  startedAt: number;
  /** Settles when its teardown is done. */
  torndown: Promise<void>;
}

/**
 * Events: 'init' (Fmp4Init), 'fragment' (Fmp4Fragment), 'running' and 'stopped' (the encoder
 * process came and went), 'error' is never emitted: failures are logged and retried.
 */
export class H264Stage extends EventEmitter {
  private settings: H264Settings;
  private readonly bufferMs: number;
  private readonly idleGraceMs: number;
  private holds = 0;
  /** The encoder running now. */
  private run?: EncoderRun;
  private ring: Fmp4Fragment[] = [];
  private _init?: Fmp4Init;
  private readonly readers = new Set<Reader>();
  private idleTimer?: NodeJS.Timeout;
  private restartTimer?: NodeJS.Timeout;
  private failures = 0;
  /** Aborted by close(): the stage's one teardown stops the encoder for good and ends every reader. */
  private readonly lifetime = new AbortController();
  private readonly torndown: Promise<void>;
  /** How many encoders this stage has started (tests check there is one for many consumers). */
  starts = 0;

  constructor(private readonly options: H264StageOptions) {
    super();
    this.settings = options.settings;
    this.bufferMs = options.bufferMs ?? 8_000;
    this.idleGraceMs = options.idleGraceMs ?? 3_000;
    this.torndown = whenAborted(this.lifetime.signal, () => {
      clearTimeout(this.idleTimer);
      clearTimeout(this.restartTimer);
      this.readers.clear(); // each one ends through the stage's signal
      return this.stopEncoder();
    });
  }

  private get closed(): boolean {
    return this.lifetime.signal.aborted;
  }

  /** The init segment of the running encoder (undefined until its first output). */
  get init(): Fmp4Init | undefined {
    return this._init;
  }

  /** True while an encoder process runs. */
  get running(): boolean {
    return this.run !== undefined;
  }

  /** Media the ring buffer holds now, in milliseconds from its first (key) fragment. */
  get bufferedMs(): number {
    const first = this.ring.at(0);
    const last = this.ring.at(-1);
    if (!first || !last) return 0;
    return last.startMs + last.durationMs - first.startMs;
  }

  get currentSettings(): H264Settings {
    return this.settings;
  }

  /** Keeps the encoder running; call the returned function to let go. */
  hold(): () => void {
    if (this.closed) return () => {};
    this.holds++;
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    if (!this.run && !this.restartTimer) this.startEncoder();
    return once(() => {
      this.holds--;
      if (this.holds === 0) this.scheduleIdleStop();
    });
  }

  /** New settings: a running encoder is replaced (readers get a new init segment). */
  configure(settings: H264Settings): void {
    if (sameSettings(settings, this.settings)) return;
    this.settings = settings;
    if (this.run) {
      this.options.log.info('H.264 stage: new settings, restarting the encoder.');
      void this.stopEncoder().then(() => {
        if (this.holds > 0 && !this.closed && !this.run) this.startEncoder();
      });
    }
  }

  /**
   * The init segment, then fragments from a key frame `backMs` before the live edge (as far as
   * the ring reaches), then live fragments, until the signal aborts or the stage closes. Holds
   * the encoder while it is read.
   */
  async *read(options: ReadOptions = {}): AsyncGenerator<StageItem> {
    if (this.closed) return;
    const reader = new Reader(options.maxQueuedBytes ?? this.options.maxQueuedBytes ?? 16 * 1024 * 1024, [this.lifetime.signal, options.signal]);
    const release = this.hold();
    this.readers.add(reader);
    try {
      if (this._init) {
        reader.push({ type: 'init', init: this._init });
        const from = startIndex(this.ring, options.backMs ?? 0);
        for (const fragment of this.ring.slice(from)) reader.push({ type: 'fragment', fragment });
      }
      yield* reader.items();
    } finally {
      this.readers.delete(reader);
      release();
    }
  }

  /** Stops the encoder for good and ends every reader. */
  close(): Promise<void> {
    this.lifetime.abort();
    return this.torndown;
  }

  private scheduleIdleStop(): void {
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      this.idleTimer = undefined;
      if (this.holds > 0) return;
      clearTimeout(this.restartTimer);
      this.restartTimer = undefined;
      this.options.log.debug('H.264 stage: nobody needs it, stopping the encoder.');
      void this.stopEncoder();
    }, this.idleGraceMs);
    this.idleTimer.unref();
  }

  private startEncoder(): void {
    const { log, ffmpegPath, hub } = this.options;
    const settings = this.settings;
    const args = buildFmp4Args(settings);
    log.debug(`H.264 stage command: ${ffmpegPath} ${args.join(' ')}`);
    const child = spawn(ffmpegPath, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    track(child);
    const lifetime = new AbortController();
    const run: EncoderRun = { child, lifetime, stderr: new LineRing(10), startedAt: Date.now(), torndown: Promise.resolve() };
    run.torndown = whenAborted(lifetime.signal, (reason) => this.encoderEnded(run, reason));
    this.run = run;
    this.starts++;
    this.ring = [];
    this._init = undefined;
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (text: string) => run.stderr.push(text));
    child.stdin.on('error', () => {
      // EPIPE when the encoder exits first; its exit is reported below.
    });
    const splitter = new BoxSplitter();
    const assembler = new Fmp4Assembler(
      (init) => {
        this._init = init;
        log.info(
          `H.264 stage running: ${settings.width}x${settings.height} at ${settings.fps} fps, ${settings.bitrateKbps} kbit/s, ${init.video.codec ?? 'H.264'} (${settings.encoder})${settings.audio ? ', AAC sound' : ''}.`,
        );
        this.emit('init', init);
        for (const reader of this.readers) reader.push({ type: 'init', init });
      },
      (fragment) => this.onFragment(fragment),
    );
    child.stdout.on('data', (chunk: Buffer) => {
      if (lifetime.signal.aborted) return;
      try {
        for (const box of splitter.push(chunk)) assembler.push(box);
      } catch (error) {
        log.error(`H.264 stage: unreadable encoder output (${(error as Error).message}); restarting it.`);
        child.kill('SIGKILL');
      }
    });
    child.once('error', (error) => log.error(`H.264 stage: could not start ffmpeg (${error.message}).`));
    child.once('close', (code, signal) => lifetime.abort({ code, signal }));
    run.subscription = hub.subscribe((frame, done) => {
      const stdin = child.stdin;
      if (stdin.destroyed || !stdin.writable) {
        done();
        return;
      }
      writeFramePart(stdin, frame, done);
    });
    this.emit('running');
  }

  /**
   * An encoder's one teardown: stopped by the stage (its process stopped, the ring emptied), or
   * ended by itself (restarted after a backoff while someone holds the stage).
   */
  private async encoderEnded(run: EncoderRun, reason: unknown): Promise<void> {
    if (this.run === run) this.run = undefined;
    run.subscription?.unsubscribe();
    if (reason === ENCODER_STOPPED) {
      run.child.stdin?.end();
      await stopProcess(run.child, 1_000);
      this.ring = [];
      this._init = undefined;
      this.emit('stopped');
      return;
    }
    this.emit('stopped');
    if (this.closed || this.holds === 0) return;
    if (Date.now() - run.startedAt > 10_000) this.failures = 0;
    const delay = backoffDelay(++this.failures, this.options.backoffInitialMs ?? 1_000, this.options.backoffMaxMs ?? 30_000);
    const { code, signal } = reason as { code: number | null; signal: NodeJS.Signals | null };
    const why = run.stderr.toString().split('\n').slice(-2).join(' | ');
    this.options.log.error(`H.264 stage: the encoder ended (${signal ?? `code ${code}`})${why ? `: ${why}` : ''}. Restarting in ${(delay / 1000).toFixed(1)} s.`);
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      if (!this.closed && this.holds > 0 && !this.run) this.startEncoder();
    }, delay);
    this.restartTimer.unref();
  }

  private onFragment(fragment: Fmp4Fragment): void {
    this.ring.push(fragment);
    const drop = trimCount(this.ring, this.bufferMs);
    if (drop > 0) this.ring.splice(0, drop);
    this.emit('fragment', fragment);
    for (const reader of this.readers) reader.push({ type: 'fragment', fragment });
  }

  /** Stops the running encoder on purpose; resolves once it is gone. */
  private stopEncoder(): Promise<void> {
    const run = this.run;
    if (!run) return Promise.resolve();
    run.lifetime.abort(ENCODER_STOPPED);
    return run.torndown;
  }
}
