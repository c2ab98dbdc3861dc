// Plumbing shared by the two benchmarked servers, each run as a child process of bench/fanout.ts
// (or bench/links.ts): load the corpus, start the server on 127.0.0.1 (an ephemeral port; see
// listenHost), report the port over IPC,
// answer stats requests (replay timing, event-loop delay, GC pauses, memory), and exit when told
// to or when the orchestrator goes away.
import { constants, monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import type { PerformanceEntry } from 'node:perf_hooks';

import { loadCorpus } from './corpus';
import type { ServerMessage, ServerRequest, ServerStatsMessage } from './protocol';
import type { ReplayStats } from './replay-source';

export interface StartedServer {
  port: number;
  close(): Promise<void>;
}

export interface ChildEnvironment {
  frames: Buffer[];
  /** Value of the Authorization header clients send (the naive server compares it). */
  authorization: string;
  /** The users file (our server checks it with bcrypt). */
  usersFile: string;
}

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set (this file is started by bench/fanout.ts)`);
  return value;
}

/**
 * The address a server child listens on: 127.0.0.1, or BENCH_HOST (bench/links.ts runs the
 * servers inside a network namespace, where viewers come through a shaped link: 0.0.0.0).
 */
export function listenHost(): string {
  return process.env.BENCH_HOST || '127.0.0.1';
}

function send(message: ServerMessage): void {
  process.send?.(message);
}

const GC_KINDS: Record<number, string> = {
  [constants.NODE_PERFORMANCE_GC_MAJOR]: 'major',
  [constants.NODE_PERFORMANCE_GC_MINOR]: 'minor',
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
  [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weakcb',
};

/** Event-loop delay and GC pauses since the last reset. */
class Health {
  private readonly loop = monitorEventLoopDelay({ resolution: 10 });
  private gc = { count: 0, totalMs: 0, maxMs: 0, maxKind: '' };

  constructor() {
    this.loop.enable();
    new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) this.onGc(entry);
    }).observe({ entryTypes: ['gc'] });
  }

  reset(): void {
    this.loop.reset();
    this.gc = { count: 0, totalMs: 0, maxMs: 0, maxKind: '' };
  }

  report(): Pick<ServerStatsMessage, 'loopDelay' | 'gc'> {
    const ms = (ns: number): number => ns / 1e6;
    return {
      loopDelay: { p50: ms(this.loop.percentile(50)), p99: ms(this.loop.percentile(99)), max: ms(this.loop.max) },
      gc: { ...this.gc },
    };
  }

  private onGc(entry: PerformanceEntry): void {
    const kind = ((entry as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind) ?? -1;
    this.gc.count++;
    this.gc.totalMs += entry.duration;
    if (entry.duration > this.gc.maxMs) {
      this.gc.maxMs = entry.duration;
      this.gc.maxKind = GC_KINDS[kind] ?? String(kind);
    }
  }
}

/** Runs a server child: `start` builds and starts the server. */
export function runServerChild(name: string, stats: ReplayStats, start: (env: ChildEnvironment) => Promise<StartedServer>): void {
  const main = async (): Promise<void> => {
    if (!process.send) throw new Error(`${name}: start me from bench/fanout.ts (an IPC channel is needed)`);
    const health = new Health();
    const frames = await loadCorpus(required('BENCH_CORPUS'));
    const server = await start({
      frames,
      authorization: required('BENCH_AUTHORIZATION'),
      usersFile: required('BENCH_USERS_FILE'),
    });
    let closing = false;
    const shutdown = (): void => {
      if (closing) return;
      closing = true;
      const force = setTimeout(() => process.exit(0), 2_000);
      force.unref();
      void server.close().finally(() => process.exit(0));
    };
    process.on('SIGTERM', shutdown);
    process.on('disconnect', shutdown);
    process.on('message', (message: unknown) => {
      const { type } = message as Partial<ServerRequest>;
      if (type === 'reset') {
        stats.reset();
        health.reset();
        return;
      }
      if (type !== 'stats') return;
      const reply: ServerStatsMessage = {
        type: 'stats',
        replay: {
          seq: stats.seq,
          emitted: stats.emitted,
          skipped: stats.skipped,
          maxLateMs: stats.maxLateMs,
          meanLateMs: stats.emitted ? stats.totalLateMs / stats.emitted : 0,
          starts: stats.starts,
        },
        memory: process.memoryUsage(),
        ...health.report(),
      };
      send(reply);
    });
    send({ type: 'ready', port: server.port });
  };
  main().catch((error: unknown) => {
    console.error(`${name}: ${(error as Error).stack ?? String(error)}`);
    process.exit(1);
  });
}
