// One capture: one ffmpeg process whose stdout is split into JPEG frames (optionally capped at a
// rate, for stream URLs). It knows nothing of viewers; the FrameHub decides when it runs and
// restarts it. stderr is kept in a bounded ring so an exit can be explained in the log.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';

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
  /** Starts producing frames; emits 'frame' (Buffer) and exactly one 'exit' (CaptureExit). */
  start(): void;
  /** Stops; resolves when the source has exited. */
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

export class FfmpegCapture extends EventEmitter implements FrameSource {
  private child?: ChildProcess;
  private readonly stderr = new LineRing();
  private stopping = false;
  private exited = false;
  private readonly cap?: FrameRateCap;

  constructor(
    private readonly ffmpegPath: string,
    private readonly args: string[],
    /** The camera source, for explaining failures (`/dev/video0`, a URL, `testsrc`). */
    private readonly source = '',
    options: FfmpegCaptureOptions = {},
  ) {
    super();
    if (options.maxFps) this.cap = new FrameRateCap(options.maxFps);
  }

  /** The process id while it runs (tests kill it to prove the hub recovers). */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  start(): void {
    const child = spawn(this.ffmpegPath, this.args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    track(child);
    const splitter = new JpegSplitter((frame) => {
      if (!this.cap || this.cap.admit(Date.now())) this.emit('frame', frame);
    });
    child.stdout?.on('data', (chunk: Buffer) => splitter.push(chunk));
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (text: string) => this.stderr.push(text));
    child.once('error', (error) => this.finish({ code: null, signal: null, spawnError: error }));
    child.once('close', (code, signal) => this.finish({ code, signal }));
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.child && !this.exited) await stopProcess(this.child);
  }

  private finish(result: { code: number | null; signal: NodeJS.Signals | null; spawnError?: Error }): void {
    if (this.exited) return;
    this.exited = true;
    const stderr = this.stderr.toString();
    const hint = explainCaptureError(stderr, this.source);
    const text = redactSecrets(hint ? `${stderr}\n${hint}` : stderr);
    const exit: CaptureExit = { ...result, stderr: text, requested: this.stopping };
    this.emit('exit', exit);
  }
}
