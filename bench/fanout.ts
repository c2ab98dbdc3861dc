// The MJPEG fan-out benchmark (`npm run bench`): our web server (src/web/server.ts with a FrameHub)
// against a naive fan-out server, side by side, with the same replayed 1280x720 corpus at 30 fps.
// For each configuration (fast viewers x slow viewers) and each server it starts the server as a
// child process, starts a load generator child, and measures from outside: server CPU and RSS from
// /proc, delivered fps, frame loss, latency, snapshot latency and time to first frame from the load
// generator. Then a soak with slow viewers watches RSS. Results go to bench/results/<date>.json and
// a markdown report on stdout (paste it into bench/README.md).
// The burst configuration (`burst50x2`, in the full run) is issue 11's target: 50 fast and 2 slow
// viewers send their requests at the same instant, with the same correct login, to a freshly
// started server whose users file has bcrypt cost 12 (flask-cam's), and each viewer's answer and
// time to first frame is recorded. For it the naive server checks the same users file with bcrypt
// on every request (see naive-server.ts).
//
//   BENCH_QUICK=1            short runs (5 s windows, 15 s soak) for smoke tests
//   BENCH_SOAK_SECONDS=N     soak length (default 120; 15 in quick mode; 0 skips the soak)
//   BENCH_WINDOW_SECONDS=N   measurement window per configuration (default 15; 5 in quick mode)
//   BENCH_CONFIGS=50x0,10x2  only these configurations (fast x slow; `burst50x2`: the burst); `none`: the soak alone
//   BENCH_SERVERS=ours       only these servers (ours, naive)
//   BENCH_RSS_CAP_MB=N       kill a server whose RSS passes N MiB (default 1536)
//   BENCH_PROFILE=1          run the servers with --cpu-prof (profiles in bench/results/profiles/)
//   node --import tsx bench/fanout.ts --report bench/results/X.json   re-renders a saved report
import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { promises as fs, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';

import { hashPassword, writeUsersFile } from '../src/users/users-file';
import { ensureCorpus, nowMs } from './corpus';
import type { CorpusInfo } from './corpus';
import { cpuModel, cpuMs, cpuTimes, machineBusyMs, rssMiB } from './proc';
import type { GoMessage, LoadConfig, LoadMessage, RunMessage, ServerMessage, ServerRequest, ServerStatsMessage } from './protocol';
import { burstSummary, renderReport } from './report';
import type { BenchResults, RssSample, RunResult, ServerName } from './report';

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
  warmupSeconds: quick ? 1 : 3,
  windowSeconds: envNumber('BENCH_WINDOW_SECONDS', quick ? 5 : 15),
  soakSeconds: envNumber('BENCH_SOAK_SECONDS', quick ? 15 : 120),
  snapshots: quick ? 30 : 100,
  snapshotGapMs: quick ? 30 : 40,
  connects: 20,
  connectGapMs: quick ? 50 : 100,
  slowIntervalMs: 1000,
};
const rssCapMiB = envNumber('BENCH_RSS_CAP_MB', 1536);
const SOAK = { fast: 10, slow: 2 };
/** flask-cam's bcrypt cost (src/users/users-file.ts BCRYPT_COST): what users' files hold. */
const BURST_BCRYPT_COST = 12;

/** Fast x slow viewers; `burst`: all requests at one instant to a fresh server, bcrypt cost 12. */
interface Configuration {
  fast: number;
  slow: number;
  burst: boolean;
}

function configurations(): Configuration[] {
  const wanted = process.env.BENCH_CONFIGS;
  if (wanted === 'none') return []; // the soak alone
  if (wanted) {
    return wanted.split(',').map((entry) => {
      const match = /^(burst)?(\d+)x(\d+)$/.exec(entry.trim());
      if (!match) throw new Error(`BENCH_CONFIGS entries look like 50x0, 10x2 (fast x slow) or burst50x2, not "${entry}"`);
      return { fast: Number(match[2]), slow: Number(match[3]), burst: match[1] !== undefined };
    });
  }
  const list: Configuration[] = [];
  for (const slow of [0, 2]) for (const fast of [1, 10, 50]) list.push({ fast, slow, burst: false });
  list.push({ fast: 50, slow: 2, burst: true });
  return list;
}

function servers(): ServerName[] {
  const wanted = (process.env.BENCH_SERVERS ?? 'ours,naive').split(',').map((s) => s.trim());
  for (const name of wanted) if (name !== 'ours' && name !== 'naive') throw new Error(`BENCH_SERVERS: unknown server "${name}"`);
  return wanted as ServerName[];
}

// ---- child processes -------------------------------------------------------------------------

const children = new Set<ChildProcess>();

function spawnChild(file: string, env: Record<string, string>, nodeArgs: string[] = []): ChildProcess {
  const child = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', join(__dirname, file)], {
    cwd: REPO,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** The run's temporary folder (the users file), removed on the way out whatever happens. */
let tempDir: string | undefined;

function killAll(): void {
  for (const child of children) child.kill('SIGKILL');
  if (tempDir) rmSync(tempDir, { recursive: true, force: true });
}
process.once('exit', killAll);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    killAll();
    process.exit(130);
  });
}

const alive = (child: ChildProcess): boolean => child.exitCode === null && child.signalCode === null;

/** The first message from `child` that `accept` takes; rejects on exit or after `timeoutMs`. */
function waitFor<T>(child: ChildProcess, accept: (message: unknown) => T | undefined, timeoutMs: number, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const cleanup = (): void => {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
    };
    const onMessage = (message: unknown): void => {
      const value = accept(message);
      if (value === undefined) return;
      cleanup();
      resolve(value);
    };
    const onExit = (code: number | null, signal: NodeJS.Signals | null): void => {
      cleanup();
      reject(new Error(`${what}: the process exited (${signal ?? `code ${code}`})`));
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`${what}: nothing within ${timeoutMs} ms`));
    }, timeoutMs);
    child.on('message', onMessage);
    child.once('exit', onExit);
    if (!alive(child)) onExit(child.exitCode, child.signalCode);
  });
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (!alive(child)) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  if (child.connected) child.disconnect();
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 3_000);
  await exited;
  clearTimeout(timer);
}

// ---- one run ---------------------------------------------------------------------------------

interface Shared {
  corpus: CorpusInfo;
  /** bcrypt cost 4: the first login of a run pays for one cheap check. */
  usersFile: string;
  /** The same user and password at bcrypt cost 12, for the burst. */
  burstUsersFile: string;
  authorization: string;
}

/** Median of the first and of the last few samples: RSS swings with GC, so single samples mislead. */
function robustGrowth(samples: RssSample[]): number | undefined {
  if (samples.length < 2) return undefined;
  const k = Math.max(1, Math.min(10, Math.floor(samples.length / 3)));
  const med = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.ceil(xs.length / 2) - 1] ?? NaN;
  return med(samples.slice(-k).map((s) => s.mib)) - med(samples.slice(0, k).map((s) => s.mib));
}

async function runOne(server: ServerName, { fast, slow, burst }: Configuration, soak: boolean, shared: Shared): Promise<RunResult> {
  const result: RunResult = { server, fast, slow, soak, rss: [], ...(burst ? { burst } : {}) };
  const windowSeconds = soak ? timing.soakSeconds : timing.windowSeconds;
  // One folder per run: the tsx loader thread writes a profile of its own beside the main thread's.
  const profileDir = join(RESULTS_DIR, 'profiles', `${server}-${burst ? 'burst' : ''}${fast}x${slow}${soak ? '-soak' : ''}-${Date.now()}`);
  const profile = process.env.BENCH_PROFILE === '1' ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : [];
  const serverChild = spawnChild(
    server === 'ours' ? 'our-server.ts' : 'naive-server.ts',
    {
      BENCH_CORPUS: shared.corpus.path,
      BENCH_USERS_FILE: burst ? shared.burstUsersFile : shared.usersFile,
      BENCH_AUTHORIZATION: shared.authorization,
      // The burst is about the login: the naive server checks passwords with bcrypt too.
      BENCH_NAIVE_AUTH: burst ? 'bcrypt' : 'string',
    },
    profile,
  );
  const pid = serverChild.pid ?? 0;
  let load: ChildProcess | undefined;
  let sampler: NodeJS.Timeout | undefined;
  try {
    const port = await waitFor(serverChild, (m) => ((m as ServerMessage).type === 'ready' ? (m as { port: number }).port : undefined), 30_000, `${server} server start`);

    // RSS (and CPU, in case the process dies) every second, from outside the process.
    let windowStart: number | undefined;
    let lastCpu = cpuMs(pid);
    const samples: Array<{ at: number; mib: number }> = [];
    sampler = setInterval(() => {
      const mib = rssMiB(pid);
      const cpu = cpuMs(pid);
      if (cpu !== undefined) lastCpu = cpu;
      if (mib === undefined) return;
      const at = nowMs();
      samples.push({ at, mib });
      if (mib > rssCapMiB && !result.exceeded) {
        result.exceeded = { t: windowStart === undefined ? 0 : (at - windowStart) / 1000, mib };
        console.error(`  ${server}: RSS ${mib.toFixed(0)} MiB passed the ${rssCapMiB} MiB cap: killing it.`);
        serverChild.kill('SIGKILL');
      }
    }, 1000);

    const config: LoadConfig = {
      port,
      streamPath: '/stream.mjpg',
      snapshotPath: '/snapshot.jpg',
      authorization: shared.authorization,
      fast,
      slow,
      slowIntervalMs: timing.slowIntervalMs,
      warmupSeconds: timing.warmupSeconds,
      windowSeconds,
      // The burst measures its own first frames; the probes are the other configurations' business.
      snapshots: soak || burst ? 0 : timing.snapshots,
      snapshotGapMs: timing.snapshotGapMs,
      connects: soak || burst ? 0 : timing.connects,
      connectGapMs: timing.connectGapMs,
      burst,
    };
    load = spawnChild('load.ts', {});
    const loadPid = load.pid ?? 0;
    const marks = new Map<string, { at: number; serverCpu?: number; serverSys?: number; loadCpu?: number; machine?: number }>();
    const mark = (name: string): void => {
      const times = cpuTimes(pid);
      marks.set(name, { at: nowMs(), serverCpu: times ? times.userMs + times.sysMs : lastCpu, serverSys: times?.sysMs, loadCpu: cpuMs(loadPid), machine: machineBusyMs() });
    };
    const serverStats = (what: string): Promise<ServerStatsMessage> => {
      const reply = waitFor(serverChild, (r) => ((r as ServerMessage).type === 'stats' ? (r as ServerStatsMessage) : undefined), 5_000, what);
      reply.catch(() => undefined); // awaited where used; a server killed by the RSS cap has none
      serverChild.send({ type: 'stats' } satisfies ServerRequest);
      return reply;
    };
    let windowStats: Promise<ServerStatsMessage> | undefined;
    let burstStats: Promise<ServerStatsMessage> | undefined;
    load.on('message', (message: unknown) => {
      const m = message as LoadMessage;
      if (m.type !== 'mark') return;
      if (m.name === 'burst-ready') {
        // Every viewer's connection is open: reset the server's counters, and once the server has
        // answered (so the reset is done), take the CPU mark and let the requests go.
        const sent = load;
        serverChild.send({ type: 'reset' } satisfies ServerRequest);
        void serverStats('server reset before the burst').then(
          () => {
            mark('burst-start');
            sent?.send({ type: 'go' } satisfies GoMessage);
          },
          () => undefined, // the load generator times out waiting and reports it
        );
        return;
      }
      mark(m.name);
      if (!alive(serverChild)) return;
      if (m.name === 'connected' && burst) {
        const mib = rssMiB(pid);
        if (mib !== undefined) samples.push({ at: nowMs(), mib });
        burstStats = serverStats('server stats after the burst');
      } else if (m.name === 'window-start') {
        windowStart = marks.get('window-start')?.at;
        serverChild.send({ type: 'reset' } satisfies ServerRequest);
      } else if (m.name === 'window-end') {
        windowStats = serverStats('server stats');
      }
    });
    const run: RunMessage = { type: 'run', config };
    load.send(run);
    const budget =
      (timing.warmupSeconds + windowSeconds + 60 + (burst ? 90 : 0)) * 1000 +
      config.snapshots * (timing.snapshotGapMs + 100) +
      config.connects * (timing.connectGapMs + 200);
    const done = await waitFor(
      load,
      (message) => {
        const m = message as LoadMessage;
        return m.type === 'done' || m.type === 'error' ? m : undefined;
      },
      budget,
      'load generator',
    );
    if (done.type === 'error') throw new Error(`load generator: ${done.message}`);
    result.load = done.stats;

    const start = marks.get('window-start');
    const end = marks.get('window-end');
    const burstStart = marks.get('burst-start');
    const burstEnd = marks.get('connected');
    if (burst && burstStart && burstEnd) {
      if (burstStart.serverCpu !== undefined && burstEnd.serverCpu !== undefined) result.burstCpuMs = burstEnd.serverCpu - burstStart.serverCpu;
      result.burstWallMs = burstEnd.at - burstStart.at;
      const during = samples.filter((s) => s.at >= burstStart.at && s.at <= (start?.at ?? burstEnd.at));
      if (during.length) result.rssBurstMax = Math.max(...during.map((s) => s.mib));
    }
    if (start?.serverCpu !== undefined && end?.serverCpu !== undefined) {
      result.serverCpuMs = end.serverCpu - start.serverCpu;
      result.cpuPerFrameMs = done.stats.framesDelivered > 0 ? result.serverCpuMs / done.stats.framesDelivered : undefined;
      if (start.serverSys !== undefined && end.serverSys !== undefined) result.serverSysMs = end.serverSys - start.serverSys;
      if (start.machine !== undefined && end.machine !== undefined && start.loadCpu !== undefined && end.loadCpu !== undefined) {
        // Everything else the machine did meanwhile: other processes, and kernel work (softirq)
        // not charged to ours. It shows when the shared machine was busy with something else.
        const other = end.machine - start.machine - result.serverCpuMs - (end.loadCpu - start.loadCpu);
        result.otherCpuPercent = (Math.max(0, other) / (end.at - start.at)) * 100;
      }
    }
    if (start) {
      result.rss = samples.map((s) => ({ t: Math.round((s.at - start.at) / 100) / 10, mib: Math.round(s.mib * 10) / 10 }));
      const inWindow = samples.filter((s) => s.at >= start.at && (!end || s.at <= end.at + 500));
      const [first] = inWindow;
      const last = inWindow.at(-1);
      if (first && last) {
        result.rssStart = first.mib;
        result.rssEnd = last.mib;
        result.rssMax = Math.max(...inWindow.map((s) => s.mib));
        result.rssGrowth = robustGrowth(inWindow.map((s) => ({ t: 0, mib: s.mib })));
      }
    }
    if (burstStats) {
      try {
        const stats = await burstStats;
        result.burstReplay = stats.replay;
        result.burstHealth = { loopDelay: stats.loopDelay, gc: stats.gc };
      } catch (error) {
        if (!result.exceeded) result.error = (error as Error).message;
      }
    }
    if (windowStats) {
      try {
        const stats = await windowStats;
        result.replay = stats.replay;
        result.memory = stats.memory;
        result.health = { loopDelay: stats.loopDelay, gc: stats.gc };
      } catch (error) {
        if (!result.exceeded) result.error = (error as Error).message;
      }
    }
  } catch (error) {
    result.error = (error as Error).message;
  } finally {
    clearInterval(sampler);
    if (load) await stopChild(load);
    await stopChild(serverChild);
  }
  return result;
}

function summary(run: RunResult): string {
  const load = run.load;
  if (!load) return `error: ${run.error ?? 'no data'}`;
  const fps = [...load.fastFps].sort((a, b) => a - b);
  const parts = [
    `fps min ${fps[0]?.toFixed(1) ?? '–'} median ${fps[Math.ceil(fps.length / 2) - 1]?.toFixed(1) ?? '–'}`,
    `lost ${load.fastLost}`,
    `latency p50 ${load.latency.p50.toFixed(1)} p99 ${load.latency.p99.toFixed(1)} ms`,
    `cpu/frame ${run.cpuPerFrameMs?.toFixed(3) ?? '–'} ms`,
    `rss ${run.rssStart?.toFixed(0) ?? '–'}→${run.rssEnd?.toFixed(0) ?? '–'} MiB`,
  ];
  if (load.snapshot) parts.push(`snapshot p50 ${load.snapshot.p50.toFixed(1)} ms`);
  if (load.firstFrame) parts.push(`first frame p50 ${load.firstFrame.p50.toFixed(1)} ms`);
  if (load.burst) {
    const b = burstSummary(load.burst);
    parts.push(`burst: ${b.ok}/${b.total} answered 200 (${b.refusals || 'no refusals'}), first frame p50 ${b.firstFrame.p50.toFixed(0)} max ${b.firstFrame.max.toFixed(0)} ms`);
  }
  if (run.exceeded) parts.push(`EXCEEDED ${run.exceeded.mib.toFixed(0)} MiB at ${run.exceeded.t.toFixed(0)} s`);
  if (run.error) parts.push(`error: ${run.error}`);
  return parts.join(', ');
}

// ---- main ------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const reportIndex = process.argv.indexOf('--report');
  if (reportIndex !== -1) {
    const file = process.argv[reportIndex + 1];
    if (!file) throw new Error('--report needs a results file');
    process.stdout.write(renderReport(JSON.parse(await fs.readFile(file, 'utf8')) as BenchResults));
    return;
  }

  const began = nowMs();
  console.error(`MJPEG fan-out benchmark${quick ? ' (quick mode)' : ''}: preparing the corpus...`);
  const corpus = await ensureCorpus();
  console.error(`  corpus: ${corpus.frames} frames, q=${corpus.quality}, ${(corpus.averageBytes / 1024).toFixed(0)} KiB a frame`);

  const dir = await fs.mkdtemp(join(tmpdir(), 'webcam-bench-'));
  tempDir = dir;
  try {
    const user = 'bench';
    const password = randomBytes(12).toString('base64url');
    const usersFile = join(dir, 'users');
    // Cost 4: the first login of a run pays for one bcrypt; the server caches verified logins.
    await writeUsersFile(usersFile, new Map([[user, await hashPassword(password, 4)]]));
    // The burst logs in against what users have: flask-cam's cost 12.
    const burstUsersFile = join(dir, 'users-cost12');
    await writeUsersFile(burstUsersFile, new Map([[user, await hashPassword(password, BURST_BCRYPT_COST)]]));
    const shared: Shared = {
      corpus,
      usersFile,
      burstUsersFile,
      authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`,
    };

    const results: BenchResults = {
      meta: {
        date: new Date().toISOString(),
        node: process.version,
        cpu: cpuModel(),
        cores: cpus().length,
        quick,
        corpus: { frames: corpus.frames, width: corpus.width, height: corpus.height, quality: corpus.quality, averageBytes: Math.round(corpus.averageBytes) },
        windowSeconds: timing.windowSeconds,
        soakSeconds: timing.soakSeconds,
        rssCapMiB,
      },
      runs: [],
    };
    const names = servers();
    for (const configuration of configurations()) {
      for (const server of names) {
        const { fast, slow, burst } = configuration;
        console.error(`${burst ? 'burst: ' : ''}${fast} fast + ${slow} slow, ${server}: ${timing.windowSeconds} s...`);
        const run = await runOne(server, configuration, false, shared);
        results.runs.push(run);
        console.error(`  ${summary(run)}`);
      }
    }
    if (timing.soakSeconds > 0) {
      for (const server of names) {
        console.error(`soak ${SOAK.fast} fast + ${SOAK.slow} slow, ${server}: ${timing.soakSeconds} s...`);
        const run = await runOne(server, { ...SOAK, burst: false }, true, shared);
        results.runs.push(run);
        console.error(`  ${summary(run)}, rss growth ${run.rssGrowth?.toFixed(1) ?? '–'} MiB`);
      }
    }
    results.meta.durationSeconds = Math.round((nowMs() - began) / 1000);

    await fs.mkdir(RESULTS_DIR, { recursive: true });
    const file = join(RESULTS_DIR, `fanout-${results.meta.date.replace(/[:.]/g, '-')}${quick ? '-quick' : ''}.json`);
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
