// Benchmark child: the load generator. Opens N fast and K slow MJPEG viewers over real TCP sockets
// on 127.0.0.1 against one server, measures delivered fps, frame loss and latency (from the COM
// stamp in each frame) during a window, then probes snapshot latency and a new viewer's time to
// first frame while the viewers keep streaming. Fast viewers read everything as it comes; slow
// viewers take about one frame per interval (the socket is paused in between, so the kernel
// buffers fill and the server sees backpressure). In the burst configuration every viewer's
// connection is opened first and all the requests are then written in one go, and each viewer's
// answer (status, refusal, time to first frame) is recorded. Driven by bench/fanout.ts over IPC;
// every wait is bounded.
import { Agent, request } from 'node:http';
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { monitorEventLoopDelay } from 'node:perf_hooks';

import { nowMs, readStamp } from './corpus';
import { MjpegReader } from './multipart';
import type { ReceivedFrame } from './multipart';
import type { BurstStats, BurstViewer, GoMessage, LoadConfig, LoadMessage, LoadStats, RunMessage } from './protocol';
import { percentiles } from './protocol';

const CONNECT_TIMEOUT_MS = 15_000;
/** A burst of fresh logins may wait for many bcrypt checks (the naive server runs one per request). */
const BURST_TIMEOUT_MS = 60_000;
const PROBE_TIMEOUT_MS = 5_000;
/** Probes wait a random extra up to one frame period, so they do not lock to the frame clock. */
const FRAME_PERIOD_MS = 1000 / 30;
const jittered = (ms: number): number => ms + Math.random() * FRAME_PERIOD_MS;

const errors: string[] = [];
function noteError(message: string): void {
  if (errors.length < 10) errors.push(message);
}

function send(message: LoadMessage): void {
  process.send?.(message);
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function streamRequest(config: LoadConfig): string {
  return (
    `GET ${config.streamPath} HTTP/1.1\r\nHost: 127.0.0.1:${config.port}\r\n` +
    `Authorization: ${config.authorization}\r\nAccept: */*\r\nUser-Agent: webcam-bench\r\n\r\n`
  );
}

/** One persistent viewer. */
class Viewer {
  readonly socket: Socket;
  readonly firstFrame: Promise<void>;
  /** Resolves once the TCP connection is up (or has failed: see `outcome.error`). */
  readonly connected: Promise<void>;
  /** Resolves on the first frame, a refusal, or the connection's end, whichever comes first. */
  readonly settled: Promise<void>;
  /** What the server answered and when (the burst configuration reports it per viewer). */
  readonly outcome: BurstViewer;
  counting = false;
  frames = 0;
  lost = 0;
  latencies: number[] = [];
  disconnected = false;
  private lastSeq = 0;
  private sentAt = 0;
  private gotFirst!: () => void;
  private settle!: () => void;
  private slowTimer?: NodeJS.Timeout;
  private readonly reader: MjpegReader;

  /** `deferred`: connect only; the request goes out when `sendRequest` is called. */
  constructor(
    private readonly config: LoadConfig,
    private readonly slow: boolean,
    deferred = false,
  ) {
    this.outcome = { slow };
    this.firstFrame = new Promise((resolve) => (this.gotFirst = resolve));
    this.settled = new Promise((resolve) => (this.settle = resolve));
    let onConnected!: () => void;
    this.connected = new Promise((resolve) => (onConnected = resolve));
    this.reader = new MjpegReader(
      (frame) => this.onFrame(frame),
      (message) => {
        noteError(`viewer: ${message}`);
        this.fail(message);
        this.socket.destroy();
      },
    );
    this.socket = connect({ host: '127.0.0.1', port: config.port, noDelay: true }, () => {
      onConnected();
      if (!deferred) this.sendRequest();
    });
    this.socket.on('data', (chunk: Buffer) => {
      this.reader.push(chunk);
      if (this.outcome.headMs === undefined && this.reader.status !== undefined) {
        this.outcome.status = this.reader.status;
        this.outcome.headMs = nowMs() - this.sentAt;
      }
    });
    this.socket.on('error', (error) => {
      noteError(`viewer socket: ${error.message}`);
      this.fail(`connection error: ${error.message}`);
      onConnected();
    });
    this.socket.on('close', () => {
      this.disconnected = true;
      clearInterval(this.slowTimer);
      this.fail('connection closed before the first frame');
      onConnected();
    });
    if (slow) this.slowTimer = setInterval(() => this.socket.resume(), config.slowIntervalMs);
  }

  sendRequest(): void {
    this.sentAt = nowMs();
    if (!this.socket.destroyed) this.socket.write(streamRequest(this.config));
  }

  /** No stream for this viewer: noted once, unless it already has its first frame. */
  private fail(message: string): void {
    if (this.outcome.firstFrameMs !== undefined || this.outcome.error !== undefined) return;
    this.outcome.error = message;
    this.settle();
  }

  close(): void {
    clearInterval(this.slowTimer);
    this.disconnected = false;
    this.socket.removeAllListeners('close');
    this.socket.destroy();
  }

  private onFrame(frame: ReceivedFrame): void {
    const now = nowMs();
    if (this.slow) this.socket.pause();
    if (this.outcome.firstFrameMs === undefined && this.outcome.error === undefined) {
      this.outcome.firstFrameMs = now - this.sentAt;
      this.settle();
    }
    this.gotFirst();
    const stamp = frame.stamp;
    if (!stamp) {
      noteError('a frame without a bench stamp');
      return;
    }
    if (this.counting) {
      this.frames++;
      this.latencies.push(now - stamp.time);
      if (this.lastSeq > 0 && stamp.seq > this.lastSeq + 1) this.lost += stamp.seq - this.lastSeq - 1;
    }
    if (stamp.seq > this.lastSeq) this.lastSeq = stamp.seq;
  }
}

/** A new viewer: connect, wait for the first whole frame, leave. Resolves with the time taken. */
function timeToFirstFrame(config: LoadConfig): Promise<number> {
  return new Promise((resolve, reject) => {
    const start = nowMs();
    const socket = connect({ host: '127.0.0.1', port: config.port, noDelay: true }, () => socket.write(streamRequest(config)));
    const finish = (error?: Error): void => {
      clearTimeout(timer);
      socket.destroy();
      if (error) reject(error);
      else resolve(nowMs() - start);
    };
    const reader = new MjpegReader(
      () => finish(),
      (message) => finish(new Error(message)),
    );
    const timer = setTimeout(() => finish(new Error(`no first frame within ${PROBE_TIMEOUT_MS} ms`)), PROBE_TIMEOUT_MS);
    socket.on('data', (chunk: Buffer) => reader.push(chunk));
    socket.on('error', (error) => finish(error));
    socket.on('close', () => finish(new Error('closed before the first frame')));
  });
}

/** One snapshot over a kept-alive connection: resolves with the time taken and the frame's age. */
function snapshot(config: LoadConfig, agent: Agent): Promise<{ ms: number; age: number }> {
  return new Promise((resolve, reject) => {
    const start = nowMs();
    const req = request(
      {
        host: '127.0.0.1',
        port: config.port,
        path: config.snapshotPath,
        agent,
        headers: { Authorization: config.authorization },
        timeout: PROBE_TIMEOUT_MS,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          const end = nowMs();
          if (res.statusCode !== 200) {
            reject(new Error(`snapshot: HTTP ${res.statusCode}`));
            return;
          }
          const stamp = readStamp(Buffer.concat(chunks));
          resolve({ ms: end - start, age: stamp ? end - stamp.time : NaN });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('snapshot: timed out')));
    req.on('error', reject);
    req.end();
  });
}

/** The orchestrator's go-ahead for a burst (it first records the server's CPU and resets its counters). */
let goAhead: (() => void) | undefined;
const go = new Promise<void>((resolve) => (goAhead = resolve));

/**
 * The burst: every connection is up before any request is written; then all the requests go out
 * in one synchronous run. Waits until each viewer has its first frame or has been refused.
 */
async function burst(all: Viewer[]): Promise<BurstStats> {
  await withTimeout(Promise.all(all.map((v) => v.connected)), CONNECT_TIMEOUT_MS, 'burst: opening the connections');
  send({ type: 'mark', name: 'burst-ready' });
  await withTimeout(go, 10_000, 'burst: the go-ahead');
  const start = nowMs();
  for (const viewer of all) viewer.sendRequest();
  try {
    await withTimeout(Promise.all(all.map((v) => v.settled)), BURST_TIMEOUT_MS, 'burst: first frames');
  } catch (error) {
    noteError((error as Error).message);
    for (const viewer of all) {
      if (viewer.outcome.firstFrameMs === undefined && viewer.outcome.error === undefined) {
        viewer.outcome.error = `no first frame within ${BURST_TIMEOUT_MS / 1000} s`;
      }
    }
  }
  const settledMs = nowMs() - start;
  return { viewers: all.map((v): BurstViewer => ({ ...v.outcome })), settledMs };
}

async function run(config: LoadConfig): Promise<LoadStats> {
  const deferred = config.burst === true;
  const fast = Array.from({ length: config.fast }, () => new Viewer(config, false, deferred));
  const slow = Array.from({ length: config.slow }, () => new Viewer(config, true, deferred));
  const all = [...fast, ...slow];
  let burstStats: BurstStats | undefined;
  if (deferred) {
    burstStats = await burst(all);
  } else {
    try {
      await withTimeout(Promise.all(all.map((v) => v.firstFrame)), CONNECT_TIMEOUT_MS, 'viewers connecting');
    } catch (error) {
      noteError((error as Error).message);
    }
  }
  send({ type: 'mark', name: 'connected' });
  await sleep(config.warmupSeconds * 1000);

  for (const viewer of all) viewer.counting = true;
  // The load generator's own event loop: a stall here (a busy machine) shows as latency and loss.
  const loop = monitorEventLoopDelay({ resolution: 10 });
  loop.enable();
  const cpuStart = process.cpuUsage();
  const windowStart = nowMs();
  send({ type: 'mark', name: 'window-start' });
  await sleep(config.windowSeconds * 1000);
  for (const viewer of all) viewer.counting = false;
  const windowMs = nowMs() - windowStart;
  const cpu = process.cpuUsage(cpuStart);
  loop.disable();
  send({ type: 'mark', name: 'window-end' });

  const stats: LoadStats = {
    windowMs,
    fastFps: fast.map((v) => (v.frames * 1000) / windowMs),
    framesDelivered: all.reduce((sum, v) => sum + v.frames, 0),
    fastLost: fast.reduce((sum, v) => sum + v.lost, 0),
    fastViewersWithLoss: fast.filter((v) => v.lost > 0).length,
    latency: percentiles(fast.flatMap((v) => v.latencies)),
    slowFps: slow.map((v) => (v.frames * 1000) / windowMs),
    slowAge: percentiles(slow.flatMap((v) => v.latencies)),
    snapshotErrors: 0,
    firstFrameErrors: 0,
    clientCpuMs: (cpu.user + cpu.system) / 1000,
    clientLoopDelayMaxMs: loop.max / 1e6,
    errors,
    disconnected: all.filter((v) => v.disconnected).length,
    burst: burstStats,
  };
  for (const viewer of all) viewer.latencies = [];

  if (config.snapshots > 0) {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const times: number[] = [];
    const ages: number[] = [];
    for (let i = 0; i < config.snapshots; i++) {
      try {
        const { ms, age } = await snapshot(config, agent);
        // The first request pays for the TCP connection and the bcrypt check; a page's would too,
        // but once: keep it out of the steady-state figure.
        if (i > 0) {
          times.push(ms);
          ages.push(age);
        }
      } catch (error) {
        stats.snapshotErrors++;
        noteError((error as Error).message);
      }
      await sleep(jittered(config.snapshotGapMs));
    }
    agent.destroy();
    stats.snapshot = percentiles(times);
    stats.snapshotAge = percentiles(ages);
  }

  if (config.connects > 0) {
    const times: number[] = [];
    for (let i = 0; i < config.connects; i++) {
      try {
        times.push(await timeToFirstFrame(config));
      } catch (error) {
        stats.firstFrameErrors++;
        noteError(`first frame: ${(error as Error).message}`);
      }
      await sleep(jittered(config.connectGapMs));
    }
    stats.firstFrame = percentiles(times);
  }

  for (const viewer of all) viewer.close();
  return stats;
}

if (!process.send) {
  console.error('bench/load.ts is started by bench/fanout.ts (it needs an IPC channel).');
  process.exit(2);
}
process.on('disconnect', () => process.exit(0));
process.on('message', (message: unknown) => {
  const m = message as Partial<RunMessage> | Partial<GoMessage>;
  if (m.type === 'go') {
    goAhead?.();
    return;
  }
  if (m.type !== 'run' || !m.config) return;
  run(m.config)
    .then((stats) => send({ type: 'done', stats }))
    .catch((error: unknown) => send({ type: 'error', message: (error as Error).stack ?? String(error) }));
});
