// One HomeKit live stream: an encoder ffmpeg fed the FrameHub's JPEG frames on stdin (it never
// opens the camera), sending H.264 (and OPUS) over SRTP to the Home app, and a watchdog on the
// UDP port where the Home app's RTCP reports arrive: no report for a while means the viewer is
// gone (how long: rtcpTimeoutMs in stream-policy.ts, from the interval the Home app asked for;
// longer before the first report). A reconfigure replaces the encoder and keeps the session;
// encoder changes run one after the other, so two quick reconfigures never leave an encoder
// behind. The first encoder may be one started earlier with the same command (a warm encoder,
// see warm-encoder.ts), adopted as it is with the relay it sends through, which ends with it.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import type { Socket } from 'node:dgram';

import type { Log } from '../log';
import { LineRing } from '../media/capture';
import type { FrameHub, Subscription } from '../media/frame-hub';
import { writeFramePart } from '../media/frame-pipe';
import { stopProcess, track } from '../media/processes';
import { closeQuietly } from '../util/close-quietly';
import { whenAborted } from '../util/lifetime';
import { isRtcpPacket } from './stream-policy';

export interface StreamSessionOptions {
  hub: FrameHub;
  ffmpegPath: string;
  args: string[];
  /** The UDP socket HomeKit sends RTCP to (bound in prepareStream). */
  rtcpSocket: Socket;
  /** More sockets of this session (the audio RTCP port), closed with it. */
  otherSockets?: Socket[];
  /** End the session when no RTCP arrives for this long. */
  rtcpTimeoutMs: number;
  /** Until the first report arrives, wait this long instead (default: rtcpTimeoutMs). */
  firstRtcpTimeoutMs?: number;
  log: Log;
  /** Called once when the session ends by itself (encoder exit, RTCP silence). */
  onEnded: (reason: string) => void;
}

/** An encoder started before the session: running, given nothing yet. */
export interface AdoptedEncoder {
  child: ChildProcess;
  /** What it sends through (a warm encoder's relay), closed when the encoder is done. */
  relay?: { close(): void };
}

/** The reason a session's lifetime ends when its owner stops it (any other reason: it ended by itself). */
const STOPPED = Symbol('stopped');

export class StreamSession {
  private child?: ChildProcess;
  /** The current encoder's relay, when it sends through one. */
  private relay?: { close(): void };
  private subscription?: Subscription;
  private watchdog?: NodeJS.Timeout;
  /** Counts arms of the watchdog: a firing that is not the latest arm's does nothing. */
  private watchdogArm = 0;
  private rtcpTimeoutMs: number;
  private reports = 0;
  private stderr = new LineRing(10);
  /**
   * Aborted once: by stop() (STOPPED), or with the reason it ended by itself (encoder exit, RTCP
   * silence, the camera shut down). Everything after that is the one teardown's.
   */
  private readonly lifetime = new AbortController();
  private readonly torndown: Promise<void>;
  /** Start and reconfigures, one after the other. */
  private changes: Promise<void> = Promise.resolve();
  /** The current encoder's command. */
  private currentArgs: string[];
  /** Frames written to the encoder. */
  framesIn = 0;

  constructor(private readonly options: StreamSessionOptions) {
    this.rtcpTimeoutMs = options.rtcpTimeoutMs;
    this.currentArgs = options.args;
    this.torndown = whenAborted(this.lifetime.signal, (reason) => {
      const byItself = reason !== STOPPED;
      if (byItself) options.log.info(`Stream ended: ${String(reason)}.`);
      const done = this.teardown();
      if (byItself) options.onEnded(String(reason));
      return done;
    });
  }

  /**
   * A method, not a getter: it is asked again after each await (stop() may run meanwhile), where
   * a property read already tested would count, for the type checker, as still known.
   */
  private hasEnded(): boolean {
    return this.lifetime.signal.aborted;
  }

  /** The command of the encoder running (or starting) now. */
  get args(): readonly string[] {
    return this.currentArgs;
  }

  /** RTCP reports received so far. */
  get rtcpReports(): number {
    return this.reports;
  }

  /**
   * Starts the encoder, or adopts `adopted`: a running encoder started with `args` that has been
   * given nothing yet. Resolves once the encoder runs (the first frame is already on its way).
   */
  start(adopted?: AdoptedEncoder): Promise<void> {
    return this.serially(() => this.startNow(adopted));
  }

  /** From now on, ends the session after `ms` without a report (HomeKit asked another interval). */
  setRtcpTimeout(ms: number): void {
    if (ms === this.rtcpTimeoutMs) return;
    this.rtcpTimeoutMs = ms;
    if (this.watchdog && !this.hasEnded()) this.armWatchdog();
  }

  private async startNow(adopted?: AdoptedEncoder): Promise<void> {
    if (this.hasEnded()) return;
    this.armWatchdog();
    this.options.rtcpSocket.on('message', (packet: Buffer) => {
      if (!isRtcpPacket(packet) || this.hasEnded()) return;
      this.reports++;
      this.armWatchdog();
    });
    if (adopted) this.attach(adopted.child, adopted.relay);
    else await this.spawnEncoder(this.options.args);
    if (this.hasEnded()) return;
    this.subscription = this.options.hub.subscribe(
      (frame, done) => {
        const stdin = this.child?.stdin;
        if (!stdin || stdin.destroyed || !stdin.writable) {
          done(); // between two encoders (reconfigure): drop this frame
          return;
        }
        this.framesIn++;
        writeFramePart(stdin, frame, done);
      },
      { onClose: () => this.finish('the camera shut down') },
    );
  }

  /**
   * Replaces the encoder with one built from `args` (HomeKit asked for another size or rate),
   * after any start or reconfigure still under way.
   */
  reconfigure(args: string[]): Promise<void> {
    this.currentArgs = args;
    return this.serially(async () => {
      if (this.hasEnded()) return;
      await this.stopEncoder();
      if (!this.hasEnded()) await this.spawnEncoder(args);
    });
  }

  /** Runs `change` once the changes before it are done (whether they worked or not). */
  private serially(change: () => Promise<void>): Promise<void> {
    const run = this.changes.then(change);
    this.changes = run.catch(() => {});
    return run;
  }

  /** Ends the session (HomeKit said stop, or Homebridge is shutting down); resolves once its encoder is gone. */
  stop(): Promise<void> {
    this.lifetime.abort(STOPPED);
    return this.torndown;
  }

  private spawnEncoder(args: string[]): Promise<void> {
    const child = spawn(this.options.ffmpegPath, args, { stdio: ['pipe', 'ignore', 'pipe'] });
    track(child);
    this.attach(child);
    return new Promise((resolve, reject) => {
      child.once('error', reject);
      child.once('spawn', () => resolve());
    });
  }

  /** Makes `child` this session's encoder: its stderr kept, its exit or failure ends the session. */
  private attach(child: ChildProcess, relay?: { close(): void }): void {
    this.child = child;
    this.relay = relay;
    this.stderr = new LineRing(10);
    const stderr = this.stderr;
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (text: string) => stderr.push(text));
    child.stdin?.on('error', () => {
      // EPIPE when the encoder exits first; its exit is reported below.
    });
    child.once('exit', (code, signal) => {
      if (child !== this.child) return; // replaced on purpose (reconfigure) or stopped
      const detail = stderr.toString().split('\n').slice(-2).join(' | ');
      this.finish(`encoder exited (${signal ?? `code ${code}`})${detail ? `: ${detail}` : ''}`);
    });
    child.once('error', (error) => this.finish(`encoder could not start: ${error.message}`));
  }

  private armWatchdog(): void {
    clearTimeout(this.watchdog);
    const arm = ++this.watchdogArm;
    const ms = this.reports > 0 ? this.rtcpTimeoutMs : Math.max(this.rtcpTimeoutMs, this.options.firstRtcpTimeoutMs ?? this.rtcpTimeoutMs);
    this.watchdog = setTimeout(() => {
      // After an event loop stall, reports may be waiting in the socket while this timer is
      // already due: let them be read (the poll phase runs before setImmediate) before judging.
      setImmediate(() => {
        if (arm === this.watchdogArm) this.finish(`no RTCP from the Home app for ${Number((ms / 1000).toFixed(1))} s`);
      });
    }, ms);
    this.watchdog.unref();
  }

  /** Ends the session by itself, for `reason` (the first one wins). */
  private finish(reason: string): void {
    this.lifetime.abort(reason);
  }

  private async teardown(): Promise<void> {
    clearTimeout(this.watchdog);
    this.watchdogArm++;
    this.subscription?.unsubscribe();
    this.subscription = undefined;
    closeQuietly(this.options.rtcpSocket, ...(this.options.otherSockets ?? []));
    await this.stopEncoder();
  }

  /** Ends the current encoder (end of input first: one waiting on stdin ignores SIGTERM) and its relay. */
  private async stopEncoder(): Promise<void> {
    const child = this.child;
    const relay = this.relay;
    this.child = undefined;
    this.relay = undefined;
    if (child) {
      child.stdin?.end();
      await stopProcess(child, 1_000);
    }
    relay?.close();
  }
}
