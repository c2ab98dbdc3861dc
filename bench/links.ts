// Remote viewers on slow links (issue 13, `npm run bench:links`): for link rates of 1, 2, 5 and
// 10 Mbit/s (tc tbf on a veth pair between two network namespaces, test/netns.ts's harness), each
// server variant side by side in the same run, each in a fresh link and a fresh server child:
//   after   ours, MJPEG (/stream.mjpg), the default server: a frame goes out only while the viewer's
//           connection has < 32 KiB unacknowledged (src/web/send-queue.ts)
//   before  ours, MJPEG, maxUnackedBytes 0: latest-frame-wins only, as before issue 13
//   h264    ours, the H.264 view (/stream.mp4): fragmented MP4 from the shared encoder
//   naive   the naive fan-out server (bench/naive-server.ts)
// The camera is the replayed bench corpus (corpus.ts: 1280x720, 30 fps, ~113 KiB a frame), every
// frame stamped with its send time on the machine's monotonic clock. One remote viewer per cell, in
// the viewer namespace behind the shaped link. Per cell: frames per second received, delay p50/p95
// (MJPEG: arrival of the whole frame minus its stamp; H.264: arrival of the whole fragment minus
// its prft wall-clock time, and the estimated age of its first picture, see ageOfFirstFrames),
// bytes per second received, the server's CPU and RSS. Then the CPU and RSS of our server with the
// H.264 stage and 1, then 10, H.264 viewers on loopback (one encoder for all). A markdown report
// goes to stdout, progress to stderr, every figure to bench/results/links-<date>.json.
// Needs root, iproute2 and ffmpeg. Namespaces and every process in them are removed after each
// cell, on exit and on Ctrl-C (and leftovers of a crashed run at the next start).
//
//   BENCH_QUICK=1              5 s windows, 2 s warm-up
//   BENCH_WINDOW_SECONDS=N     measurement window per cell (default 15; quick 5)
//   BENCH_RATES=1,2            only these link rates (Mbit/s)
//   BENCH_VARIANTS=after,h264  only these variants (after, before, h264, naive)
//   BENCH_SMALL=0              skip the small-frame check (ours after with -q:v 24 frames, ~26 KiB, at each rate)
//   BENCH_CPU=0                skip the 1-vs-10 H.264 viewers CPU phase
//   BENCH_H264_BITRATE=K       the H.264 stage's bitrate in kbit/s (default 800, web.h264.bitrate's)
//   node --import tsx bench/links.ts --report bench/results/links-X.json   re-renders a saved run
import { execFile, execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs, readdirSync, readFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';

import { hashPassword, writeUsersFile } from '../src/users/users-file';
import type { ShapedLink } from '../test/netns';
import { createShapedLink, sendQueues } from '../test/netns';
import { CACHE_DIR, ensureCorpus, loadCorpus, nowMs } from './corpus';
import type { CorpusInfo } from './corpus';
import { cpuModel, cpuMs, machineBusyMs, rssMiB } from './proc';
import type { ServerMessage, ServerStatsMessage } from './protocol';

const REPO = join(__dirname, '..');
const RESULTS_DIR = join(__dirname, 'results');

function envNumber(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0) throw new Error(`${name} must be a number >= 0 (got "${raw}")`);
  return value;
}

const quick = process.env.BENCH_QUICK === '1';
const timing = {
  warmupSeconds: quick ? 2 : 3,
  windowSeconds: envNumber('BENCH_WINDOW_SECONDS', quick ? 5 : 15),
};
const GOAL = { mjpegP95: 0.5, h264P95: 1 };

export type Variant = 'after' | 'before' | 'h264' | 'naive';
const VARIANTS: Variant[] = ['after', 'before', 'h264', 'naive'];
const LABEL: Record<Variant, string> = {
  after: 'ours after, MJPEG',
  before: 'ours before, MJPEG',
  h264: 'ours, H.264 view',
  naive: 'naive fan-out',
};

function rates(): number[] {
  const list = (process.env.BENCH_RATES ?? '1,2,5,10').split(',').map((s) => Number(s.trim()));
  for (const rate of list) if (!(rate > 0)) throw new Error(`BENCH_RATES: "${rate}" is not a rate in Mbit/s`);
  return list;
}

function variants(): Variant[] {
  const list = (process.env.BENCH_VARIANTS ?? VARIANTS.join(',')).split(',').map((s) => s.trim());
  for (const v of list) if (!VARIANTS.includes(v as Variant)) throw new Error(`BENCH_VARIANTS: unknown variant "${v}" (${VARIANTS.join(', ')})`);
  return list as Variant[];
}

// ---- figures ---------------------------------------------------------------------------------

export interface Spread {
  count: number;
  p50: number;
  p95: number;
  max: number;
}

/** Nearest-rank p50/p95/max of `values` (NaN when empty). */
export function spread(values: number[]): Spread {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? NaN;
  return { count: sorted.length, p50: at(0.5), p95: at(0.95), max: at(1) };
}

/** One whole MJPEG frame or MP4 fragment as the viewer saw it. */
interface FrameEvent {
  e: 'f' | 'g';
  v: number;
  /** Date.now() at arrival. */
  at: number;
  /** MJPEG: monotonic ms at arrival, and the corpus stamp (send time, monotonic ms) and sequence number. */
  mono?: number;
  stamp?: number;
  seq?: number;
  /** MP4: the prft wall-clock time (epoch ms) and what the moof says. */
  prft?: number;
  startMs?: number;
  durationMs?: number;
  samples?: number;
  key?: boolean;
  bytes: number;
}

interface BytesEvent {
  e: 'b';
  v: number;
  at: number;
  total: number;
}

interface ViewerLog {
  frames: FrameEvent[];
  counters: BytesEvent[];
  inits: number;
  errors: string[];
}

function median(values: number[]): number {
  const sorted = values.filter(Number.isFinite).sort((a, b) => a - b);
  return sorted[Math.ceil(sorted.length / 2) - 1] ?? NaN;
}

/**
 * The age of each fragment's first picture at its arrival, in seconds, without trusting what the
 * prft's time stands for. The stage gives ffmpeg wall-clock input timestamps
 * (-use_wallclock_as_timestamps), so media time runs with the wall clock: a frame of media time m
 * came in at T0 + m. ffmpeg's prft holds either the time the fragment was written (after encoding
 * the first frame of the *next* fragment, media time start + duration: ffmpeg 5.1's default) or,
 * when the encoder exports it (libx264 with -export_side_data prft), the time the fragment's first
 * frame was encoded (media time start). Over a connection, prft minus the matching media time is
 * T0 plus the encoder's delay, nearly constant. The fragments cut short at a key frame tell the two
 * apart: with the right anchor their difference matches the others'. The smallest difference is
 * taken as T0, so the age leaves out the encoder's least delay (a frame or two); a fragment's first
 * picture is arrival − (T0 + start) old. encoderLag: how much later than at its quickest the
 * encoder delivered each fragment. Without short fragments the anchor is unknown and the flush is
 * assumed (the larger ages).
 */
export function ageOfFirstFrames(fragments: FrameEvent[]): { anchor: 'first frame' | 'flush' | 'unknown'; ages: Array<{ age: number; encoderLag: number }> } {
  const atStart = fragments.map((g) => (g.prft ?? NaN) - (g.startMs ?? NaN));
  const atEnd = fragments.map((g, i) => (atStart[i] ?? NaN) - (g.durationMs ?? NaN));
  const typical = median(fragments.map((g) => g.durationMs ?? NaN));
  const short = fragments.map((g) => (g.durationMs ?? NaN) < typical * 0.75);
  const normal = (lags: number[]): number => median(lags.filter((_, i) => !short[i]));
  const cost = (lags: number[]): number => {
    const center = normal(lags);
    return lags.reduce((sum, lag, i) => (short[i] && Number.isFinite(lag) ? sum + Math.abs(lag - center) : sum), 0);
  };
  const anchor = !short.some((x, i) => x && Number.isFinite(atStart[i])) ? 'unknown' : cost(atStart) < cost(atEnd) ? 'first frame' : 'flush';
  const lags = anchor === 'first frame' ? atStart : atEnd;
  const t0 = Math.min(...lags.filter(Number.isFinite));
  return { anchor, ages: fragments.map((g, i) => ({ age: (g.at - (t0 + (g.startMs ?? NaN))) / 1000, encoderLag: ((lags[i] ?? NaN) - t0) / 1000 })) };
}

/** Bytes read by the viewer(s) between `from` and `to`, from the 200 ms counters (per second). */
function bytesPerSecond(counters: BytesEvent[], from: number, to: number): number | undefined {
  const byViewer = new Map<number, BytesEvent[]>();
  for (const c of counters) byViewer.set(c.v, [...(byViewer.get(c.v) ?? []), c]);
  let bytes = 0;
  let seconds = 0;
  for (const list of byViewer.values()) {
    const before = list.filter((c) => c.at <= from).at(-1) ?? list[0];
    const last = list.filter((c) => c.at <= to).at(-1);
    if (!before || !last || last.at <= before.at) continue;
    bytes += last.total - before.total;
    seconds = Math.max(seconds, (last.at - before.at) / 1000);
  }
  return seconds > 0 ? bytes / seconds : undefined;
}

export interface CellResult {
  variant: Variant;
  rateMbit: number;
  /** The corpus's average frame size, KiB (the main matrix: ~113; the small-frame check: ~24). */
  frameKiB: number;
  /** The small-frame check (not part of the matrix or the goal). */
  smallFrames?: boolean;
  windowSeconds: number;
  /** Frames (MJPEG) or video samples (H.264) received per second in the window. */
  fps?: number;
  /** Seconds: MJPEG arrival − stamp; H.264 arrival − prft. */
  delay?: Spread;
  /** Delay of the last frame of the window (s): for the servers that fall behind, where it was heading. */
  delayAtEnd?: number;
  /** H.264 only: age of each fragment's first picture at arrival (s), see ageOfFirstFrames. */
  age?: Spread;
  /** H.264 only: how much later than at its quickest the encoder flushed each fragment (s). */
  encoderLag?: Spread;
  /** H.264 only: what the prft's time was found to stand for (see ageOfFirstFrames). */
  prftAnchor?: 'first frame' | 'flush' | 'unknown';
  /**
   * H.264 only: the share of the window's media the viewer never got (gaps in the media timeline
   * between the fragments it received: the server skipped to the next key frame), 0..1.
   */
  mediaLost?: number;
  /** H.264 only: init segments received (1 unless the stream was opened again). */
  inits?: number;
  /**
   * H.264 only, for checking the figures: every fragment of the connection as
   * [arrival, prft (both ms from the window's start), media start ms, duration ms, samples, key 1/0, bytes].
   */
  series?: number[][];
  /** H.264 only: fragments received, of which key, and inits (encoder starts) seen. */
  fragments?: number;
  keyFragments?: number;
  /** MJPEG only: frames the viewer never got (gaps in the corpus sequence numbers) per second. */
  skippedPerSecond?: number;
  bytesPerSecond?: number;
  /** The server process (node) and its encoder children (ffmpeg), during the window: % of one core. */
  serverCpuPercent?: number;
  encoderCpuPercent?: number;
  serverRssMiB?: number;
  /** Everything else on the machine during the window, % of one core (other people's work). */
  otherCpuPercent?: number;
  /** Unacknowledged bytes of the viewer's socket in the server (mid-window), from /proc/net/tcp. */
  sendQueue?: number[];
  /** tc's counters for the shaper at the end: sent, dropped, overlimits, backlog. */
  shaper?: string;
  replay?: ServerStatsMessage['replay'];
  viewerErrors: string[];
  error?: string;
}

export interface CpuPhase {
  viewers: number;
  windowSeconds: number;
  /** % of one core during the window. */
  serverCpuPercent?: number;
  encoderCpuPercent?: number;
  encoders: number;
  serverRssMiB?: number;
  encoderRssMiB?: number;
  /** Per viewer: samples per second received; delay arrival − prft (s), all viewers together. */
  fps: number[];
  delay?: Spread;
  age?: Spread;
  viewerCpuPercent?: number;
  otherCpuPercent?: number;
  error?: string;
}

export interface LinksResults {
  meta: {
    date: string;
    commit: string;
    node: string;
    ffmpeg: string;
    cpu: string;
    cores: number;
    quick: boolean;
    windowSeconds: number;
    warmupSeconds: number;
    corpus: { frames: number; width: number; height: number; quality: number; averageBytes: number };
    durationSeconds?: number;
  };
  cells: CellResult[];
  cpu: CpuPhase[];
}

// ---- processes -------------------------------------------------------------------------------

const children = new Set<ChildProcess>();
let tempDir: string | undefined;

function killAll(): void {
  for (const child of children) child.kill('SIGKILL');
  if (tempDir) rmSync(tempDir, { recursive: true, force: true });
}
// test/netns.ts removes the namespaces (and what runs in them) on exit and on signals too.
process.once('exit', killAll);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    killAll();
    process.exit(130);
  });
}

const alive = (child: ChildProcess): boolean => child.exitCode === null && child.signalCode === null;

/** `node --import tsx bench/<file> args...` inside namespace `ns` (ip execs it: the pid is node's). */
function spawnNodeIn(ns: string, file: string, args: string[], env: Record<string, string>, ipc: boolean): ChildProcess {
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '--import', 'tsx', join(__dirname, file), ...args], {
    cwd: REPO,
    env: { ...process.env, ...env },
    stdio: ipc ? ['ignore', 'pipe', 'pipe', 'ipc'] : ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

async function stopChild(child: ChildProcess, graceMs = 5_000): Promise<void> {
  if (!alive(child)) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

/** Cleanups of one cell, run in reverse order (what test/netns.ts's `t.after` expects). */
class Scope {
  private readonly fns: Array<() => Promise<void> | void> = [];
  after(fn: () => Promise<void> | void): void {
    this.fns.push(fn);
  }
  async close(): Promise<void> {
    for (const fn of this.fns.splice(0).reverse()) {
      try {
        await fn();
      } catch (error) {
        console.error(`  cleanup: ${(error as Error).message}`);
      }
    }
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

interface Shared {
  corpus: CorpusInfo;
  /** The same pictures at a low JPEG quality (~24 KiB a frame), for the small-frame check. */
  smallCorpus?: CorpusInfo;
  usersFile: string;
  authorization: string;
}

interface RunningServer {
  child: ChildProcess;
  pid: number;
  port: number;
  output: () => string;
  stats(): Promise<ServerStatsMessage | undefined>;
}

async function startServer(ns: string, variant: Variant, shared: Shared, scope: Scope, corpus = shared.corpus): Promise<RunningServer> {
  const env: Record<string, string> = {
    BENCH_CORPUS: corpus.path,
    BENCH_USERS_FILE: shared.usersFile,
    BENCH_AUTHORIZATION: shared.authorization,
    BENCH_HOST: '0.0.0.0',
  };
  if (variant === 'before') env.BENCH_MAX_UNACKED = '0';
  if (variant === 'h264') env.BENCH_H264 = '1';
  const child = spawnNodeIn(ns, variant === 'naive' ? 'naive-server.ts' : 'our-server.ts', [], env, true);
  scope.after(() => stopChild(child));
  let output = '';
  const keep = (d: Buffer): void => {
    output = (output + d.toString()).slice(-5_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the ${variant} server did not start within 60 s: ${output}`)), 60_000);
    child.on('message', (m: unknown) => {
      if ((m as ServerMessage).type !== 'ready') return;
      clearTimeout(timer);
      resolve((m as { port: number }).port);
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`the ${variant} server exited (${signal ?? code}) before it was ready: ${output}`));
    });
  });
  return {
    child,
    pid: child.pid ?? 0,
    port,
    output: () => output,
    stats: () =>
      new Promise((resolve) => {
        if (!alive(child) || !child.connected) {
          resolve(undefined);
          return;
        }
        const timer = setTimeout(() => {
          child.off('message', on);
          resolve(undefined);
        }, 5_000);
        const on = (m: unknown): void => {
          if ((m as ServerMessage).type !== 'stats') return;
          clearTimeout(timer);
          child.off('message', on);
          resolve(m as ServerStatsMessage);
        };
        child.on('message', on);
        child.send({ type: 'stats' });
      }),
  };
}

function startViewer(ns: string, mode: 'mjpeg' | 'mp4', url: string, authorization: string, count: number, scope: Scope): { child: ChildProcess; log: ViewerLog } {
  const child = spawnNodeIn(ns, 'links-viewer.ts', [mode, url, authorization, String(count)], {}, false);
  scope.after(() => stopChild(child, 1_000));
  const log: ViewerLog = { frames: [], counters: [], inits: 0, errors: [] };
  createInterface({ input: child.stdout! }).on('line', (line) => {
    if (!line.startsWith('{')) return;
    const event = JSON.parse(line) as { e: string; message?: string };
    if (event.e === 'f' || event.e === 'g') log.frames.push(event as FrameEvent);
    else if (event.e === 'b') log.counters.push(event as BytesEvent);
    else if (event.e === 'i') log.inits++;
    else if (event.e === 'x' && log.errors.length < 20) log.errors.push(event.message ?? line);
  });
  child.stderr?.on('data', (d: Buffer) => {
    if (log.errors.length < 20) log.errors.push(d.toString().trim().slice(0, 300));
  });
  return { child, log };
}

async function waitUntil(what: string, timeoutMs: number, ok: () => boolean, failed?: () => string | undefined): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    const why = failed?.();
    if (why) throw new Error(`${what}: ${why}`);
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs / 1000} s`);
    await sleep(50);
  }
}

/** Pids whose parent is `pid` (the server's ffmpeg encoders), from /proc. */
function childPids(pid: number): number[] {
  const found: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) found.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

/** CPU ms so far of a process and of its children, each; children that come and go are summed while seen. */
class CpuMeter {
  private readonly start: { at: number; server?: number; kids: Map<number, number>; extra: Map<number, number>; machine?: number };

  constructor(
    private readonly pid: number,
    private readonly others: number[] = [],
  ) {
    this.start = { at: nowMs(), server: cpuMs(pid), kids: this.kidTimes(), extra: this.extraTimes(), machine: machineBusyMs() };
  }

  private kidTimes(): Map<number, number> {
    const times = new Map<number, number>();
    for (const kid of childPids(this.pid)) {
      const ms = cpuMs(kid);
      if (ms !== undefined) times.set(kid, ms);
    }
    return times;
  }

  private extraTimes(): Map<number, number> {
    const times = new Map<number, number>();
    for (const pid of this.others) {
      const ms = cpuMs(pid);
      if (ms !== undefined) times.set(pid, ms);
    }
    return times;
  }

  /** % of one core since construction: the server, its children, the `others`, the rest of the machine. */
  read(): { server?: number; kids: number; kidCount: number; others: number; rest?: number } {
    const seconds = (nowMs() - this.start.at) / 1000;
    const server = cpuMs(this.pid);
    const kidsNow = this.kidTimes();
    let kids = 0;
    for (const [kid, ms] of kidsNow) kids += ms - (this.start.kids.get(kid) ?? 0);
    let others = 0;
    for (const [pid, ms] of this.extraTimes()) others += ms - (this.start.extra.get(pid) ?? 0);
    const serverMs = server !== undefined && this.start.server !== undefined ? server - this.start.server : undefined;
    const machine = machineBusyMs();
    const rest = machine !== undefined && this.start.machine !== undefined && serverMs !== undefined ? machine - this.start.machine - serverMs - kids - others : undefined;
    const pct = (ms: number): number => (ms / seconds / 1000) * 100;
    return {
      server: serverMs === undefined ? undefined : pct(serverMs),
      kids: pct(kids),
      kidCount: kidsNow.size,
      others: pct(others),
      rest: rest === undefined ? undefined : pct(Math.max(0, rest)),
    };
  }
}

// ---- one cell --------------------------------------------------------------------------------

function summarizeFrames(result: CellResult, variant: Variant, log: ViewerLog, from: number, to: number): void {
  const seconds = (to - from) / 1000;
  const inWindow = log.frames.filter((f) => f.at >= from && f.at < to);
  result.bytesPerSecond = bytesPerSecond(log.counters, from, to);
  if (variant === 'h264') {
    result.fragments = inWindow.length;
    result.keyFragments = inWindow.filter((g) => g.key).length;
    result.fps = inWindow.reduce((sum, g) => sum + (g.samples ?? 0), 0) / seconds;
    const delays = inWindow.filter((g) => g.prft !== undefined).map((g) => (g.at - (g.prft as number)) / 1000);
    result.delay = spread(delays);
    result.delayAtEnd = delays.at(-1);
    // T0 from every fragment of the connection (warm-up included), ages of the window's.
    const estimate = ageOfFirstFrames(log.frames);
    result.prftAnchor = estimate.anchor;
    const ages = estimate.ages.filter((_, i) => {
      const at = log.frames[i]?.at ?? NaN;
      return at >= from && at < to;
    });
    result.age = spread(ages.map((a) => a.age).filter(Number.isFinite));
    result.encoderLag = spread(ages.map((a) => a.encoderLag).filter(Number.isFinite));
    result.inits = log.inits;
    let missing = 0;
    for (const [i, a] of inWindow.entries()) {
      const b = inWindow[i + 1];
      if (!b || a.v !== b.v) continue;
      missing += Math.max(0, (b.startMs ?? 0) - (a.startMs ?? 0) - (a.durationMs ?? 0));
    }
    result.mediaLost = missing / (to - from);
    const r = (n: number | undefined): number => Math.round((n ?? NaN) * 10) / 10;
    result.series = log.frames.map((g) => [g.at - from, r((g.prft ?? NaN) - from), r(g.startMs), r(g.durationMs), g.samples ?? 0, g.key ? 1 : 0, g.bytes]);
    return;
  }
  result.fps = inWindow.length / seconds;
  const delays = inWindow.filter((f) => f.stamp !== undefined && f.mono !== undefined).map((f) => ((f.mono as number) - (f.stamp as number)) / 1000);
  result.delay = spread(delays);
  result.delayAtEnd = delays.at(-1);
  const seqs = inWindow.map((f) => f.seq).filter((s): s is number => s !== undefined);
  const [first, last] = [seqs[0], seqs.at(-1)];
  if (seqs.length > 1 && first !== undefined && last !== undefined) result.skippedPerSecond = (last - first + 1 - seqs.length) / seconds;
}

async function runCell(variant: Variant, rateMbit: number, shared: Shared, corpus = shared.corpus): Promise<CellResult> {
  const result: CellResult = { variant, rateMbit, frameKiB: corpus.averageBytes / 1024, windowSeconds: timing.windowSeconds, viewerErrors: [] };
  if (corpus !== shared.corpus) result.smallFrames = true;
  const scope = new Scope();
  let link: ShapedLink | undefined;
  try {
    link = await createShapedLink(scope, { rateMbit });
    const server = await startServer(link.server, variant, shared, scope, corpus);
    const url = `http://${link.serverAddress}:${server.port}${variant === 'h264' ? '/stream.mp4' : '/stream.mjpg'}`;
    const viewer = startViewer(link.viewer, variant === 'h264' ? 'mp4' : 'mjpeg', url, shared.authorization, 1, scope);
    await waitUntil(`the ${variant} viewer's first frame`, 60_000, () => viewer.log.frames.length > 0, () =>
      alive(server.child) ? (alive(viewer.child) ? undefined : `the viewer exited: ${viewer.log.errors.join('; ')}`) : `the server exited: ${server.output()}`,
    );
    await sleep(timing.warmupSeconds * 1000);
    if (server.child.connected) server.child.send({ type: 'reset' }); // the replay's lateness counters
    const from = Date.now();
    const meter = new CpuMeter(server.pid);
    let rssMax = 0;
    const sampler = setInterval(() => {
      rssMax = Math.max(rssMax, rssMiB(server.pid) ?? 0);
    }, 1000);
    await sleep((timing.windowSeconds * 1000) / 2);
    result.sendQueue = await sendQueues(link.server, server.port).then(
      (rows) => rows.filter((r) => r.remote.startsWith(ipHex(link!.viewerAddress))).map((r) => r.txQueue),
      () => undefined,
    );
    await sleep((timing.windowSeconds * 1000) / 2);
    const to = Date.now();
    const cpu = meter.read();
    clearInterval(sampler);
    rssMax = Math.max(rssMax, rssMiB(server.pid) ?? 0);
    result.serverCpuPercent = cpu.server;
    result.encoderCpuPercent = variant === 'h264' ? cpu.kids : undefined;
    result.otherCpuPercent = cpu.rest;
    result.serverRssMiB = rssMax || undefined;
    result.replay = (await server.stats())?.replay;
    result.shaper = (await link.shaperStats().catch(() => '')).replace(/\s+/g, ' ').replace(/^.*?Sent/, 'Sent');
    // Let the last lines of the viewer arrive (it prints every 50 ms).
    await sleep(300);
    summarizeFrames(result, variant, viewer.log, from, to);
    result.viewerErrors = viewer.log.errors.slice(0, 5);
  } catch (error) {
    result.error = (error as Error).message.slice(0, 2_000);
  } finally {
    await scope.close();
  }
  return result;
}

/** /proc/net/tcp's spelling of an IPv4 address (little-endian hex), to find the viewer's socket. */
function ipHex(address: string): string {
  return address
    .split('.')
    .map((n) => Number(n).toString(16).toUpperCase().padStart(2, '0'))
    .reverse()
    .join('');
}

// ---- CPU of the H.264 stage: 1, then 10 viewers -----------------------------------------------

async function runCpuPhases(shared: Shared): Promise<CpuPhase[]> {
  const phases: CpuPhase[] = [];
  const scope = new Scope();
  try {
    // A namespace of its own (for clean-up); the viewers are on its loopback, nothing is shaped.
    const link = await createShapedLink(scope, { rateMbit: 1000 });
    const server = await startServer(link.server, 'h264', shared, scope);
    const url = `http://127.0.0.1:${server.port}/stream.mp4`;
    const viewers: Array<{ child: ChildProcess; log: ViewerLog; count: number }> = [];
    for (const total of [1, 10]) {
      const have = viewers.reduce((sum, v) => sum + v.count, 0);
      const viewer = startViewer(link.server, 'mp4', url, shared.authorization, total - have, scope);
      viewers.push({ ...viewer, count: total - have });
      const phase: CpuPhase = { viewers: total, windowSeconds: timing.windowSeconds, fps: [], encoders: 0 };
      try {
        await waitUntil(`${total} H.264 viewers' first fragments`, 60_000, () => viewer.log.frames.length > 0 && new Set(viewer.log.frames.map((f) => f.v)).size === total - have, () =>
          alive(server.child) ? undefined : `the server exited: ${server.output()}`,
        );
        await sleep(timing.warmupSeconds * 1000);
        const from = Date.now();
        const meter = new CpuMeter(server.pid, viewers.map((v) => v.child.pid ?? 0));
        await sleep(timing.windowSeconds * 1000);
        const to = Date.now();
        const cpu = meter.read();
        phase.serverCpuPercent = cpu.server;
        phase.encoderCpuPercent = cpu.kids;
        phase.encoders = cpu.kidCount;
        phase.viewerCpuPercent = cpu.others;
        phase.otherCpuPercent = cpu.rest;
        phase.serverRssMiB = rssMiB(server.pid);
        phase.encoderRssMiB = childPids(server.pid).reduce((sum, pid) => sum + (rssMiB(pid) ?? 0), 0);
        await sleep(300);
        const delays: number[] = [];
        const ages: number[] = [];
        for (const { log, count } of viewers) {
          for (let v = 0; v < count; v++) {
            const mine = log.frames.filter((f) => f.v === v);
            const inWindow = mine.filter((f) => f.at >= from && f.at < to);
            phase.fps.push(inWindow.reduce((sum, g) => sum + (g.samples ?? 0), 0) / ((to - from) / 1000));
            delays.push(...inWindow.filter((g) => g.prft !== undefined).map((g) => (g.at - (g.prft as number)) / 1000));
            ages.push(
              ...ageOfFirstFrames(mine)
                .ages.filter((a, i) => {
                  const at = mine[i]?.at ?? NaN;
                  return at >= from && at < to && Number.isFinite(a.age);
                })
                .map((a) => a.age),
            );
          }
        }
        phase.delay = spread(delays);
        phase.age = spread(ages);
      } catch (error) {
        phase.error = (error as Error).message.slice(0, 2_000);
      }
      phases.push(phase);
      if (phase.error) break;
    }
  } catch (error) {
    phases.push({ viewers: 0, windowSeconds: timing.windowSeconds, fps: [], encoders: 0, error: (error as Error).message.slice(0, 2_000) });
  } finally {
    await scope.close();
  }
  return phases;
}

// ---- report ----------------------------------------------------------------------------------

const f = (n: number | undefined, digits = 1): string => (n === undefined || !Number.isFinite(n) ? '–' : n.toFixed(digits));
const s = (n: number | undefined): string => (n === undefined || !Number.isFinite(n) ? '–' : n >= 10 ? n.toFixed(1) : n.toFixed(2));
function ratio(a: number | undefined, b: number | undefined): string {
  if (a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b <= 0) return '–';
  const r = a / b;
  return `${r >= 100 ? r.toFixed(0) : r >= 10 ? r.toFixed(1) : r.toFixed(2)}×`;
}

/** The goal: ours after (MJPEG) p95 ≤ 0.5 s and the H.264 view p95 ≤ 1 s at every rate measured. */
export function goalVerdict(cells: CellResult[], useAge = false): { pass: boolean; failures: string[] } {
  const failures: string[] = [];
  for (const cell of cells.filter((c) => !c.smallFrames)) {
    if (cell.variant !== 'after' && cell.variant !== 'h264') continue;
    const limit = cell.variant === 'after' ? GOAL.mjpegP95 : GOAL.h264P95;
    const figure = cell.variant === 'h264' && useAge ? cell.age : cell.delay;
    const p95 = figure?.p95;
    if (cell.error || p95 === undefined || !Number.isFinite(p95)) failures.push(`${LABEL[cell.variant]} at ${cell.rateMbit} Mbit/s: no figure (${cell.error ?? 'no frames'})`);
    else if (p95 > limit) failures.push(`${LABEL[cell.variant]} at ${cell.rateMbit} Mbit/s: p95 ${s(p95)} s > ${limit} s`);
  }
  return { pass: failures.length === 0, failures };
}

/** Seconds a frame of `kib` KiB takes through a link of `rateMbit` (payload only: the floor of any MJPEG delay). */
export function transmissionSeconds(kib: number, rateMbit: number): number {
  return (kib * 1024 * 8) / (rateMbit * 1e6);
}

export function renderReport(results: LinksResults): string {
  const { meta, cpu } = results;
  const cells = results.cells.filter((c) => !c.smallFrames);
  const small = results.cells.filter((c) => c.smallFrames);
  const lines: string[] = [];
  const rateList = [...new Set(cells.map((c) => c.rateMbit))];
  const cell = (variant: Variant, rate: number): CellResult | undefined => cells.find((c) => c.variant === variant && c.rateMbit === rate);
  lines.push(
    `Run ${meta.date} (commit ${meta.commit}), Node ${meta.node}, ${meta.ffmpeg}, ${meta.cores} × ${meta.cpu}; ` +
      `${meta.quick ? 'quick mode, ' : ''}${meta.windowSeconds} s window per cell after ${meta.warmupSeconds} s of warm-up; ` +
      `corpus ${meta.corpus.width}x${meta.corpus.height} at 30 fps, ${(meta.corpus.averageBytes / 1024).toFixed(0)} KiB a frame` +
      `${meta.durationSeconds ? `; ${Math.round(meta.durationSeconds / 60)} min in all` : ''}.`,
    '',
    '| link | server | fps received | delay p50 (s) | delay p95 (s) | delay max (s) | last frame (s) | received kB/s | server CPU % | server RSS MiB | one frame on the link (s) |',
    '|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  );
  for (const rate of rateList) {
    for (const variant of VARIANTS) {
      const c = cell(variant, rate);
      if (!c) continue;
      if (c.error && c.delay === undefined) {
        lines.push(`| ${rate} Mbit/s | ${LABEL[variant]} | error: ${firstLine(c.error).slice(0, 120)} |||||||||`);
        continue;
      }
      const cpuText = c.encoderCpuPercent !== undefined ? `${f(c.serverCpuPercent, 0)} + ffmpeg ${f(c.encoderCpuPercent, 0)}` : f(c.serverCpuPercent, 0);
      lines.push(
        `| ${rate} Mbit/s | ${LABEL[variant]} | ${f(c.fps)} | ${s(c.delay?.p50)} | ${s(c.delay?.p95)} | ${s(c.delay?.max)} | ${s(c.delayAtEnd)} | ` +
          `${f(c.bytesPerSecond === undefined ? undefined : c.bytesPerSecond / 1000, 0)} | ${cpuText} | ${f(c.serverRssMiB, 0)} | ` +
          `${variant === 'h264' ? '–' : s(transmissionSeconds(c.frameKiB, rate))} |`,
      );
    }
  }
  lines.push(
    '',
    'Delay: MJPEG, arrival of the whole frame at the remote viewer minus its send time stamped in the corpus frame; H.264, arrival of the whole fragment minus its `prft` wall-clock time. "last frame": the delay of the window\'s last frame (where a server that falls behind was heading). fps for H.264 counts video frames (samples) in the fragments received. "one frame on the link": the average frame\'s bytes divided by the link rate, the least delay any server that sends whole frames can have.',
    '',
    '**H.264 view: prft delay against the age of each fragment\'s first picture** (see Method):',
    '',
    '| link | fragments (key) | media skipped | prft stamped at | prft delay p50 / p95 (s) | first-picture age p50 / p95 / max (s) | encoder lag p95 / max (s) |',
    '|---:|---:|---:|---:|---:|---:|---:|',
  );
  for (const rate of rateList) {
    const c = cell('h264', rate);
    if (!c || c.delay === undefined) continue;
    lines.push(
      `| ${rate} Mbit/s | ${c.fragments ?? '–'} (${c.keyFragments ?? '–'}) | ${c.mediaLost === undefined ? '–' : `${(c.mediaLost * 100).toFixed(0)}%`} | ${c.prftAnchor ?? '–'} | ${s(c.delay.p50)} / ${s(c.delay.p95)} | ${s(c.age?.p50)} / ${s(c.age?.p95)} / ${s(c.age?.max)} | ` +
        `${s(c.encoderLag?.p95)} / ${s(c.encoderLag?.max)} |`,
    );
  }
  const [firstSmall] = small;
  if (firstSmall) {
    lines.push(
      '',
      `**Small-frame check** (ours after, MJPEG, the same pictures at a low JPEG quality: ${f(firstSmall.frameKiB, 0)} KiB a frame):`,
      '',
      '| link | fps received | delay p50 (s) | delay p95 (s) | delay max (s) | received kB/s | one frame on the link (s) |',
      '|---:|---:|---:|---:|---:|---:|---:|',
    );
    for (const c of small) {
      lines.push(
        `| ${c.rateMbit} Mbit/s | ${f(c.fps)} | ${s(c.delay?.p50)} | ${s(c.delay?.p95)} | ${s(c.delay?.max)} | ${f(c.bytesPerSecond === undefined ? undefined : c.bytesPerSecond / 1000, 0)} | ${s(transmissionSeconds(c.frameKiB, c.rateMbit))} |`,
      );
    }
  }
  lines.push(
    '',
    '**Ratios** (per link rate):',
    '',
    '| link | delay p95: before ÷ after | delay p95: naive ÷ after | fps: after ÷ before | fps: H.264 ÷ MJPEG after | kB/s: after ÷ before | kB/s: H.264 ÷ MJPEG after |',
    '|---:|---:|---:|---:|---:|---:|---:|',
  );
  for (const rate of rateList) {
    const [a, b, h, n] = (['after', 'before', 'h264', 'naive'] as const).map((v) => cell(v, rate));
    lines.push(
      `| ${rate} Mbit/s | ${ratio(b?.delay?.p95, a?.delay?.p95)} | ${ratio(n?.delay?.p95, a?.delay?.p95)} | ${ratio(a?.fps, b?.fps)} | ${ratio(h?.fps, a?.fps)} | ` +
        `${ratio(a?.bytesPerSecond, b?.bytesPerSecond)} | ${ratio(h?.bytesPerSecond, a?.bytesPerSecond)} |`,
    );
  }
  if (cpu.length) {
    lines.push(
      '',
      '**CPU and RSS of our server with the H.264 stage** (viewers on loopback, reading everything as a browser\'s player does; % of one core):',
      '',
      '| H.264 viewers | server (node) CPU % | encoder (ffmpeg) CPU % | encoders | total CPU % | server RSS MiB | encoder RSS MiB | fps per viewer (min–max) | prft delay p95 (s) | viewers\' own CPU % | rest of the machine % |',
      '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    );
    for (const p of cpu) {
      if (p.error && p.serverCpuPercent === undefined) {
        lines.push(`| ${p.viewers} | error: ${firstLine(p.error).slice(0, 120)} ||||||||||`);
        continue;
      }
      const total = (p.serverCpuPercent ?? NaN) + (p.encoderCpuPercent ?? NaN);
      lines.push(
        `| ${p.viewers} | ${f(p.serverCpuPercent)} | ${f(p.encoderCpuPercent)} | ${p.encoders} | ${f(total)} | ${f(p.serverRssMiB, 0)} | ${f(p.encoderRssMiB, 0)} | ` +
          `${p.fps.length ? `${f(Math.min(...p.fps))}–${f(Math.max(...p.fps))}` : '–'} | ${s(p.delay?.p95)} | ${f(p.viewerCpuPercent, 0)} | ${f(p.otherCpuPercent, 0)} |`,
      );
    }
    const [one, ten] = [cpu.find((p) => p.viewers === 1), cpu.find((p) => p.viewers === 10)];
    if (one && ten) {
      const t1 = (one.serverCpuPercent ?? NaN) + (one.encoderCpuPercent ?? NaN);
      const t10 = (ten.serverCpuPercent ?? NaN) + (ten.encoderCpuPercent ?? NaN);
      lines.push('', `From 1 to 10 viewers: total CPU ${ratio(t10, t1)}, server (node) ${ratio(ten.serverCpuPercent, one.serverCpuPercent)}, encoder ${ratio(ten.encoderCpuPercent, one.encoderCpuPercent)}; encoders running: ${one.encoders} and ${ten.encoders}.`);
    }
  }
  const verdict = goalVerdict(cells);
  const strict = goalVerdict(cells, true);
  lines.push(
    '',
    `**Goal (ours after: MJPEG delay p95 ≤ ${GOAL.mjpegP95} s and H.264 prft delay p95 ≤ ${GOAL.h264P95} s at ${rateList.join(', ')} Mbit/s): ${verdict.pass ? 'PASS' : 'FAIL'}**${verdict.failures.length ? ` (${verdict.failures.join('; ')})` : ''}`,
    '',
    `With the H.264 first-picture age instead of the prft delay: ${strict.pass ? 'PASS' : 'FAIL'}${strict.failures.length ? ` (${strict.failures.join('; ')})` : ''}`,
    '',
  );
  return `${lines.join('\n')}\n`;
}

// ---- main ------------------------------------------------------------------------------------

const SMALL_QUALITY = 24;

/**
 * The corpus's pictures (the same ffmpeg source) at -q:v 24, about 25 KiB a frame, made once into
 * bench/.cache (corpus.ts's quality walk does not reach that far).
 */
async function smallCorpus(like: CorpusInfo): Promise<CorpusInfo> {
  const path = join(CACHE_DIR, `testsrc2-noise20-${like.width}x${like.height}-${like.frames}f-q${SMALL_QUALITY}.mjpg`);
  const exists = await fs.stat(path).then((st) => st.size > 0, () => false);
  if (!exists) {
    const temp = `${path}.tmp`;
    await promisify(execFile)(
      'ffmpeg',
      [
        '-hide_banner', '-loglevel', 'error', '-y',
        '-f', 'lavfi', '-i', `testsrc2=size=${like.width}x${like.height}:rate=30`,
        '-vf', 'noise=alls=20:allf=t',
        '-frames:v', String(like.frames), '-q:v', String(SMALL_QUALITY), '-f', 'mjpeg', temp,
      ],
      { timeout: 120_000 },
    );
    await fs.rename(temp, path);
  }
  const frames = await loadCorpus(path);
  const size = frames.reduce((sum, frame) => sum + frame.length, 0);
  return { path, frames: frames.length, width: like.width, height: like.height, quality: SMALL_QUALITY, averageBytes: size / frames.length, fileBytes: (await fs.stat(path)).size };
}

/** The first line of `text`. */
function firstLine(text: string): string {
  return text.split('\n', 1)[0] ?? '';
}

function commandOutput(command: string, args: string[]): string {
  try {
    return execFileSync(command, args, { cwd: REPO, encoding: 'utf8', timeout: 10_000 }).trim();
  } catch {
    return 'unknown';
  }
}

function cellSummary(c: CellResult): string {
  if (c.error && c.delay === undefined) return `error: ${c.error.split('\n')[0]}`;
  const parts = [
    `fps ${f(c.fps)}`,
    `delay p50 ${s(c.delay?.p50)} p95 ${s(c.delay?.p95)} max ${s(c.delay?.max)} s`,
    ...(c.age ? [`age p95 ${s(c.age.p95)} s`] : []),
    `${f((c.bytesPerSecond ?? NaN) / 1000, 0)} kB/s`,
    `server ${f(c.serverCpuPercent, 0)}%${c.encoderCpuPercent !== undefined ? ` + ffmpeg ${f(c.encoderCpuPercent, 0)}%` : ''}, ${f(c.serverRssMiB, 0)} MiB`,
    `send queue ${c.sendQueue?.join(',') ?? '–'} B`,
    `rest of machine ${f(c.otherCpuPercent, 0)}%`,
  ];
  if (c.viewerErrors.length) parts.push(`viewer: ${c.viewerErrors.join(' | ')}`);
  if (c.error) parts.push(`error: ${c.error}`);
  return parts.join(', ');
}

async function main(): Promise<void> {
  const reportIndex = process.argv.indexOf('--report');
  if (reportIndex !== -1) {
    const file = process.argv[reportIndex + 1];
    if (!file) throw new Error('--report needs a results file');
    process.stdout.write(renderReport(JSON.parse(await fs.readFile(file, 'utf8')) as LinksResults));
    return;
  }
  const began = nowMs();
  console.error(`Slow-link benchmark${quick ? ' (quick mode)' : ''}: preparing the corpus...`);
  const corpus = await ensureCorpus();
  const dir = await fs.mkdtemp(join(tmpdir(), 'webcam-bench-links-'));
  tempDir = dir;
  try {
    const user = 'bench';
    const password = randomBytes(12).toString('base64url');
    const usersFile = join(dir, 'users');
    await writeUsersFile(usersFile, new Map([[user, await hashPassword(password, 4)]]));
    const shared: Shared = { corpus, usersFile, authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` };
    const results: LinksResults = {
      meta: {
        date: new Date().toISOString(),
        commit: commandOutput('git', ['rev-parse', '--short', 'HEAD']),
        node: process.version,
        ffmpeg: firstLine(commandOutput('ffmpeg', ['-version'])).split(' Copyright', 1)[0] ?? '',
        cpu: cpuModel(),
        cores: cpus().length,
        quick,
        windowSeconds: timing.windowSeconds,
        warmupSeconds: timing.warmupSeconds,
        corpus: { frames: corpus.frames, width: corpus.width, height: corpus.height, quality: corpus.quality, averageBytes: Math.round(corpus.averageBytes) },
      },
      cells: [],
      cpu: [],
    };
    for (const rate of rates()) {
      for (const variant of variants()) {
        console.error(`${rate} Mbit/s, ${LABEL[variant]}: ${timing.warmupSeconds} + ${timing.windowSeconds} s...`);
        const c = await runCell(variant, rate, shared);
        results.cells.push(c);
        console.error(`  ${cellSummary(c)}`);
      }
    }
    if (process.env.BENCH_SMALL !== '0' && variants().includes('after')) {
      // Is the delay the link's (whole frames take frame/rate to cross it) or the server's? The same
      // pictures, about a fifth of the size.
      shared.smallCorpus = await smallCorpus(corpus);
      for (const rate of rates()) {
        console.error(`${rate} Mbit/s, ${LABEL.after}, ${(shared.smallCorpus.averageBytes / 1024).toFixed(0)} KiB frames: ${timing.warmupSeconds} + ${timing.windowSeconds} s...`);
        const c = await runCell('after', rate, shared, shared.smallCorpus);
        results.cells.push(c);
        console.error(`  ${cellSummary(c)}`);
      }
    }
    if (process.env.BENCH_CPU !== '0') {
      console.error(`H.264 stage with 1, then 10 viewers on loopback: ${timing.warmupSeconds} + ${timing.windowSeconds} s each...`);
      results.cpu = await runCpuPhases(shared);
      for (const p of results.cpu) {
        console.error(`  ${p.viewers} viewers: server ${f(p.serverCpuPercent)}% + ffmpeg ${f(p.encoderCpuPercent)}% (${p.encoders} encoders), RSS ${f(p.serverRssMiB, 0)} + ${f(p.encoderRssMiB, 0)} MiB${p.error ? `, error: ${p.error}` : ''}`);
      }
    }
    results.meta.durationSeconds = Math.round((nowMs() - began) / 1000);
    await fs.mkdir(RESULTS_DIR, { recursive: true });
    const file = join(RESULTS_DIR, `links-${results.meta.date.replace(/[:.]/g, '-')}${quick ? '-quick' : ''}.json`);
    await fs.writeFile(file, `${JSON.stringify(results, null, 2)}\n`);
    console.error(`Results: ${file}`);
    process.stdout.write(renderReport(results));
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error((error as Error).stack ?? String(error));
  killAll();
  process.exitCode = 1;
});
