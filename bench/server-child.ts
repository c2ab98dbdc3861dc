// Plumbing shared by the two benchmarked servers, each run as a child process of bench/fanout.ts:
// load the corpus, start the server on 127.0.0.1 (an ephemeral port), report the port over IPC,
// answer stats requests, and exit when told to or when the orchestrator goes away.
import type { ReplayStats } from './replay-source';
import { loadCorpus } from './corpus';
import type { ServerMessage, ServerStatsMessage } from './protocol';

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

function send(message: ServerMessage): void {
  process.send?.(message);
}

/** Runs a server child: `start` builds and starts the server. */
export function runServerChild(name: string, stats: ReplayStats, start: (env: ChildEnvironment) => Promise<StartedServer>): void {
  const main = async (): Promise<void> => {
    if (!process.send) throw new Error(`${name}: start me from bench/fanout.ts (an IPC channel is needed)`);
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
      if ((message as { type?: string }).type !== 'stats') return;
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
