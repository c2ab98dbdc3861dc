// The messages the benchmark's processes exchange over their IPC channels (orchestrator <-> server
// child, orchestrator <-> load generator), and small statistics helpers they share.

/** Server child -> orchestrator, once listening. */
export interface ReadyMessage {
  type: 'ready';
  port: number;
}

/** Orchestrator -> server child: restart the counters (window start), or report them (window end). */
export interface ServerRequest {
  type: 'reset' | 'stats';
}

/** Server child -> orchestrator, answering { type: 'stats' }: figures since the last reset. */
export interface ServerStatsMessage {
  type: 'stats';
  replay: { seq: number; emitted: number; skipped: number; maxLateMs: number; meanLateMs: number; starts: number };
  memory: NodeJS.MemoryUsage;
  /** Event-loop delay, ms (perf_hooks.monitorEventLoopDelay, 10 ms resolution). */
  loopDelay: { p50: number; p99: number; max: number };
  /** Garbage collection: pauses, their total and the longest, ms. */
  gc: { count: number; totalMs: number; maxMs: number; maxKind: string };
}

export type ServerMessage = ReadyMessage | ServerStatsMessage;

/** What one load run does; durations in seconds. */
export interface LoadConfig {
  port: number;
  streamPath: string;
  snapshotPath: string;
  /** The value of the Authorization header. */
  authorization: string;
  fast: number;
  slow: number;
  /** A slow viewer takes one frame this often. */
  slowIntervalMs: number;
  warmupSeconds: number;
  windowSeconds: number;
  /** Snapshot requests made one after another while streaming (0: none). */
  snapshots: number;
  snapshotGapMs: number;
  /** New viewers connected one after another, each until its first frame (0: none). */
  connects: number;
  connectGapMs: number;
  /**
   * The burst configuration: every viewer's TCP connection is opened first; then, once the
   * orchestrator answers the 'burst-ready' mark with { type: 'go' }, every request is written in
   * one synchronous run, so they all reach the server at the same instant.
   */
  burst?: boolean;
}

/** Orchestrator -> load generator, answering the 'burst-ready' mark: write the requests now. */
export interface GoMessage {
  type: 'go';
}

/** What became of one viewer of a burst. Times are from the instant the requests were written, ms. */
export interface BurstViewer {
  slow: boolean;
  /** The HTTP status the server answered, when it answered. */
  status?: number;
  /** Why there was no stream (a refusal's status, a connection error, a timeout). */
  error?: string;
  /** Until the response head (the status line) arrived. */
  headMs?: number;
  /** Until the first whole frame arrived. */
  firstFrameMs?: number;
}

export interface BurstStats {
  viewers: BurstViewer[];
  /** From writing the requests until every viewer had its first frame or had been refused, ms. */
  settledMs: number;
}

/** Orchestrator -> load generator. */
export interface RunMessage {
  type: 'run';
  config: LoadConfig;
}

export interface Percentiles {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

/** The figures of one load run. */
export interface LoadStats {
  windowMs: number;
  /** Delivered frames per second, per fast viewer. */
  fastFps: number[];
  /** Frames received by all persistent viewers (fast and slow) during the window. */
  framesDelivered: number;
  /** Frames fast viewers never saw (gaps in sequence numbers) during the window. */
  fastLost: number;
  /** Fast viewers that lost at least one frame. */
  fastViewersWithLoss: number;
  /** Receive time (whole frame in) minus stamp, over every fast viewer's frames, ms. */
  latency: Percentiles;
  slowFps: number[];
  /** Age of the frames slow viewers received (receive time minus stamp), ms. */
  slowAge: Percentiles;
  /** Request sent to whole body received, ms. */
  snapshot?: Percentiles;
  /** Age of the frame a snapshot returned, ms. */
  snapshotAge?: Percentiles;
  snapshotErrors: number;
  /** Connect to first whole frame received, ms. */
  firstFrame?: Percentiles;
  firstFrameErrors: number;
  /** The load generator's own CPU during the window, ms (to show whether it was the bottleneck). */
  clientCpuMs: number;
  /** The load generator's longest event-loop delay during the window, ms (10 ms resolution). */
  clientLoopDelayMaxMs?: number;
  /** Viewer errors and early disconnects (at most a few, for the report). */
  errors: string[];
  /** Viewers that were disconnected before the end. */
  disconnected: number;
  /** The burst configuration only: each viewer's answer and time to first frame. */
  burst?: BurstStats;
}

/** Load generator -> orchestrator. */
export type LoadMessage =
  | { type: 'mark'; name: 'burst-ready' | 'connected' | 'window-start' | 'window-end' }
  | { type: 'done'; stats: LoadStats }
  | { type: 'error'; message: string };

/** Nearest-rank percentiles of `values` (empty -> all NaN). */
export function percentiles(values: number[]): Percentiles {
  const sorted = Float64Array.from(values).sort();
  const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? NaN;
  return { count: sorted.length, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: at(1) };
}

export function median(values: number[]): number {
  return percentiles(values).p50;
}
