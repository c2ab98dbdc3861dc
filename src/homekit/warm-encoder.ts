// Warm encoders: one encoder ffmpeg per silent HomeKit camera, started ahead of any session, so a
// live stream does not wait for ffmpeg to load (~50 ms of shared libraries with Debian's ffmpeg).
//
// What makes it possible: the SetupEndpoints *response* carries the accessory's own SRTP master
// key and salt and the SSRC of what it sends, and the Home app decrypts our video with those, not
// with the key it offered. So a warm encoder is started with a key, salt and SSRC of its own, for
// the START this camera most likely gets next (its previous one, else the Home app's usual), and
// sends to a loopback relay (srtp-relay.ts), as the Home app's address is not known yet. It loads,
// then blocks reading its stdin: nothing is encoded or sent until a session writes frames.
//
//   prepareStream  the keeper hands its warm encoder to the session: SetupEndpoints answers with
//                  that encoder's key, salt and SSRC
//   startStream    a START asking for exactly the warm encoder's command claims it (a hit): the
//                  relay starts forwarding to the Home app and the session feeds it frames; else
//                  (a miss) it is stopped and the session spawns an encoder with the same key,
//                  salt and SSRC, sending straight to the Home app. Either way the keeper starts
//                  the next warm encoder, for what this START asked.
//
// The keeper replaces a warm encoder that exits by itself (1, 2, 4 ... 60 s later, with a warning
// after three in a row), and stops it on shutdown; every ffmpeg is tracked (media/processes.ts).
// The keeper is opt-in (`homekit.warmEncoder`): an idle encoder costs memory. Without it, the
// streaming delegate starts the same kind of encoder at SetupEndpoints (a standby, named so in
// the log), which loads while HomeKit sends START and is stopped when START never comes.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:dgram';

import type { Log } from '../log';
import { LineRing } from '../media/capture';
import { stopProcess, track } from '../media/processes';
import { backoffDelay } from '../util/backoff';
import { whenAborted } from '../util/lifetime';
import { SrtpRelay } from './srtp-relay';
import type { AdoptedEncoder } from './stream-session';
import type { EncoderRequest, VideoChoice } from './stream-policy';
import { relayTarget, sameVideoChoice, WARM_FAILURES_BEFORE_WARNING, WARM_RETRY_BASE_MS, WARM_RETRY_MAX_MS, warmFailuresAfterExit, warmVerdict } from './stream-policy';

/** Where an encoder sends, and with which SRTP key and SSRC. */
export type EncoderTarget = Pick<EncoderRequest, 'ssrc' | 'srtpKeyAndSalt' | 'targetAddress' | 'targetPort'>;

/** The encoder command (after the binary) for a START's video, sent to `target`. */
export type EncoderCommand = (choice: VideoChoice, target: EncoderTarget) => string[];

/** How a warm encoder's lifetime ends: handed to a session, stopped, or its process ended by itself. */
type WarmEnd = { kind: 'claimed' } | { kind: 'stopped' } | { kind: 'exited'; detail: string };

/** One warm encoder: an ffmpeg waiting on its stdin, and the relay it sends to. */
export class WarmEncoder {
  /** The SRTP master key and salt this encoder encrypts with (30 bytes). */
  readonly keyAndSalt: Buffer;
  /** Called once when the process ends, or cannot start, before it was claimed or stopped. */
  onUnexpectedExit?: (detail: string) => void;
  private readonly child: ChildProcess;
  /** Aborted once with a WarmEnd: claimed, stopped or exited, whichever came first. */
  private readonly lifetime = new AbortController();
  private readonly stderr = new LineRing(10);
  private readonly onStderr = (text: string) => this.stderr.push(text);
  private readonly startedAt = performance.now();
  /** Its relay's port, kept: the relay closes when the encoder ends, and a START may still ask. */
  private readonly relayPort: number;

  private constructor(
    ffmpegPath: string,
    /** The SSRC of its RTP packets. */
    readonly ssrc: number,
    /** The START it was started for. */
    readonly choice: VideoChoice,
    keyAndSalt: Buffer,
    /** Its command, after the binary. */
    readonly args: string[],
    private readonly relay: SrtpRelay,
    private readonly log: Log,
    /** Its name in log lines ('Warm encoder', 'Standby encoder'). */
    private readonly label: string,
  ) {
    this.keyAndSalt = keyAndSalt;
    this.relayPort = relay.port;
    const child = spawn(ffmpegPath, args, { stdio: ['pipe', 'ignore', 'pipe'] });
    this.child = child;
    track(child);
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', this.onStderr);
    child.stdin.on('error', () => {
      // EPIPE when it exits first; the exit is handled below.
    });
    const exited = (detail: string) => this.lifetime.abort({ kind: 'exited', detail } satisfies WarmEnd);
    child.once('exit', (code, signal) => exited(signal ?? `code ${code}`));
    child.once('error', (error) => exited(error.message));
    void whenAborted(this.lifetime.signal, (reason) => this.teardown(reason as WarmEnd));
  }

  /** The one teardown. Claimed: the session owns the process and relay now. */
  private teardown(end: WarmEnd): void {
    const child = this.child;
    if (end.kind === 'claimed') {
      child.stderr?.off('data', this.onStderr);
      return;
    }
    this.relay.close();
    if (end.kind === 'stopped') {
      child.stdin?.end();
      void stopProcess(child, 1_000);
      return;
    }
    const said = this.stderr.toString().split('\n').slice(-2).join(' | ');
    this.onUnexpectedExit?.(`${end.detail}${said ? `: ${said}` : ''}`);
  }

  /** Opens a relay and starts an encoder for `choice` sending to it, with a new key and salt. */
  static async start(ffmpegPath: string, choice: VideoChoice, ssrc: number, command: EncoderCommand, log: Log, label = 'Warm encoder'): Promise<WarmEncoder> {
    const relay = await SrtpRelay.open(log);
    try {
      const keyAndSalt = randomBytes(30);
      const args = command(choice, { ssrc, srtpKeyAndSalt: keyAndSalt, ...relayTarget(relay.port) });
      return new WarmEncoder(ffmpegPath, ssrc, choice, keyAndSalt, args, relay, log, label);
    } catch (error) {
      relay.close();
      throw error;
    }
  }

  /** Where a START's command must send for it to be compared with this encoder's. */
  get target(): EncoderTarget {
    return { ssrc: this.ssrc, srtpKeyAndSalt: this.keyAndSalt, ...relayTarget(this.relayPort) };
  }

  /** Milliseconds since it was started. */
  get ageMs(): number {
    return performance.now() - this.startedAt;
  }

  /** True while its process runs and nobody has claimed or stopped it. */
  get alive(): boolean {
    const child = this.child;
    return !this.lifetime.signal.aborted && child.pid !== undefined && child.exitCode === null && child.signalCode === null;
  }

  /**
   * The START has come, with the command `args` built for `target`: when the encoder was started
   * with exactly that command (a hit), points its relay at `destination` (HomeKit's video port,
   * sent from the session's socket) and hands both over; else stops it and answers undefined (a
   * miss). Logs which, at debug level. Either way it is used up.
   */
  claim(args: string[], choice: VideoChoice, destination: { socket: Socket; address: string; port: number }): AdoptedEncoder | undefined {
    const verdict = warmVerdict(this, { args, choice });
    if (!verdict.hit || !this.alive) {
      this.log.debug(`${this.label}: miss (${verdict.hit ? 'it has exited' : verdict.reason}).`);
      this.stop();
      return undefined;
    }
    this.lifetime.abort({ kind: 'claimed' } satisfies WarmEnd);
    this.relay.forwardTo(destination.socket, destination.address, destination.port);
    this.log.debug(`${this.label}: hit (started ${Math.round(this.ageMs)} ms before START).`);
    return { child: this.child, relay: this.relay };
  }

  /** Stops the encoder and closes its relay, unless they were handed over or it ended; returns at once. */
  stop(): void {
    this.lifetime.abort({ kind: 'stopped' } satisfies WarmEnd);
  }
}

export interface WarmEncoderKeeperOptions {
  ffmpegPath: string;
  command: EncoderCommand;
  /** A new random SSRC. */
  newSsrc: () => number;
  log: Log;
  /** The first wait before replacing a warm encoder that exited by itself (default 1 s; doubles). */
  retryBaseMs?: number;
}

/** Keeps one warm encoder ready for a camera, for the START it predicts. */
export class WarmEncoderKeeper {
  private current?: WarmEncoder;
  private starting = false;
  private retry?: NodeJS.Timeout;
  private failures = 0;
  /** Aborted by stop(): the keeper's one teardown stops its encoder and starts no other. */
  private readonly lifetime = new AbortController();

  constructor(
    private readonly options: WarmEncoderKeeperOptions,
    /** The START to prepare for. */
    private choice: VideoChoice,
  ) {
    void whenAborted(this.lifetime.signal, () => {
      clearTimeout(this.retry);
      this.retry = undefined;
      this.current?.stop();
      this.current = undefined;
    });
    this.refill();
  }

  private get stopped(): boolean {
    return this.lifetime.signal.aborted;
  }

  /** Hands over the ready warm encoder (the caller's from now on), or answers undefined. */
  take(): WarmEncoder | undefined {
    const warm = this.current;
    if (!warm?.alive) return undefined;
    this.current = undefined;
    warm.onUnexpectedExit = undefined;
    this.failures = 0;
    return warm;
  }

  /**
   * Makes sure a warm encoder for `choice` (given: the new prediction) is ready or on its way,
   * replacing one started for something else. Waits out a retry delay that is running.
   */
  refill(choice?: VideoChoice): void {
    if (choice) this.choice = choice;
    if (this.stopped || this.starting || this.retry) return;
    if (this.current && sameVideoChoice(this.current.choice, this.choice)) return;
    this.current?.stop();
    this.current = undefined;
    void this.startOne();
  }

  /** Stops the warm encoder and starts no other (the camera's accessory is going away). */
  stop(): void {
    this.lifetime.abort();
  }

  private async startOne(): Promise<void> {
    const { ffmpegPath, command, newSsrc, log } = this.options;
    this.starting = true;
    let warm: WarmEncoder;
    try {
      warm = await WarmEncoder.start(ffmpegPath, this.choice, newSsrc(), command, log);
    } catch (error) {
      this.failed(`could not start: ${(error as Error).message}`, 0);
      return;
    } finally {
      this.starting = false;
    }
    if (this.stopped) {
      warm.stop();
      return;
    }
    this.current = warm;
    warm.onUnexpectedExit = (detail) => {
      if (this.current !== warm) return;
      this.current = undefined;
      this.failed(detail, warm.ageMs);
    };
    // The prediction changed while it was starting: replace it.
    if (!sameVideoChoice(warm.choice, this.choice)) this.refill();
  }

  /** A warm encoder ended by itself (or never started): try again later, and say so. */
  private failed(detail: string, livedMs: number): void {
    if (this.stopped) return;
    this.failures = warmFailuresAfterExit(this.failures, livedMs);
    const delay = backoffDelay(this.failures, this.options.retryBaseMs ?? WARM_RETRY_BASE_MS, WARM_RETRY_MAX_MS);
    const message = `Warm encoder exited (${detail}); the next one starts in ${(delay / 1000).toFixed(1)} s.`;
    if (this.failures === WARM_FAILURES_BEFORE_WARNING) {
      this.options.log.warn(
        `${message} ffmpeg failed ${this.failures} times in a row: until one stays up, live streams start their encoder when they begin (slower). ` +
          'Set homekit.warmEncoder to false to stop trying.',
      );
    } else {
      this.options.log.debug(message);
    }
    this.retry = setTimeout(() => {
      this.retry = undefined;
      this.refill();
    }, delay);
    this.retry.unref();
  }
}
