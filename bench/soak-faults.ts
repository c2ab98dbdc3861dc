// Soak with capture faults (`npm run bench:soak`, issue 7): N MJPEG viewers watch one camera of the
// real standalone server (`node --import tsx src/cli.ts serve`, a 1280x720 30 fps testsrc camera,
// basic auth against a bcrypt users file) on 127.0.0.1 for a few minutes while the capture ffmpeg
// (the server's child) is SIGKILLed every 30 s. It measures, from outside the server:
//   - per kill: how many viewers got a frame of the new capture, and how long after the kill
//     (p50 / max), beside the restart delay the server logged;
//   - frames per viewer per minute;
//   - the RSS of the server's whole process tree (node + its ffmpeg), from /proc every second:
//     first vs last minute mean, max, slope;
//   - viewers whose connection dropped, or that had no frame for > 10 s outside a restart.
// The JSON goes to bench/results/soak-faults-<date>.json, a markdown section to stdout, progress
// to stderr. Everything is bounded: a hard deadline, bounded waits, and the server's process group
// (node and every ffmpeg it started) is killed on the way out, on error and on Ctrl-C too.
//
//   SOAK_SECONDS=N        length of the soak (default 300)
//   SOAK_VIEWERS=N        viewers (default 50)
//   SOAK_KILL_SECONDS=N   seconds between capture kills (default 30)
//   SOAK_SERVER_DIR=/path run src/cli.ts of another copy of the tree (to try a change to src/)
//   node --import tsx bench/soak-faults.ts --report bench/results/X.json   re-renders a saved run
import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

import { hashPassword, writeUsersFile } from '../src/users/users-file';
import { MjpegReader } from './multipart';
import { cpuModel, machineBusyMs } from './proc';
import { percentiles } from './protocol';

const REPO = join(__dirname, '..');
/** The tree whose server runs (this one unless SOAK_SERVER_DIR says otherwise). */
const SERVER_DIR = process.env.SOAK_SERVER_DIR || REPO;
const RESULTS_DIR = join(__dirname, 'results');

function envInt(name: string, fallback: number, min: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min) throw new Error(`${name} must be an integer >= ${min} (got "${raw}")`);
  return value;
}

const SECONDS = envInt('SOAK_SECONDS', 300, 10);
const VIEWERS = envInt('SOAK_VIEWERS', 50, 1);
const KILL_EVERY_S = envInt('SOAK_KILL_SECONDS', 30, 5);
const CAMERA = { name: 'Soak', id: 'soak', source: 'testsrc', width: 1280, height: 720, fps: 30 };
/** A frame of the new capture comes after at least this much silence (the restart is >= 500 ms). */
const RESUME_GAP_MS = 250;
/** No frame for longer than this, with no kill inside the gap, is a stall. */
const STALL_MS = 10_000;
/** After the soak, wait at most this long for viewers to come back from the last kill (the server's backoff tops out at 30 s). */
const TAIL_MAX_MS = 40_000;
/** The first and last minute compared for RSS (shorter when the soak is under 2 minutes). */
const RSS_WINDOW_S = Math.min(60, Math.floor(SECONDS / 2));
const SERVER_START_TIMEOUT_MS = 30_000;
const FIRST_FRAMES_TIMEOUT_MS = 30_000;
const SHUTDOWN_TIMEOUT_MS = 10_000;
/** Nothing in this run may outlast this. */
const HARD_DEADLINE_MS = (SECONDS + 180) * 1000 + TAIL_MAX_MS;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const round = (x: number, digits = 1): number => Math.round(x * 10 ** digits) / 10 ** digits;
const fmt = (x: number | undefined, digits = 1): string => (x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(digits));
const log = (message: string): void => void process.stderr.write(`${message}\n`);

// ---- /proc -----------------------------------------------------------------------------------

interface ProcInfo {
  pid: number;
  ppid: number;
  pgrp: number;
  comm: string;
  /** utime + stime of the process, ms. */
  cpuMs: number;
  /** cutime + cstime: children it has reaped, ms. */
  childCpuMs: number;
  rssMiB: number;
}

let clockTick = 0;
function tickMs(): number {
  if (!clockTick) {
    try {
      clockTick = 1000 / (Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8', timeout: 5_000 }).trim()) || 100);
    } catch {
      clockTick = 10;
    }
  }
  return clockTick;
}

function procInfo(pid: number): ProcInfo | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    // Fields from the state (field 3) on: state ppid pgrp session tty tpgid flags minflt cminflt
    // majflt cmajflt utime stime cutime cstime ... rss (field 24, in pages).
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const tick = tickMs();
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const rss = /^VmRSS:\s+(\d+) kB/m.exec(status);
    return {
      pid,
      ppid: Number(f[1]),
      pgrp: Number(f[2]),
      comm,
      cpuMs: (Number(f[11]) + Number(f[12])) * tick,
      childCpuMs: (Number(f[13]) + Number(f[14])) * tick,
      rssMiB: rss ? Number(rss[1]) / 1024 : 0,
    };
  } catch {
    return undefined; // gone meanwhile, or a kernel thread without VmRSS
  }
}

function allProcesses(): ProcInfo[] {
  const list: ProcInfo[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const info = procInfo(Number(name));
    if (info) list.push(info);
  }
  return list;
}

/** `root` and everything below it. */
function processTree(root: number): ProcInfo[] {
  const all = allProcesses();
  const byParent = new Map<number, ProcInfo[]>();
  for (const p of all) byParent.set(p.ppid, [...(byParent.get(p.ppid) ?? []), p]);
  const top = all.find((p) => p.pid === root);
  if (!top) return [];
  const tree = [top];
  // for..of visits what is pushed meanwhile: the whole tree, level by level.
  for (const p of tree) tree.push(...(byParent.get(p.pid) ?? []));
  return tree;
}

/** CPU of a tree so far: every live process, plus what the root has reaped (killed captures). */
function treeCpuMs(tree: ProcInfo[]): number {
  return tree.reduce((sum, p) => sum + p.cpuMs, 0) + (tree[0]?.childCpuMs ?? 0);
}

// ---- the server ------------------------------------------------------------------------------

interface LogEvent {
  at: number;
  text: string;
}

class ServerProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  url?: string;
  ffmpeg?: string;
  /** "Capture ended ... Retrying in X s." */
  readonly ended: Array<LogEvent & { retryS: number }> = [];
  /** "Camera is back online." */
  readonly online: LogEvent[] = [];
  /** Warnings and errors other than the two above (bounded). */
  readonly notable: string[] = [];
  private readonly tail: string[] = [];
  private notableDropped = 0;

  constructor(configFile: string) {
    // Its own process group: the ffmpegs it starts join it, so one kill(-pgid) ends them all.
    this.child = spawn(process.execPath, ['--import', 'tsx', join(SERVER_DIR, 'src', 'cli.ts'), 'serve', '--config', configFile], {
      cwd: SERVER_DIR,
      env: { ...process.env, WEBCAM_SERVER_DEBUG: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    if (!this.child.pid) throw new Error('could not start the server');
    this.pid = this.child.pid;
    for (const stream of [this.child.stdout, this.child.stderr]) {
      if (stream) createInterface({ input: stream }).on('line', (line) => this.onLine(line));
    }
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  lastLines(n = 15): string {
    return this.tail.slice(-n).join('\n');
  }

  private onLine(line: string): void {
    this.tail.push(line);
    if (this.tail.length > 200) this.tail.shift();
    const [, stamp] = /^\[(\d{4}-\d\d-\d\dT[\d:.]+Z)\]/.exec(line) ?? [];
    const at = stamp ? Date.parse(stamp) : Date.now();
    const listening = /Web server listening on (http:\/\/\S+)/.exec(line);
    if (listening) this.url = listening[1];
    const ffmpeg = /Using ffmpeg (.+) at (\S+)\.$/.exec(line);
    if (ffmpeg) this.ffmpeg = `${ffmpeg[1]} (${ffmpeg[2]})`;
    const ended = /Capture ended: .*Retrying in ([\d.]+) s\.$/.exec(line);
    if (ended) {
      this.ended.push({ at, text: line, retryS: Number(ended[1]) });
      return;
    }
    if (/Camera is back online\./.test(line)) {
      this.online.push({ at, text: line });
      return;
    }
    if (/\b(WARN|ERROR)\b|Warning|Error/.test(line)) {
      if (this.notable.length < 50) this.notable.push(line.slice(0, 300));
      else this.notableDropped++;
    }
  }

  get notableOverflow(): number {
    return this.notableDropped;
  }
}

/** Every process in the server's group, by id (the server and any ffmpeg it left). */
function groupMembers(pgid: number): ProcInfo[] {
  return allProcesses().filter((p) => p.pgrp === pgid);
}

function killGroup(pgid: number): void {
  try {
    process.kill(-pgid, 'SIGKILL');
  } catch {
    // the group is gone already
  }
}

// ---- viewers ---------------------------------------------------------------------------------

interface Drop {
  viewer: number;
  /** Seconds from the start of the soak. */
  t: number;
  reason: string;
}

class Viewer {
  /** Arrival time (Date.now()) of every whole frame. */
  readonly arrivals: number[] = [];
  bytes = 0;
  connects = 0;
  readonly drops: Array<{ at: number; reason: string }> = [];
  private socket?: Socket;
  private closing = false;
  private reconnectTimer?: NodeJS.Timeout;

  constructor(
    readonly id: number,
    private readonly port: number,
    private readonly authorization: string,
    /** Whether a dropped viewer should come back (false once the soak is over). */
    private readonly mayReconnect: () => boolean,
  ) {}

  open(): void {
    this.connects++;
    let reason = 'closed by the server';
    let failed = false;
    const socket = connect({ host: '127.0.0.1', port: this.port, noDelay: true }, () => {
      socket.write(
        `GET /cameras/${CAMERA.id}/stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1:${this.port}\r\n` +
          `Authorization: ${this.authorization}\r\nAccept: */*\r\nUser-Agent: webcam-soak\r\n\r\n`,
      );
    });
    const reader = new MjpegReader(
      (frame) => {
        this.arrivals.push(Date.now());
        this.bytes += frame.bytes;
      },
      (message) => {
        failed = true;
        reason = `bad stream: ${message}`;
        socket.destroy();
      },
    );
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      if (!failed) reader.push(chunk);
    });
    socket.on('error', (error) => {
      reason = `socket error: ${error.message}`;
    });
    socket.on('close', () => {
      if (this.closing || socket !== this.socket) return;
      this.drops.push({ at: Date.now(), reason });
      if (this.mayReconnect()) {
        this.reconnectTimer = setTimeout(() => {
          if (!this.closing && this.mayReconnect()) this.open();
        }, 1_000);
      }
    });
  }

  close(): void {
    this.closing = true;
    clearTimeout(this.reconnectTimer);
    this.socket?.destroy();
  }

  /** The first frame of a new capture after `at` and before `until`: the first one after a silence of RESUME_GAP_MS. */
  resumeAfter(at: number, until: number): number | undefined {
    const a = this.arrivals;
    let lo = 0;
    let hi = a.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const value = a[mid];
      if (value !== undefined && value <= at) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo; i < a.length; i++) {
      const arrival = a[i];
      if (arrival === undefined || arrival >= until) break;
      const previous = a[i - 1] ?? Number.NEGATIVE_INFINITY;
      if (arrival - previous >= RESUME_GAP_MS) return arrival;
    }
    return undefined;
  }

  framesBetween(from: number, to: number): number {
    let n = 0;
    for (const t of this.arrivals) if (t >= from && t < to) n++;
    return n;
  }
}

// ---- results ---------------------------------------------------------------------------------

interface KillResult {
  index: number;
  /** Seconds from the start of the soak. */
  t: number;
  /** The capture ffmpeg killed; undefined when none was running (the server was still waiting to restart it). */
  pid?: number;
  skipped?: string;
  /** The restart delay the server logged for this exit. */
  serverRetryS?: number;
  /** Kill to the server's "Camera is back online." log line, ms. */
  serverBackMs?: number;
  resumed: number;
  viewers: number;
  resumeMs?: { p50: number; max: number; min: number };
  notResumed: number[];
}

interface RssSample {
  /** Seconds from the start of the soak. */
  t: number;
  tree: number;
  node: number;
  ffmpeg: number;
  processes: number;
  load1: number;
}

interface RssSummary {
  firstMean: number;
  lastMean: number;
  max: number;
  slopePerMin: number;
}

interface SoakResult {
  meta: {
    date: string;
    node: string;
    cpu: string;
    cores: number;
    commit: string;
    /** Set when the server ran from another copy of the tree (SOAK_SERVER_DIR). */
    serverDir?: string;
    /** Files under src/ that differed from the commit when the run started. */
    srcChanges: string[];
    ffmpeg?: string;
    camera: typeof CAMERA;
    seconds: number;
    viewers: number;
    killEverySeconds: number;
    rssWindowSeconds: number;
    tailSeconds: number;
    frameBytes?: number;
  };
  kills: KillResult[];
  framesPerMinute: Array<{ minute: number; seconds: number; min: number; median: number; max: number; expected: number }>;
  framesPerViewerPerMinute: { min: number; median: number; max: number };
  rss: { tree: RssSummary; node: RssSummary; ffmpegMean: number; samples: RssSample[] };
  drops: Drop[];
  stalls: Array<{ viewer: number; from: number; to: number; seconds: number }>;
  load: { load1Mean: number; load1Max: number; loadavgAtStart: string; serverCpuPercent?: number; ownCpuPercent: number; otherCpuPercent?: number };
  server: { notable: string[]; notableOverflow: number; restartsLogged: number; backOnlineLogged: number; shutdown: { exit: string; ms: number; leftover: string[] } };
  pass: { resumes: boolean; rssFlat: boolean; noDropsOrStalls: boolean };
}

const mean = (xs: number[]): number => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);

/** Least-squares slope of `pick` over the samples with from <= t <= to, MiB per minute. */
function slopePerMin(samples: RssSample[], pick: (s: RssSample) => number, from: number, to: number): number {
  const within = samples.filter((s) => s.t >= from && s.t <= to);
  const mt = mean(within.map((s) => s.t));
  const my = mean(within.map(pick));
  let num = 0;
  let den = 0;
  for (const s of within) {
    num += (s.t - mt) * (pick(s) - my);
    den += (s.t - mt) ** 2;
  }
  return within.length > 1 && den > 0 ? round((num / den) * 60, 2) : NaN;
}

function summarize(samples: RssSample[], pick: (s: RssSample) => number, seconds: number): RssSummary {
  const inRun = samples.filter((s) => s.t >= 0 && s.t <= seconds);
  const first = inRun.filter((s) => s.t < RSS_WINDOW_S).map(pick);
  const last = inRun.filter((s) => s.t >= seconds - RSS_WINDOW_S).map(pick);
  return {
    firstMean: round(mean(first)),
    lastMean: round(mean(last)),
    max: round(Math.max(...inRun.map(pick))),
    slopePerMin: slopePerMin(inRun, pick, 0, seconds),
  };
}

function rssAllowance(firstMean: number): number {
  return Math.max(10, firstMean * 0.1);
}

function renderMarkdown(r: SoakResult): string {
  const m = r.meta;
  const out: string[] = [];
  const pf = (ok: boolean): string => (ok ? '**PASS**' : '**FAIL**');
  out.push(`### Soak with capture kills: ${m.viewers} viewers, ${m.seconds} s, the capture SIGKILLed every ${m.killEverySeconds} s`, '');
  out.push(
    `Run ${m.date}, Node ${m.node}, ${m.cpu} (${m.cores} cores), tree ${m.commit}${m.serverDir ? ` (the server from ${m.serverDir})` : ''}${m.srcChanges.length ? ` (src/ here had uncommitted changes: ${m.srcChanges.join(', ')})` : ''}; ` +
      `ffmpeg ${m.ffmpeg ?? '?'}; camera testsrc ${m.camera.width}x${m.camera.height} at ${m.camera.fps} fps` +
      `${m.frameBytes ? `, ${(m.frameBytes / 1024).toFixed(0)} KiB a frame` : ''}; ` +
      `load average 1 min: ${fmt(r.load.load1Mean, 2)} mean, ${fmt(r.load.load1Max, 2)} max (at the start: ${r.load.loadavgAtStart}); ` +
      `the server's tree used ${fmt(r.load.serverCpuPercent, 0)}% of a core, the viewers ${fmt(r.load.ownCpuPercent, 0)}%, the rest of the machine ${fmt(r.load.otherCpuPercent, 0)}%.`,
    '',
  );
  out.push('#### Targets', '');
  const killed = r.kills.filter((k) => k.pid !== undefined);
  const resumedAll = killed.filter((k) => k.resumed === k.viewers).length;
  const worst = Math.max(...killed.map((k) => k.resumeMs?.max ?? Number.POSITIVE_INFINITY));
  out.push(`- ${pf(r.pass.resumes)} every viewer resumes after every kill: ${resumedAll} of ${killed.length} kills with all ${m.viewers} viewers back (slowest ${fmt(worst / 1000, 1)} s after its kill)${r.kills.length > killed.length ? `; ${r.kills.length - killed.length} scheduled kill(s) found no capture running` : ''}.`);
  const t = r.rss.tree;
  out.push(
    `- ${pf(r.pass.rssFlat)} RSS flat (last-minute mean within 10% or 10 MiB of the first minute's, whichever is larger): whole tree ${fmt(t.firstMean)} → ${fmt(t.lastMean)} MiB ` +
      `(allowed +${fmt(rssAllowance(t.firstMean))}), max ${fmt(t.max)}, slope ${fmt(t.slopePerMin, 2)} MiB/min; node alone ${fmt(r.rss.node.firstMean)} → ${fmt(r.rss.node.lastMean)} MiB, slope ${fmt(r.rss.node.slopePerMin, 2)} MiB/min.`,
  );
  out.push(`- ${pf(r.pass.noDropsOrStalls)} no viewer dropped or stalled (no frame for > ${STALL_MS / 1000} s with no kill inside the gap): ${r.drops.length} drop(s), ${r.stalls.length} stall(s).`, '');

  out.push('#### Per kill', '');
  out.push(`Time to resume: the SIGKILL to a viewer's first frame of the new capture (the first frame after ≥ ${RESUME_GAP_MS} ms of silence). Server: the restart delay it logged, and its "back online" log line after the kill.`, '');
  out.push('| kill | at | capture pid | server retry delay | server back after | viewers resumed | resume p50 / max |', '|---|---|---|---|---|---|---|');
  for (const k of r.kills) {
    if (k.pid === undefined) {
      out.push(`| ${k.index} | ${k.t.toFixed(0)} s | – | ${k.skipped ?? 'skipped'} | | | |`);
      continue;
    }
    out.push(
      `| ${k.index} | ${k.t.toFixed(0)} s | ${k.pid} | ${k.serverRetryS === undefined ? '–' : `${k.serverRetryS.toFixed(1)} s`} | ${k.serverBackMs === undefined ? '–' : `${(k.serverBackMs / 1000).toFixed(2)} s`} | ` +
        `${k.resumed} / ${k.viewers} | ${k.resumeMs ? `${(k.resumeMs.p50 / 1000).toFixed(2)} / ${(k.resumeMs.max / 1000).toFixed(2)} s` : '–'} |`,
    );
  }
  out.push('');
  out.push('#### Frames per viewer per minute', '');
  out.push(`Over the whole soak: ${fmt(r.framesPerViewerPerMinute.min, 0)} (slowest viewer) / ${fmt(r.framesPerViewerPerMinute.median, 0)} (median) / ${fmt(r.framesPerViewerPerMinute.max, 0)} (fastest); ${m.camera.fps * 60} without kills.`, '');
  out.push('| minute | min | median | max | without kills |', '|---|---|---|---|---|');
  for (const b of r.framesPerMinute) out.push(`| ${b.minute + 1}${b.seconds < 60 ? ` (${b.seconds} s, per minute)` : ''} | ${b.min.toFixed(0)} | ${b.median.toFixed(0)} | ${b.max.toFixed(0)} | ${b.expected} |`);
  out.push('');
  out.push('#### Server RSS', '');
  out.push(
    `From /proc every second; "tree" is the server's node process plus its ffmpeg (summed VmRSS; no ffmpeg while a restart waits). ` +
      `First and last ${m.rssWindowSeconds} s of the soak; the slope is a least-squares fit over the whole soak, and over its second half (start-up garbage is collected in the first minutes).`,
    '',
  );
  const half = m.seconds / 2;
  out.push('| | first-minute mean | last-minute mean | max | slope, whole soak | slope, second half |', '|---|---|---|---|---|---|');
  const n = r.rss.node;
  for (const [name, x, pick] of [
    ['tree', t, (s: RssSample) => s.tree],
    ['node alone', n, (s: RssSample) => s.node],
  ] as const) {
    out.push(
      `| ${name} | ${fmt(x.firstMean)} MiB | ${fmt(x.lastMean)} MiB | ${fmt(x.max)} MiB | ${fmt(x.slopePerMin, 2)} MiB/min | ${fmt(slopePerMin(r.rss.samples, pick, half, m.seconds), 2)} MiB/min |`,
    );
  }
  out.push('');
  // Means over equal slices of the soak (single samples can land on a kill, with no ffmpeg).
  const slice = Math.max(5, Math.round(m.seconds / 10));
  const heads: string[] = [];
  const trees: string[] = [];
  const nodes: string[] = [];
  for (let from = 0; from < m.seconds; from += slice) {
    const to = Math.min(m.seconds, from + slice);
    const within = r.rss.samples.filter((s) => s.t >= from && s.t < to);
    if (!within.length) continue;
    heads.push(`${from}-${to} s`);
    trees.push(mean(within.map((s) => s.tree)).toFixed(0));
    nodes.push(mean(within.map((s) => s.node)).toFixed(0));
  }
  out.push(`| mean MiB | ${heads.join(' | ')} |`, `|${'---|'.repeat(heads.length + 1)}`, `| tree | ${trees.join(' | ')} |`, `| node | ${nodes.join(' | ')} |`, '');
  if (r.drops.length || r.stalls.length) {
    out.push('#### Drops and stalls', '');
    for (const d of r.drops.slice(0, 20)) out.push(`- viewer ${d.viewer} dropped at ${d.t.toFixed(1)} s: ${d.reason}`);
    for (const s of r.stalls.slice(0, 20)) out.push(`- viewer ${s.viewer}: no frame from ${s.from.toFixed(1)} s to ${s.to.toFixed(1)} s (${s.seconds.toFixed(1)} s)`);
    out.push('');
  }
  out.push('#### The server', '');
  out.push(`Log: ${r.server.restartsLogged} "Capture ended … Retrying" lines, ${r.server.backOnlineLogged} "back online". Shutdown (SIGTERM): ${r.server.shutdown.exit} after ${r.server.shutdown.ms} ms; processes left in its group: ${r.server.shutdown.leftover.length ? r.server.shutdown.leftover.join(', ') : 'none'}.`);
  if (r.server.notable.length) {
    out.push('', 'Other warnings and errors it logged:', '', '```');
    out.push(...r.server.notable.slice(0, 20));
    if (r.server.notable.length > 20 || r.server.notableOverflow) out.push(`… (${r.server.notable.length - Math.min(20, r.server.notable.length) + r.server.notableOverflow} more)`);
    out.push('```');
  }
  out.push('');
  return out.join('\n');
}

// ---- the run ---------------------------------------------------------------------------------

let server: ServerProcess | undefined;
let tempDir: string | undefined;
const viewers: Viewer[] = [];
const timers = new Set<NodeJS.Timeout>();

function cleanup(): void {
  for (const timer of timers) clearTimeout(timer);
  timers.clear();
  for (const viewer of viewers) viewer.close();
  if (server) killGroup(server.pid);
  if (tempDir) rmSync(tempDir, { recursive: true, force: true });
  tempDir = undefined;
}
process.once('exit', cleanup);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(signal, () => {
    log(`${signal}: stopping the server and the viewers.`);
    cleanup();
    process.exit(130);
  });
}

function gitInfo(): { commit: string; srcChanges: string[] } {
  try {
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO, encoding: 'utf8', timeout: 10_000 }).trim();
    const status = execFileSync('git', ['status', '--porcelain', '--', 'src'], { cwd: REPO, encoding: 'utf8', timeout: 10_000 });
    return { commit, srcChanges: status.split('\n').filter(Boolean).map((line) => line.slice(3)) };
  } catch {
    return { commit: 'unknown', srcChanges: [] };
  }
}

async function waitUntil(what: string, timeoutMs: number, ready: () => boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ready()) {
    if (server && !server.alive) throw new Error(`${what}: the server exited (${server.child.signalCode ?? `code ${server.child.exitCode}`}):\n${server.lastLines()}`);
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms${server ? `; the server's last lines:\n${server.lastLines()}` : ''}`);
    await sleep(100);
  }
}

async function stopServer(s: ServerProcess): Promise<{ exit: string; ms: number; leftover: string[] }> {
  const began = Date.now();
  if (s.alive) {
    const exited = new Promise<void>((resolve) => s.child.once('exit', () => resolve()));
    s.child.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([exited, new Promise<void>((resolve) => (timer = setTimeout(resolve, SHUTDOWN_TIMEOUT_MS)))]);
    clearTimeout(timer);
  }
  const ms = Date.now() - began;
  const exit = s.alive ? `no exit within ${SHUTDOWN_TIMEOUT_MS} ms` : (s.child.signalCode ?? `exit code ${s.child.exitCode}`);
  // Give what the server stopped (its ffmpeg, tsx's esbuild service) up to 3 s to end and be reaped.
  const deadline = Date.now() + 3_000;
  while (groupMembers(s.pid).length > 0 && Date.now() < deadline) await sleep(100);
  const leftover = groupMembers(s.pid).map((p) => `${p.comm} ${p.pid}`);
  killGroup(s.pid);
  return { exit, ms, leftover };
}

async function main(): Promise<void> {
  const reportIndex = process.argv.indexOf('--report');
  if (reportIndex !== -1) {
    const file = process.argv[reportIndex + 1];
    if (!file) throw new Error('--report needs a results file');
    process.stdout.write(renderMarkdown(JSON.parse(readFileSync(file, 'utf8')) as SoakResult));
    return;
  }
  const hardStop = setTimeout(() => {
    log(`Hard deadline (${HARD_DEADLINE_MS / 1000} s) passed: giving up.`);
    cleanup();
    process.exit(2);
  }, HARD_DEADLINE_MS);
  hardStop.unref();

  const { commit, srcChanges } = gitInfo();
  const loadavgAtStart = readFileSync('/proc/loadavg', 'utf8').trim();
  log(`Soak: ${VIEWERS} viewers, ${SECONDS} s, capture killed every ${KILL_EVERY_S} s (load average now: ${loadavgAtStart}).`);

  const dir = mkdtempSync(join(tmpdir(), 'webcam-soak-'));
  tempDir = dir;
  const user = 'soak';
  const password = randomBytes(12).toString('base64url');
  const usersFile = join(dir, 'users');
  // Cost 4: the server checks the first login with bcrypt and caches it.
  await writeUsersFile(usersFile, new Map([[user, await hashPassword(password, 4)]]));
  const authorization = `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
  const configFile = join(dir, 'webcam.json');
  writeFileSync(
    configFile,
    JSON.stringify({
      name: 'Soak',
      cameras: [{ name: CAMERA.name, source: CAMERA.source, width: CAMERA.width, height: CAMERA.height, fps: CAMERA.fps }],
      web: { host: '127.0.0.1', port: 0, usersFile },
    }),
  );

  const s = new ServerProcess(configFile);
  server = s;
  await waitUntil('the server listening', SERVER_START_TIMEOUT_MS, () => s.url !== undefined);
  const port = Number(new URL(s.url ?? '').port);
  log(`  server ${s.pid} on ${s.url}; ffmpeg ${s.ffmpeg ?? '?'}`);

  let soakOver = false;
  for (let i = 0; i < VIEWERS; i++) viewers.push(new Viewer(i, port, authorization, () => !soakOver));
  for (const viewer of viewers) viewer.open();
  await waitUntil(`all ${VIEWERS} viewers' first frames`, FIRST_FRAMES_TIMEOUT_MS, () => viewers.every((v) => v.arrivals.length > 0));

  const t0 = Date.now();
  const tOf = (at: number): number => (at - t0) / 1000;
  const ownCpu0 = process.cpuUsage();
  const serverCpu0 = treeCpuMs(processTree(s.pid));
  const machine0 = machineBusyMs();
  log(`  all viewers streaming; soak starts.`);

  // RSS of the server's tree and the load average, every second.
  const samples: RssSample[] = [];
  const sample = (): void => {
    const tree = processTree(s.pid);
    const [root] = tree;
    if (!root) return;
    const ffmpeg = tree.filter((p) => p.comm.includes('ffmpeg')).reduce((sum, p) => sum + p.rssMiB, 0);
    samples.push({
      t: round(tOf(Date.now()), 2),
      tree: round(tree.reduce((sum, p) => sum + p.rssMiB, 0)),
      node: round(root.rssMiB),
      ffmpeg: round(ffmpeg),
      processes: tree.length,
      load1: loadavg()[0] ?? NaN,
    });
  };
  sample();
  const sampler = setInterval(sample, 1000);

  // The kills, on a fixed schedule from the start of the soak.
  const kills: Array<{ index: number; at: number; pid?: number; skipped?: string }> = [];
  const killCount = Math.ceil(SECONDS / KILL_EVERY_S) - 1;
  for (let i = 1; i <= killCount; i++) {
    const timer = setTimeout(() => {
      timers.delete(timer);
      const at = Date.now();
      const captures = processTree(s.pid).filter((p) => p.ppid === s.pid && p.comm.includes('ffmpeg'));
      const [first] = captures;
      if (!first) {
        kills.push({ index: i, at, skipped: 'no capture running (the server was waiting to restart it)' });
        log(`  kill ${i} at ${tOf(at).toFixed(1)} s: no capture ffmpeg running, skipped`);
        return;
      }
      for (const capture of captures) {
        try {
          process.kill(capture.pid, 'SIGKILL');
        } catch {
          // it ended by itself meanwhile
        }
      }
      kills.push({ index: i, at, pid: first.pid });
      log(`  kill ${i} at ${tOf(at).toFixed(1)} s: SIGKILL ffmpeg ${captures.map((c) => c.pid).join(', ')}`);
    }, i * KILL_EVERY_S * 1000 - (Date.now() - t0));
    timers.add(timer);
  }
  const progress = setInterval(() => {
    const last = samples[samples.length - 1];
    const fresh = viewers.filter((v) => Date.now() - (v.arrivals[v.arrivals.length - 1] ?? 0) < 1000).length;
    log(`  ${tOf(Date.now()).toFixed(0)} s: ${fresh}/${VIEWERS} viewers got a frame in the last second; tree RSS ${fmt(last?.tree, 0)} MiB (node ${fmt(last?.node, 0)}); load ${fmt(last?.load1, 2)}`);
  }, 15_000);

  try {
    await sleep(SECONDS * 1000);
    if (!s.alive) throw new Error(`the server died during the soak:\n${s.lastLines()}`);
    const tEnd = t0 + SECONDS * 1000;
    // Give the viewers a bounded chance to come back from the last kill.
    const lastKill = [...kills].reverse().find((k) => k.pid !== undefined);
    if (lastKill) {
      const tailEnd = Date.now() + TAIL_MAX_MS;
      while (Date.now() < tailEnd && !viewers.every((v) => v.resumeAfter(lastKill.at, Number.POSITIVE_INFINITY) !== undefined)) await sleep(250);
    }
    const tailSeconds = Math.max(0, (Date.now() - tEnd) / 1000);
    soakOver = true;
    clearInterval(sampler);
    clearInterval(progress);
    const ownCpu = process.cpuUsage(ownCpu0);
    const serverCpu = treeCpuMs(processTree(s.pid)) - serverCpu0;
    const machine1 = machineBusyMs();
    const elapsed = Date.now() - t0;
    for (const viewer of viewers) viewer.close();
    const shutdown = await stopServer(s);
    log(`  server stopped: ${shutdown.exit} in ${shutdown.ms} ms; left over: ${shutdown.leftover.join(', ') || 'nothing'}`);

    // ---- analysis
    const actual = kills.filter((k) => k.pid !== undefined);
    const killResults: KillResult[] = kills.map((k) => {
      if (k.pid === undefined) return { index: k.index, t: round(tOf(k.at), 1), skipped: k.skipped, resumed: 0, viewers: VIEWERS, notResumed: [] };
      const next = actual.find((n) => n.at > k.at);
      const until = next ? next.at : Number.POSITIVE_INFINITY;
      const times: number[] = [];
      const notResumed: number[] = [];
      for (const v of viewers) {
        const back = v.resumeAfter(k.at, until);
        if (back === undefined) notResumed.push(v.id);
        else times.push(back - k.at);
      }
      const ended = s.ended.find((e) => e.at >= k.at - 50 && e.at < until);
      const online = s.online.find((e) => e.at >= k.at && e.at < until);
      const p = percentiles(times);
      return {
        index: k.index,
        t: round(tOf(k.at), 1),
        pid: k.pid,
        serverRetryS: ended?.retryS,
        serverBackMs: online ? online.at - k.at : undefined,
        resumed: times.length,
        viewers: VIEWERS,
        resumeMs: times.length ? { p50: round(p.p50, 0), max: round(p.max, 0), min: round(Math.min(...times), 0) } : undefined,
        notResumed,
      };
    });

    const framesPerMinute: SoakResult['framesPerMinute'] = [];
    for (let minute = 0; minute * 60 < SECONDS; minute++) {
      const from = t0 + minute * 60_000;
      const to = Math.min(tEnd, from + 60_000);
      const scale = 60_000 / (to - from);
      const counts = viewers.map((v) => v.framesBetween(from, to) * scale);
      const p = percentiles(counts);
      framesPerMinute.push({ minute, seconds: Math.round((to - from) / 1000), min: round(Math.min(...counts), 0), median: round(p.p50, 0), max: round(p.max, 0), expected: CAMERA.fps * 60 });
    }
    const perViewer = viewers.map((v) => (v.framesBetween(t0, tEnd) * 60) / SECONDS);
    const perViewerP = percentiles(perViewer);

    const drops: Drop[] = viewers.flatMap((v) => v.drops.filter((d) => d.at >= t0).map((d) => ({ viewer: v.id, t: round(tOf(d.at), 1), reason: d.reason })));
    const stalls: SoakResult['stalls'] = [];
    const killTimes = kills.map((k) => k.at);
    for (const v of viewers) {
      const a = v.arrivals.filter((t) => t >= t0 && t <= tEnd);
      const edges = [t0, ...a, tEnd];
      for (const [i, from] of edges.entries()) {
        const to = edges[i + 1];
        if (to === undefined || to - from <= STALL_MS) continue;
        if (killTimes.some((k) => k >= from && k <= to)) continue; // a restart: counted in the resume times
        stalls.push({ viewer: v.id, from: round(tOf(from), 1), to: round(tOf(to), 1), seconds: round((to - from) / 1000, 1) });
      }
    }

    const treeRss = summarize(samples, (x) => x.tree, SECONDS);
    const nodeRss = summarize(samples, (x) => x.node, SECONDS);
    const inRun = samples.filter((x) => x.t <= SECONDS);
    const load1 = inRun.map((x) => x.load1);
    const [firstViewer] = viewers;
    const framesSeen = firstViewer?.arrivals.length ?? 0;
    const result: SoakResult = {
      meta: {
        date: new Date(t0).toISOString(),
        node: process.version,
        cpu: cpuModel(),
        cores: cpus().length,
        commit,
        serverDir: SERVER_DIR === REPO ? undefined : SERVER_DIR,
        srcChanges,
        ffmpeg: s.ffmpeg,
        camera: CAMERA,
        seconds: SECONDS,
        viewers: VIEWERS,
        killEverySeconds: KILL_EVERY_S,
        rssWindowSeconds: RSS_WINDOW_S,
        tailSeconds: round(tailSeconds, 1),
        frameBytes: firstViewer && framesSeen ? Math.round(firstViewer.bytes / framesSeen) : undefined,
      },
      kills: killResults,
      framesPerMinute,
      framesPerViewerPerMinute: { min: round(Math.min(...perViewer), 0), median: round(perViewerP.p50, 0), max: round(perViewerP.max, 0) },
      rss: { tree: treeRss, node: nodeRss, ffmpegMean: round(inRun.reduce((sum, x) => sum + x.ffmpeg, 0) / Math.max(1, inRun.length)), samples },
      drops,
      stalls,
      load: {
        load1Mean: round(load1.reduce((a, b) => a + b, 0) / Math.max(1, load1.length), 2),
        load1Max: round(Math.max(...load1), 2),
        loadavgAtStart,
        serverCpuPercent: round((serverCpu / elapsed) * 100, 0),
        ownCpuPercent: round(((ownCpu.user + ownCpu.system) / 1000 / elapsed) * 100, 0),
        otherCpuPercent:
          machine0 !== undefined && machine1 !== undefined ? round((Math.max(0, machine1 - machine0 - serverCpu - (ownCpu.user + ownCpu.system) / 1000) / elapsed) * 100, 0) : undefined,
      },
      server: {
        notable: s.notable,
        notableOverflow: s.notableOverflow,
        restartsLogged: s.ended.filter((e) => e.at >= t0).length,
        backOnlineLogged: s.online.filter((e) => e.at >= t0).length,
        shutdown,
      },
      pass: {
        resumes: killResults.some((k) => k.pid !== undefined) && killResults.every((k) => k.pid === undefined || k.resumed === k.viewers),
        rssFlat: Number.isFinite(treeRss.lastMean) && treeRss.lastMean - treeRss.firstMean <= rssAllowance(treeRss.firstMean),
        noDropsOrStalls: drops.length === 0 && stalls.length === 0,
      },
    };

    mkdirSync(RESULTS_DIR, { recursive: true });
    const file = join(RESULTS_DIR, `soak-faults-${result.meta.date.replace(/[:.]/g, '-')}.json`);
    writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
    log(`Results: ${file}`);
    process.stdout.write(renderMarkdown(result));
    if (!result.pass.resumes || !result.pass.rssFlat) process.exitCode = 1;
  } finally {
    soakOver = true;
    clearInterval(sampler);
    clearInterval(progress);
    clearTimeout(hardStop);
  }
}

main()
  .catch((error: unknown) => {
    log((error as Error).stack ?? String(error));
    process.exitCode = 1;
  })
  .finally(cleanup);
