// One capture: one ffmpeg process whose stdout is split into JPEG frames (optionally capped at a
// rate, for stream URLs). It knows nothing of viewers; the FrameHub decides when it runs and
// restarts it. stderr is kept in a bounded ring so an exit can be explained in the log.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';

import { whenAborted } from '../util/lifetime';
import { explainCaptureError, redactSecrets } from './capture-args';
import { JpegSplitter } from './jpeg-splitter';
import { stopProcess, track } from './processes';
import { FrameRateCap } from './rate-cap';

/** The last lines a process wrote, at most `maxLines` of at most `maxLineLength` characters. */
export class LineRing {
  private lines: string[] = [];
  private partial = '';

  constructor(
    private readonly maxLines = 20,
    private readonly maxLineLength = 500,
  ) {}

  push(text: string): void {
    const pieces = (this.partial + text).split(/\r?\n|\r/);
    this.partial = (pieces.pop() ?? '').slice(-this.maxLineLength);
    for (const piece of pieces) {
      const line = piece.trim();
      if (!line) continue;
      this.lines.push(line.slice(0, this.maxLineLength));
      if (this.lines.length > this.maxLines) this.lines.shift();
    }
  }

  toString(): string {
    return [...this.lines, this.partial.trim()].filter(Boolean).join('\n');
  }
}

/** What the hub needs of a frame source; the ffmpeg capture is one, tests and benches add others. */
export interface FrameSource extends EventEmitter {
  /** Starts producing frames; emits 'frame' (a Buffer, or JpegChunks) and exactly one 'exit' (CaptureExit). */
  start(): void;
  /** Stops; resolves once the source has exited and emitted its 'exit'. */
  stop(): Promise<void>;
}

export interface CaptureExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The last stderr lines, for the log. */
  stderr: string;
  /** True when stop() asked for it. */
  requested: boolean;
  /** Set when the process could not be started at all (ENOENT, EACCES). */
  spawnError?: Error;
}

export interface FfmpegCaptureOptions {
  /**
   * Drop frames beyond this rate (a stream URL, whose frames come at the source's own rate);
   * unset, every frame ffmpeg writes goes out.
   */
  maxFps?: number;
}

/** The reason a capture's lifetime ends when stop() asked for it (else: the process ended). */
const STOP_REQUESTED = 'stop requested';

type ProcessEnd = Pick<CaptureExit, 'code' | 'signal' | 'spawnError'>;

export class FfmpegCapture extends EventEmitter implements FrameSource {
  private child?: ChildProcess;
  /** Settles when the process has ended (closed, or could not start). */
  private processEnded?: Promise<ProcessEnd>;
  private readonly stderr = new LineRing();
  private readonly cap?: FrameRateCap;
  /** Aborted once: by stop() (STOP_REQUESTED) or by the process ending by itself, whichever comes first. */
  private readonly lifetime = new AbortController();
  /** The one teardown: the process stopped (if it still runs), then exactly one 'exit'. */
  private readonly torndown: Promise<void>;

  constructor(
    private readonly ffmpegPath: string,
    private readonly args: string[],
    /** The camera source, for explaining failures (`/dev/video0`, a URL, `testsrc`). */
    private readonly source = '',
    options: FfmpegCaptureOptions = {},
  ) {
    super();
    if (options.maxFps) this.cap = new FrameRateCap(options.maxFps);
    this.torndown = whenAborted(this.lifetime.signal, (reason) => this.teardown(reason));
  }

  /** The process id while it runs (tests kill it to prove the hub recovers). */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  start(): void {
    if (this.lifetime.signal.aborted || this.child) return;
    const child = spawn(this.ffmpegPath, this.args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    track(child);
    const splitter = new JpegSplitter((frame) => {
      if (!this.cap || this.cap.admit(Date.now())) this.emit('frame', frame);
    });
    child.stdout.on('data', (chunk: Buffer) => splitter.push(chunk));
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (text: string) => this.stderr.push(text));
    this.processEnded = new Promise<ProcessEnd>((resolve) => {
      child.once('error', (error) => resolve({ code: null, signal: null, spawnError: error }));
      child.once('close', (code, signal) => resolve({ code, signal }));
    });
    void this.processEnded.then((end) => this.lifetime.abort(end));
  }

  /** Stops the process (if it still runs); resolves once the 'exit' has been emitted. */
  stop(): Promise<void> {
    this.lifetime.abort(STOP_REQUESTED);
    return this.torndown;
  }

  private async teardown(reason: unknown): Promise<void> {
    const child = this.child;
    if (child && child.pid !== undefined) await stopProcess(child);
    const end: ProcessEnd = (await this.processEnded) ?? { code: null, signal: null };
    const stderr = this.stderr.toString();
    const hint = explainCaptureError(stderr, this.source);
    const text = redactSecrets(hint ? `${stderr}\n${hint}` : stderr);
    const exit: CaptureExit = { ...end, stderr: text, requested: reason === STOP_REQUESTED };
    this.emit('exit', exit);
  }
}
