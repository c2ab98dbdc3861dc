// The HomeKit benchmark (`npm run bench:homekit`): our plugin against the npm package
// homebridge-camera-ffmpeg, each in its own Homebridge 1.11 child process on 127.0.0.1 with an
// equivalent 1280x720 30 fps ffmpeg test source, one after the other in the same run. hap-controller
// plays the Home app: it pairs with the PIN, times snapshots through HAP (idle, during a live stream,
// fresh and cached), times stream starts from the START write to the first SRTP packet and to the
// first decodable frame, and /proc gives the CPU and RSS of each Homebridge process tree.
// Results go to bench/results/homekit-<date>.json and a markdown report on stdout (for
// bench/README.md). homebridge-camera-ffmpeg is installed into bench/.cache/ on first use.
//
//   BENCH_QUICK=1                small samples (~2 min) for smoke tests
//   BENCH_SIDES=camera-ffmpeg,ours  which sides, in this order (default ours,camera-ffmpeg)
//   BENCH_SNAPSHOTS=N            fresh snapshots per series (default 12; quick 4)
//   BENCH_STARTS=N               timed stream starts per side (default 10; quick 3)
//   BENCH_CPU_SECONDS=N          the idle and streaming CPU/memory windows (default 10; quick 5)
//   BENCH_COLD=N                 ours with a stopped capture: snapshots and starts (default 3; quick 1; 0 skips)
//   BENCH_SOURCE=mjpeg-http      both read a network camera (homekit-camera.ts: MJPEG over HTTP)
//                                instead of ffmpeg's test pattern (default testsrc)
//   BENCH_FPS=N                  the source's (and the stream's) frame rate (default 30)
//   BENCH_WARM=1                 ours with homekit.warmEncoder on (an idle encoder per camera; default off)
//   BENCH_WEB=1                  ours with its web server on (on a unix socket, nobody logged in), as a
//                                default install runs; off by default (camera-ffmpeg has none)
//   BENCH_OURS_DIR=/path         our plugin from a built copy of the tree (to try a change to src/)
//   BENCH_NODE=/path/to/node     the Node for Homebridge (default: the first `node` on PATH outside node_modules)
//   BENCH_HOMEBRIDGE_DEBUG=1     run Homebridge with -D; BENCH_KEEP_LOGS=1 saves its logs in bench/results/
//   node --import tsx bench/homekit.ts --report bench/results/homekit-X.json   re-renders a saved report
import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';

import { ensureCorpus, nowMs } from './corpus';
import type { StreamRequest, StreamStart } from './homekit-hap';
import { Camera, cpuByRole, ffmpegPids, freeTcpPort, Homebridge, homebridgeNode, LiveStream, rssByRole, sleep, treeCpuMs, treeMembers, treeRssMiB, waitUntil } from './homekit-hap';
import { renderReport } from './homekit-report';
import type { CpuWindow, HomeKitBenchResults, SideName, SideResult, SnapshotSeries, StartSeries } from './homekit-report';
import { cpuModel, machineBusyMs } from './proc';

const REPO = join(__dirname, '..');
const RESULTS_DIR = join(__dirname, 'results');
const CACHE = join(__dirname, '.cache');
const THEIR_PACKAGE = 'homebridge-camera-ffmpeg';
const THEIR_DIR = join(CACHE, 'node_modules', THEIR_PACKAGE);
const HOMEBRIDGE_BIN = join(REPO, 'node_modules', 'homebridge', 'bin', 'homebridge');
const HOMEBRIDGE_NODE = homebridgeNode();
const FFMPEG = process.env.BENCH_FFMPEG ?? '/usr/bin/ffmpeg';
const PIN = '031-45-154';

function envNumber(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0) throw new Error(`${name} must be a whole number >= 0 (got "${raw}")`);
  return value;
}

const quick = process.env.BENCH_QUICK === '1';
const plan = {
  freshSnapshots: envNumber('BENCH_SNAPSHOTS', quick ? 4 : 12),
  /** Longer than either plugin keeps a snapshot (ours 1 s, camera-ffmpeg 3 s after the fetch ended). */
  freshGapMs: 3_300,
  cachedSnapshots: quick ? 10 : 30,
  cachedGapMs: 100,
  starts: envNumber('BENCH_STARTS', quick ? 3 : 10),
  cold: envNumber('BENCH_COLD', quick ? 1 : 3),
  cpuWindowSeconds: envNumber('BENCH_CPU_SECONDS', quick ? 5 : 10),
};
const SNAPSHOT = { width: 640, height: 360 };
const SOURCE = { width: 1280, height: 720, fps: envNumber('BENCH_FPS', 30) };
/** What an iPhone's Home app typically asks for on the local network. */
const STREAM: StreamRequest = { width: 1280, height: 720, fps: SOURCE.fps, profile: 2, level: 2, bitrate: 802, mtu: 1378, audioCodec: 3 };

/** Probes wait a random extra up to one frame period, so they do not lock to the frame clock. */
const jittered = (ms: number): number => ms + Math.random() * (1000 / SOURCE.fps);
const log = (message: string): void => void process.stderr.write(`[bench:homekit] ${message}\n`);

// ---- cleanup: every Homebridge (and the ffmpegs in its process group) and temp folder --------

const running = new Set<Homebridge>();
const streams = new Set<LiveStream>();
const tempDirs = new Set<string>();

function cleanupSync(): void {
  cameraChild?.kill('SIGKILL');
  for (const s of streams) s.close();
  for (const hb of running) hb.killGroup();
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
}
process.once('exit', cleanupSync);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    log(`${signal}: stopping`);
    cleanupSync();
    process.exit(130);
  });
}

// ---- the camera: ffmpeg's test pattern, or a network camera stand-in --------------------------

interface Source {
  /** For the report. */
  label: string;
  /** Our camera's `source`. */
  ours: string;
  /** camera-ffmpeg's `videoConfig.source` (ffmpeg input options) and `stillImageSource`. */
  theirs: string;
  theirsStill?: string;
}

const SOURCE_KIND = process.env.BENCH_SOURCE ?? 'testsrc';
/** Ours with homekit.warmEncoder on (the opt-in fast start: one idle encoder per camera). */
const WARM = process.env.BENCH_WARM === '1';
const WEB = process.env.BENCH_WEB === '1';
let cameraChild: ChildProcess | undefined;

async function startSource(): Promise<Source> {
  const { width, height, fps } = SOURCE;
  if (SOURCE_KIND === 'testsrc') {
    return {
      label: `ffmpeg's testsrc ${width}x${height} at ${fps} fps`,
      ours: 'testsrc',
      // The same test pattern our capture reads, at the same size and rate; -re so it runs in
      // real time like a camera.
      theirs: `-re -f lavfi -i testsrc=size=${width}x${height}:rate=${fps}`,
    };
  }
  if (SOURCE_KIND !== 'mjpeg-http') throw new Error(`BENCH_SOURCE: unknown source "${SOURCE_KIND}" (testsrc, mjpeg-http)`);
  const corpus = await ensureCorpus({ width, height, ffmpeg: FFMPEG });
  const child = spawn(process.execPath, ['--import', 'tsx', join(__dirname, 'homekit-camera.ts')], {
    cwd: REPO,
    env: { ...process.env, BENCH_CAMERA_CORPUS: corpus.path, BENCH_CAMERA_FPS: String(fps) },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  cameraChild = child;
  const port = await new Promise<number>((resolve, reject) => {
    child.once('message', (message) => resolve((message as { port: number }).port));
    child.once('exit', (code) => reject(new Error(`the camera stand-in exited (${code})`)));
  });
  const url = `http://127.0.0.1:${port}`;
  return {
    label: `a network camera: MJPEG over HTTP (bench/homekit-camera.ts), ${width}x${height} at ${fps} fps, ${Math.round(corpus.averageBytes / 1024)} KiB a frame`,
    ours: `${url}/stream.mjpg`,
    theirs: `-i ${url}/stream.mjpg`,
    // Its README: a camera with a still-image URL should have it here.
    theirsStill: `-i ${url}/snapshot.jpg`,
  };
}

// ---- the two sides ---------------------------------------------------------------------------

interface Side {
  name: SideName;
  plugin: string;
  pluginPath: string;
  platform: Record<string, unknown>;
  /** The camera every figure uses, and (ours) one whose capture is allowed to stop. */
  camera: string;
  coldCamera?: string;
  /** ffmpeg processes the tree runs with nothing streaming (ours: the capture of the camera with motion on, and each camera's warm encoder). */
  idleFfmpegs: number;
  /** ffmpeg processes one running capture adds (ours: 1 for the test pattern, 0 for an MJPEG URL of the camera's size, read in Node). */
  captureFfmpegs: number;
}

function version(dir: string): string {
  return (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version: string }).version;
}

/** Our plugin's folder: this repository, or BENCH_OURS_DIR (a built copy with changes to try). */
const OURS_DIR = process.env.BENCH_OURS_DIR || REPO;

/** The newest modification time of the files under `dir`, ms. */
function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) newest = Math.max(newest, statSync(join(entry.parentPath, entry.name)).mtimeMs);
  }
  return newest;
}

function ourSide(source: Source): Side {
  const dist = join(OURS_DIR, 'dist', 'index.js');
  if (!existsSync(dist)) throw new Error(`run \`npm run build\` first in ${OURS_DIR} (Homebridge loads the plugin from dist/)`);
  if (newestMtime(join(OURS_DIR, 'src')) > statSync(dist).mtimeMs) throw new Error(`${OURS_DIR}/src is newer than its dist/: run \`npm run build\` first`);
  // warmEncoder written out either way, so an older build (where it defaulted to on) runs the same.
  const camera = { source: source.ours, ...SOURCE, homekit: { unbridge: true, maxStreams: 2, warmEncoder: WARM } };
  // The test pattern is encoded by a capture ffmpeg; an MJPEG URL of the camera's size is read in Node.
  const captureFfmpegs = SOURCE_KIND === 'testsrc' ? 1 : 0;
  return {
    name: 'ours',
    plugin: `homebridge-webcam-server@${version(OURS_DIR)}${OURS_DIR === REPO ? '' : ` from ${OURS_DIR}`}${WARM ? ' with homekit.warmEncoder on' : ''}${WEB ? ' and its web server' : ''}`,
    pluginPath: OURS_DIR,
    platform: {
      platform: 'WebcamServer',
      name: 'Webcam Server',
      videoProcessor: FFMPEG,
      cameras: [
        // Defaults otherwise: motion detection on (it keeps the capture running), libx264.
        { name: 'Bench', ...camera },
        ...(plan.cold ? [{ name: 'Cold', ...camera, motion: { enabled: false } }] : []),
      ],
      // Not part of the comparison (camera-ffmpeg has no web server) unless BENCH_WEB; nothing off loopback.
      web: WEB ? { socket: join(tmpdir(), `bench-homekit-web-${process.pid}.sock`) } : { enabled: false },
    },
    camera: 'Bench',
    coldCamera: plan.cold ? 'Cold' : undefined,
    // The capture motion detection holds, and a warm encoder per camera (homekit.warmEncoder).
    idleFfmpegs: captureFfmpegs + (WARM ? (plan.cold ? 2 : 1) : 0),
    captureFfmpegs,
  };
}

function theirSide(source: Source): Side {
  if (!existsSync(join(THEIR_DIR, 'package.json'))) {
    log(`installing ${THEIR_PACKAGE} into bench/.cache/ (its ffmpeg-for-homebridge download is not run; ${FFMPEG} is used)`);
    mkdirSync(CACHE, { recursive: true });
    // A project of its own, installed from inside it: npm then reads no .npmrc of this repository
    // (whose allow-scripts npm 11 refuses in a nested install), and nothing here touches ours.
    const manifest = join(CACHE, 'package.json');
    if (!existsSync(manifest)) writeFileSync(manifest, `${JSON.stringify({ name: 'bench-peers', private: true }, null, 2)}\n`);
    // --legacy-peer-deps: Homebridge is their peer; the repo's own Homebridge runs it.
    execFileSync('npm', ['install', '--no-audit', '--no-fund', '--legacy-peer-deps', THEIR_PACKAGE], { cwd: CACHE, stdio: ['ignore', 2, 2] });
  }
  return {
    name: 'camera-ffmpeg',
    plugin: `${THEIR_PACKAGE}@${version(THEIR_DIR)}`,
    pluginPath: THEIR_DIR,
    platform: {
      platform: 'Camera-ffmpeg',
      name: 'Camera FFmpeg',
      videoProcessor: FFMPEG,
      cameras: [
        {
          name: 'Bench',
          // Unbridged, as its README recommends for cameras (ours is unbridged too).
          unbridge: true,
          videoConfig: {
            // Defaults otherwise: libx264 with "-preset ultrafast -tune zerolatency" (as ours),
            // any size HomeKit asks for, no audio.
            source: source.theirs,
            ...(source.theirsStill ? { stillImageSource: source.theirsStill } : {}),
            maxStreams: 2,
            audio: false,
          },
        },
      ],
    },
    camera: 'Bench',
    idleFfmpegs: 0,
    captureFfmpegs: 0,
  };
}

function sides(source: Source): Side[] {
  const wanted = (process.env.BENCH_SIDES ?? 'ours,camera-ffmpeg').split(',').map((s) => s.trim());
  return wanted.map((name) => {
    if (name === 'ours') return ourSide(source);
    if (name === 'camera-ffmpeg' || name === 'theirs') return theirSide(source);
    throw new Error(`BENCH_SIDES: unknown side "${name}" (ours, camera-ffmpeg)`);
  });
}

// ---- measuring -------------------------------------------------------------------------------

/**
 * CPU of the Homebridge tree, and of the rest of the machine: everything but this benchmark's own
 * process tree (which holds Homebridge, its ffmpegs, the receivers and the camera stand-in).
 */
class Meter {
  private readonly t0 = nowMs();
  private readonly machine0 = machineBusyMs() ?? 0;
  private readonly hb0: number;
  private readonly own0 = treeCpuMs(process.pid);

  constructor(private readonly hbPid?: number) {
    this.hb0 = hbPid ? treeCpuMs(hbPid) : 0;
  }

  stop(): { seconds: number; hbPercent: number; otherPercent: number } {
    const elapsed = nowMs() - this.t0;
    const hb = this.hbPid ? treeCpuMs(this.hbPid) - this.hb0 : 0;
    const own = treeCpuMs(process.pid) - this.own0;
    const machine = (machineBusyMs() ?? 0) - this.machine0;
    return { seconds: elapsed / 1000, hbPercent: (100 * hb) / elapsed, otherPercent: Math.max(0, (100 * (machine - own)) / elapsed) };
  }
}

/** Other CPU (100% = one core) above which a measurement waits for the machine to calm down. */
const QUIET_PERCENT = 15;
/** The most a whole run waits for quiet, ms (then it measures whatever happens). */
let quietBudgetMs = 240_000;

/**
 * Waits until the rest of the machine has used less than QUIET_PERCENT of a core for a whole
 * second (another engineer's tests share these two cores), at most 30 s a call and 4 min a run.
 * Answers false when it gave up. Measurements still record what the rest of the machine did.
 */
async function quiet(what: string): Promise<boolean> {
  const started = Date.now();
  let waited = false;
  for (;;) {
    const meter = new Meter();
    await sleep(1_000);
    const { otherPercent } = meter.stop();
    if (otherPercent < QUIET_PERCENT) break;
    const spent = Date.now() - started;
    if (spent > 30_000 || spent > quietBudgetMs) {
      log(`  the machine stayed busy (${otherPercent.toFixed(0)}% of a core elsewhere); measuring ${what} anyway`);
      quietBudgetMs -= spent;
      return false;
    }
    if (!waited) log(`  waiting for the machine to calm down before ${what} (${otherPercent.toFixed(0)}% of a core elsewhere)`);
    waited = true;
  }
  quietBudgetMs -= Math.max(0, Date.now() - started - 1_000);
  return true;
}

async function snapshotSeries(hb: Homebridge, camera: Camera, when: string, mode: 'fresh' | 'cached', count: number, gapMs: number): Promise<SnapshotSeries> {
  const series: SnapshotSeries = { when, mode, gapMs, ms: [], bytes: 0, errors: [] };
  await quiet(`${when} ${mode} snapshots`);
  const meter = new Meter(hb.pid);
  for (let i = 0; i < count; i++) {
    // Fresh snapshots are far apart: each waits for a quiet second at the end of its gap.
    if (i > 0 && gapMs > 2_000) {
      await sleep(jittered(gapMs - 1_000));
      if (!(await quiet(`a ${when} ${mode} snapshot`))) series.busySamples = (series.busySamples ?? 0) + 1;
    } else if (i > 0) {
      await sleep(jittered(gapMs));
    }
    try {
      const shot = await camera.snapshot(SNAPSHOT.width, SNAPSHOT.height);
      if (shot.size !== `${SNAPSHOT.width}x${SNAPSHOT.height}`) throw new Error(`asked for ${SNAPSHOT.width}x${SNAPSHOT.height}, got ${shot.size ?? `no JPEG (${shot.bytes} bytes)`}`);
      series.ms.push(shot.ms);
      series.bytes = shot.bytes;
    } catch (error) {
      series.errors.push((error as Error).message);
    }
  }
  series.otherCpuPercent = meter.stop().otherPercent;
  log(`  ${when} ${mode} snapshots: ${series.ms.map((ms) => ms.toFixed(0)).join(' ')}${series.errors.length ? ` (${series.errors.length} errors)` : ''}`);
  return series;
}

/** Waits until the tree runs only its idle ffmpegs (an ended stream's encoder gone, a stopped capture). */
async function settle(hb: Homebridge, ffmpegs: number, timeoutMs: number): Promise<void> {
  await waitUntil(`${hb.label} to be back to ${ffmpegs} ffmpeg process(es)`, () => ffmpegPids(hb.pid).length <= ffmpegs, timeoutMs, 100);
}

async function oneStart(hb: Homebridge, camera: Camera, dir: string, withReceiver: boolean, idleFfmpegs: number): Promise<StreamStart> {
  const stream = new LiveStream(camera, camera.firstRtp, STREAM, dir, withReceiver);
  streams.add(stream);
  try {
    await stream.start();
    return await stream.started();
  } finally {
    await stream.end().catch(() => {});
    stream.close();
    streams.delete(stream);
    await settle(hb, idleFfmpegs, 5_000);
  }
}

async function startSeries(hb: Homebridge, camera: Camera, dir: string, when: string, count: number, idleFfmpegs: number): Promise<StartSeries> {
  const series: StartSeries = { when, starts: [], errors: [] };
  const meter = new Meter(hb.pid);
  for (let i = 0; i < count; i++) {
    // Each start waits for a quiet second (and leaves the previous stream's end 1 s behind).
    await sleep(jittered(100));
    if (!(await quiet(`${when} stream start ${i + 1}`))) series.busySamples = (series.busySamples ?? 0) + 1;
    try {
      series.starts.push(await oneStart(hb, camera, dir, false, idleFfmpegs));
    } catch (error) {
      series.errors.push((error as Error).message);
    }
  }
  series.otherCpuPercent = meter.stop().otherPercent;
  const show = (s: StreamStart): string => `${s.firstPacketMs?.toFixed(0)}/${s.firstFrameMs?.toFixed(0)}`;
  log(`  ${when} starts (first packet/first frame ms): ${series.starts.map(show).join(' ')}${series.errors.length ? ` (errors: ${series.errors.join('; ')})` : ''}`);
  return series;
}

async function cpuWindow(hb: Homebridge, when: string, stream?: LiveStream): Promise<CpuWindow> {
  await quiet(`the ${when} CPU window`);
  const members = treeMembers(hb.pid);
  const meter = new Meter(hb.pid);
  const bytes0 = stream?.bytes ?? 0;
  const rss: number[] = [];
  const rssRoles: Array<Record<string, number>> = [];
  let ffmpegs = 0;
  for (let i = 0; i < plan.cpuWindowSeconds; i++) {
    await sleep(1000);
    rss.push(treeRssMiB(hb.pid));
    rssRoles.push(rssByRole(hb.pid));
    ffmpegs = Math.max(ffmpegs, ffmpegPids(hb.pid).length);
  }
  const { seconds, hbPercent, otherPercent } = meter.stop();
  const roles: CpuWindow['roles'] = {};
  for (const [role, ms] of Object.entries(cpuByRole(members, treeMembers(hb.pid)))) {
    const samples = rssRoles.map((r) => r[role] ?? 0);
    roles[role] = { cpuPercent: ms / 10 / seconds, rssMeanMiB: samples.reduce((a, b) => a + b, 0) / samples.length };
  }
  const window: CpuWindow = {
    when,
    seconds: Math.round(seconds),
    cpuPercent: hbPercent,
    rssMeanMiB: rss.reduce((a, b) => a + b, 0) / rss.length,
    rssMaxMiB: Math.max(...rss),
    ffmpegs,
    streamKbps: stream ? ((stream.bytes - bytes0) * 8) / 1000 / seconds : undefined,
    otherCpuPercent: otherPercent,
    roles,
  };
  log(`  ${when} CPU ${hbPercent.toFixed(0)}%, RSS ${window.rssMeanMiB.toFixed(0)} MiB, ${ffmpegs} ffmpeg, other CPU ${otherPercent.toFixed(0)}%`);
  return window;
}

async function pairedCamera(hb: Homebridge, name: string, side: SideName): Promise<Camera> {
  await hb.waitFor(new RegExp(`\\] ${name}( [0-9A-F]{4})? is running on port \\d+`));
  const port = hb.externalPorts().get(name);
  if (!port) throw new Error(`${side}: no port for ${name}`);
  const camera = new Camera(port, PIN, `bench-${side}-${name}`);
  await camera.pair();
  return camera;
}

async function runSide(side: Side): Promise<SideResult> {
  const result: SideResult = { side: side.name, plugin: side.plugin, config: side.platform, snapshots: [], starts: [], cpu: [], errors: [] };
  const dir = mkdtempSync(join(tmpdir(), `bench-homekit-${side.name}-`));
  tempDirs.add(dir);
  const [bridgePort, firstPort] = [await freeTcpPort(), await freeTcpPort()];
  const config = {
    bridge: { name: `Bench ${side.name}`, username: side.name === 'ours' ? '0E:BE:4C:00:00:01' : '0E:BE:4C:00:00:02', port: bridgePort, pin: PIN, advertiser: 'ciao', bind: ['lo'] },
    ports: { start: firstPort, end: firstPort + 2 },
    platforms: [side.platform],
  };
  log(`${side.name}: starting Homebridge with ${side.plugin}`);
  const hb = new Homebridge(side.name, HOMEBRIDGE_NODE, HOMEBRIDGE_BIN, dir, side.pluginPath, config, process.env.BENCH_HOMEBRIDGE_DEBUG === '1');
  running.add(hb);
  const cameras: Camera[] = [];
  try {
    const camera = await pairedCamera(hb, side.camera, side.name);
    cameras.push(camera);
    const cold = side.coldCamera ? await pairedCamera(hb, side.coldCamera, side.name) : undefined;
    if (cold) cameras.push(cold);
    // Ours: the capture is up (motion detection holds it), the warm encoders wait; then one untimed
    // snapshot each, so neither side's first-use costs (page cache, libraries) land in a series.
    await settle(hb, side.idleFfmpegs, 15_000);
    await waitUntil(`${side.name}: ${side.idleFfmpegs} idle ffmpeg(s)`, () => ffmpegPids(hb.pid).length === side.idleFfmpegs, 15_000, 100);
    await camera.snapshot(SNAPSHOT.width, SNAPSHOT.height);
    await sleep(1_000);

    result.cpu.push(await cpuWindow(hb, 'idle'));
    await sleep(plan.freshGapMs);
    result.snapshots.push(await snapshotSeries(hb, camera, 'idle', 'fresh', plan.freshSnapshots, plan.freshGapMs));
    result.snapshots.push(await snapshotSeries(hb, camera, 'idle', 'cached', plan.cachedSnapshots, plan.cachedGapMs));

    // One start passed on to an ffmpeg receiver (the stream decodes), then the timed starts.
    await sleep(1_000);
    try {
      result.check = await oneStart(hb, camera, dir, true, side.idleFfmpegs);
      log(`  check stream: ${result.check.receiverSize} decoded, first packet ${result.check.firstPacketMs?.toFixed(0)} ms, receiver picture ${result.check.receiverFrameMs?.toFixed(0)} ms`);
    } catch (error) {
      result.errors.push(`check stream: ${(error as Error).message}`);
    }
    result.starts.push(await startSeries(hb, camera, dir, 'warm', plan.starts, side.idleFfmpegs));

    // A live stream: CPU and memory, then snapshots while it runs.
    const live = new LiveStream(camera, camera.firstRtp, STREAM, dir, false);
    streams.add(live);
    await live.start();
    await live.started();
    await sleep(2_000);
    result.cpu.push(await cpuWindow(hb, 'stream', live));
    await sleep(plan.freshGapMs);
    result.snapshots.push(await snapshotSeries(hb, camera, 'stream', 'fresh', plan.freshSnapshots, plan.freshGapMs));
    result.snapshots.push(await snapshotSeries(hb, camera, 'stream', 'cached', plan.cachedSnapshots, plan.cachedGapMs));
    const packets = live.packets;
    await sleep(500);
    if (live.packets === packets) result.errors.push('the live stream stopped during the snapshots');
    await live.end();
    streams.delete(live);
    await settle(hb, side.idleFfmpegs, 5_000);

    // Ours with its capture stopped: a camera with motion off, after its idle grace (10 s).
    if (cold) {
      const stopped = (): Promise<void> => settle(hb, side.idleFfmpegs, 20_000);
      const shots: SnapshotSeries = { when: 'cold', mode: 'fresh', gapMs: 0, ms: [], bytes: 0, errors: [] };
      const starts: StartSeries = { when: 'cold', starts: [], errors: [] };
      for (let i = 0; i < plan.cold; i++) {
        // The capture stops 10 s after its last consumer; wait for that (an ffmpeg gone, or for a
        // source read in Node, a second more than the grace).
        await sleep(11_000);
        await stopped();
        await quiet('a cold measurement');
        try {
          const shot = await cold.snapshot(SNAPSHOT.width, SNAPSHOT.height);
          if (shot.size !== `${SNAPSHOT.width}x${SNAPSHOT.height}`) throw new Error(`asked for ${SNAPSHOT.width}x${SNAPSHOT.height}, got ${shot.size ?? 'no JPEG'}`);
          shots.ms.push(shot.ms);
          shots.bytes = shot.bytes;
        } catch (error) {
          shots.errors.push((error as Error).message);
        }
        await sleep(11_000);
        await stopped();
        await quiet('a cold measurement');
        try {
          starts.starts.push(await oneStart(hb, cold, dir, false, side.idleFfmpegs + side.captureFfmpegs));
        } catch (error) {
          starts.errors.push((error as Error).message);
        }
      }
      log(`  cold snapshots: ${shots.ms.map((ms) => ms.toFixed(0)).join(' ')}; cold starts (first packet ms): ${starts.starts.map((s) => s.firstPacketMs?.toFixed(0)).join(' ')}`);
      result.snapshots.push(shots);
      result.starts.push(starts);
    }
  } catch (error) {
    result.errors.push((error as Error).stack ?? String(error));
    log(`${side.name}: ${(error as Error).message}`);
  } finally {
    for (const camera of cameras) await camera.close();
    const survivors = await hb.stop();
    running.delete(hb);
    if (survivors.length) result.errors.push(`still running after Homebridge's own shutdown (then killed): ${survivors.join(', ')}`);
    if (process.env.BENCH_KEEP_LOGS === '1') {
      mkdirSync(RESULTS_DIR, { recursive: true });
      writeFileSync(join(RESULTS_DIR, `homekit-${side.name}.log`), hb.output);
    }
    rmSync(dir, { recursive: true, force: true });
    tempDirs.delete(dir);
  }
  return result;
}

// ---- main ------------------------------------------------------------------------------------

function ffmpegVersion(): string {
  try {
    return /ffmpeg version (\S+)/.exec(execFileSync(FFMPEG, ['-hide_banner', '-version'], { encoding: 'utf8' }))?.[0] ?? 'ffmpeg ?';
  } catch {
    return 'ffmpeg ?';
  }
}

function commit(): string {
  try {
    const hash = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no', '--', 'src'], { cwd: REPO, encoding: 'utf8' }).trim();
    return dirty ? `${hash}+src changes` : hash;
  } catch {
    return '?';
  }
}

async function main(): Promise<void> {
  const reportIndex = process.argv.indexOf('--report');
  if (reportIndex !== -1) {
    const file = process.argv[reportIndex + 1];
    if (!file) throw new Error('--report needs a results file');
    process.stdout.write(renderReport(JSON.parse(readFileSync(file, 'utf8')) as HomeKitBenchResults));
    return;
  }
  const began = nowMs();
  const results: HomeKitBenchResults = {
    meta: {
      date: new Date().toISOString(),
      node: process.version,
      cpu: cpuModel(),
      cores: cpus().length,
      homebridge: `${version(join(REPO, 'node_modules', 'homebridge'))} on Node ${execFileSync(HOMEBRIDGE_NODE, ['--version'], { encoding: 'utf8' }).trim()}`,
      ffmpeg: ffmpegVersion(),
      commit: commit(),
      quick,
    },
    snapshotSize: SNAPSHOT,
    stream: STREAM,
    sides: [],
  };
  const source = await startSource();
  results.meta.source = source.label;
  for (const side of sides(source)) results.sides.push(await runSide(side));
  cameraChild?.kill();
  results.meta.durationSeconds = Math.round((nowMs() - began) / 1000);
  mkdirSync(RESULTS_DIR, { recursive: true });
  const file = join(RESULTS_DIR, `homekit-${results.meta.date.replace(/[:.]/g, '-')}${SOURCE_KIND === 'testsrc' ? '' : `-${SOURCE_KIND}`}${quick ? '-quick' : ''}.json`);
  writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
  log(`results in ${file}`);
  process.stdout.write(renderReport(results));
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    log((error as Error).stack ?? String(error));
    process.exit(1);
  },
);
