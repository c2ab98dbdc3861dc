// A standby encoder: the ffmpeg a HomeKit stream will most likely need, spawned at SetupEndpoints
// with the command of the START we expect, so that loading ffmpeg (~50 ms of shared libraries) is
// done before START arrives. It loads, then blocks reading its stdin, where nothing is written
// until a StreamSession adopts it: before START it sends nothing to the Home app. When the real
// START asks for exactly that command the session adopts it; otherwise, or when no START comes,
// it is stopped (stdin closed, then SIGTERM: blocked on its input ffmpeg only ends on EOF).
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';

import type { Log } from '../log';
import { stopProcess, track } from '../media/processes';
import type { VideoChoice } from './stream-policy';
import { standbyVerdict } from './stream-policy';

export class StandbyEncoder {
  private child?: ChildProcess;
  private readonly timer: NodeJS.Timeout;
  private readonly spawnedAt = performance.now();

  constructor(
    ffmpegPath: string,
    /** The encoder command (after the binary) for the predicted START. */
    readonly args: string[],
    /** The predicted START. */
    readonly choice: VideoChoice,
    timeoutMs: number,
    private readonly log: Log,
  ) {
    const child = spawn(ffmpegPath, args, { stdio: ['pipe', 'ignore', 'pipe'] });
    this.child = child;
    track(child);
    child.on('error', (error) => log.debug(`Standby encoder: ${error.message}`));
    child.stdin?.on('error', () => {
      // EPIPE when it exits first.
    });
    child.once('exit', (code, signal) => {
      if (this.child !== child) return; // adopted or stopped on purpose
      this.child = undefined;
      clearTimeout(this.timer);
      log.debug(`Standby encoder exited before START (${signal ?? `code ${code}`}).`);
    });
    this.timer = setTimeout(() => {
      log.debug(`Standby encoder unused after ${Math.round(timeoutMs / 1000)} s: stopped.`);
      this.stop();
    }, timeoutMs);
    this.timer.unref();
  }

  /**
   * The START has come, with the command `args`: hands over the running encoder when it was
   * spawned with exactly that command (a hit), else stops it without waiting (a miss) and
   * answers undefined. Logs which, at debug level. Either way the standby is used up.
   */
  claim(args: string[], choice: VideoChoice): ChildProcess | undefined {
    const verdict = standbyVerdict(this, { args, choice });
    if (!verdict.hit) {
      this.log.debug(`Standby encoder: miss (${verdict.reason}).`);
      this.stop();
      return undefined;
    }
    const child = this.child;
    clearTimeout(this.timer);
    this.child = undefined;
    if (!child || child.pid === undefined || child.exitCode !== null || child.signalCode !== null) {
      this.log.debug('Standby encoder: miss (it did not start or has exited).');
      return undefined;
    }
    this.log.debug(`Standby encoder: hit (spawned ${Math.round(performance.now() - this.spawnedAt)} ms before START).`);
    return child;
  }

  /** Stops the encoder unless it was handed over; returns at once. */
  stop(): void {
    clearTimeout(this.timer);
    const child = this.child;
    this.child = undefined;
    if (!child) return;
    child.stdin?.end();
    void stopProcess(child, 1_000);
  }
}
