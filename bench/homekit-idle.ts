// The idle probe (`npm run bench:idle`): what our plugin costs while nobody watches, measured once
// it has settled. Homebridge 1.11 runs the plugin with its web server (on a unix socket) and one
// 1280x720 30 fps camera read from the HomeKit benchmark's network camera (bench/homekit-camera.ts,
// MJPEG over HTTP), motion on; nobody pairs or logs in. After a warm-up it reads /proc: the CPU of
// Homebridge's node process over the window, split by thread (the main thread, V8's helper
// threads, libuv's pool, libvips), and its RSS. bench:homekit's idle window is 10 s soon after
// start; this one is longer and later, for the steady state. Markdown-ish lines on stdout.
//
//   BENCH_IDLE_SECONDS=N   the window (default 30)
//   BENCH_FPS=N            the camera's frame rate (default 30)
//   BENCH_WARMUP_SECONDS=N before it (default 15)
//   BENCH_MOTION=0         motion off (the capture then stops: the cost of Homebridge and the plugin alone)
//   BENCH_NODE_FLAGS="..." extra flags for Homebridge's node (e.g. --trace-gc; its log goes to stdout)
//   BENCH_OURS_DIR=/path   our plugin from a built copy of the tree (to try a change to src/)
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { ensureCorpus } from './corpus';
import { freeTcpPort, homebridgeNode, sleep } from './homekit-hap';

const REPO = join(__dirname, '..');
const OURS_DIR = process.env.BENCH_OURS_DIR || REPO;
const FFMPEG = process.env.BENCH_FFMPEG ?? '/usr/bin/ffmpeg';

function seconds(name: string, fallback: number): number {
  const value = Number(process.env[name] ?? fallback);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a number of seconds > 0`);
  return value;
}

/** User and system clock ticks of each thread of `pid`, by "tid name". */
function threadTicks(pid: number): Map<string, { user: number; system: number }> {
  const ticks = new Map<string, { user: number; system: number }>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    } catch {
      continue; // the thread ended
    }
    const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    ticks.set(`${tid} ${name}`, { user: Number(fields[11]), system: Number(fields[12]) });
  }
  return ticks;
}

/** What a thread is, from its name: Node names its threads, V8's helpers are plain "node". */
function role(name: string, isMain: boolean): string {
  if (isMain) return 'main thread (JS, HTTP, the hub)';
  if (name === 'node') return "V8's helper threads (GC, compiling)";
  if (name.startsWith('libvips')) return 'libvips (motion decode)';
  if (name === 'homebridge' || name === 'node_modules') return "libuv's pool (sharp, files)";
  return `other (${name})`;
}

async function main(): Promise<void> {
  const windowSeconds = seconds('BENCH_IDLE_SECONDS', 30);
  const fps = Number(process.env.BENCH_FPS ?? 30);
  if (!Number.isInteger(fps) || fps <= 0) throw new Error('BENCH_FPS must be a whole number of frames a second > 0');
  const warmupSeconds = seconds('BENCH_WARMUP_SECONDS', 15);
  const motion = process.env.BENCH_MOTION !== '0';
  const corpus = await ensureCorpus({ width: 1280, height: 720, ffmpeg: FFMPEG });
  const camera = spawn(process.execPath, ['--import', 'tsx', join(__dirname, 'homekit-camera.ts')], {
    env: { ...process.env, BENCH_CAMERA_CORPUS: corpus.path, BENCH_CAMERA_FPS: String(fps) },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const dir = mkdtempSync(join(tmpdir(), 'bench-idle-'));
  let homebridge: ReturnType<typeof spawn> | undefined;
  try {
    const port = await new Promise<number>((resolve, reject) => {
      camera.once('message', (message) => resolve((message as { port: number }).port));
      camera.once('exit', (code) => reject(new Error(`the camera stand-in exited (${code})`)));
    });
    writeFileSync(
      join(dir, 'config.json'),
      JSON.stringify({
        bridge: { name: 'Bench idle', username: '0E:BE:4C:00:00:09', port: await freeTcpPort(), pin: '031-45-154', advertiser: 'ciao', bind: ['lo'] },
        platforms: [
          {
            platform: 'WebcamServer',
            name: 'Webcam Server',
            videoProcessor: FFMPEG,
            cameras: [{ name: 'Bench', source: `http://127.0.0.1:${port}/stream.mjpg`, width: 1280, height: 720, fps, homekit: { unbridge: true }, motion: { enabled: motion } }],
            web: { socket: join(dir, 'web.sock') },
          },
        ],
      }),
    );
    const flags = process.env.BENCH_NODE_FLAGS ? process.env.BENCH_NODE_FLAGS.split(' ').filter(Boolean) : [];
    const child = spawn(homebridgeNode(), [...flags, join(REPO, 'node_modules', 'homebridge', 'bin', 'homebridge'), '-Q', '-U', dir, '-P', OURS_DIR], {
      env: { ...process.env, FORCE_COLOR: '0' },
      stdio: ['ignore', flags.length > 0 ? 'inherit' : 'ignore', flags.length > 0 ? 'inherit' : 'ignore'],
    });
    homebridge = child;
    const pid = child.pid;
    if (pid === undefined) throw new Error('Homebridge did not start');
    process.stderr.write(`[bench:idle] warming up for ${warmupSeconds} s, then measuring for ${windowSeconds} s\n`);
    await sleep(warmupSeconds * 1000);
    if (child.exitCode !== null) throw new Error(`Homebridge exited (${child.exitCode})`);
    const before = threadTicks(pid);
    const startedAt = performance.now();
    await sleep(windowSeconds * 1000);
    const after = threadTicks(pid);
    const elapsed = (performance.now() - startedAt) / 1000;
    const rssMiB = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;

    // Clock ticks are 1/100 s: ticks / seconds is a percentage of one core.
    const byRole = new Map<string, { user: number; system: number }>();
    for (const [key, end] of after) {
      const start = before.get(key) ?? { user: 0, system: 0 };
      const [tid = '', ...name] = key.split(' ');
      const sum = byRole.get(role(name.join(' '), Number(tid) === pid)) ?? { user: 0, system: 0 };
      sum.user += end.user - start.user;
      sum.system += end.system - start.system;
      byRole.set(role(name.join(' '), Number(tid) === pid), sum);
    }
    const total = [...byRole.values()].reduce((sum, t) => sum + t.user + t.system, 0);
    console.log(`Homebridge's node, idle, a ${fps} fps camera, motion ${motion ? 'on' : 'off'}: ${(total / elapsed).toFixed(1)}% of a core over ${elapsed.toFixed(0)} s after ${warmupSeconds} s; RSS ${rssMiB.toFixed(0)} MiB`);
    console.log('| threads | CPU | user | system |');
    console.log('|---|---|---|---|');
    for (const [name, t] of [...byRole].sort((a, b) => b[1].user + b[1].system - (a[1].user + a[1].system))) {
      console.log(`| ${name} | ${((t.user + t.system) / elapsed).toFixed(1)}% | ${(t.user / elapsed).toFixed(1)}% | ${(t.system / elapsed).toFixed(1)}% |`);
    }
  } finally {
    if (homebridge && homebridge.exitCode === null) {
      const child = homebridge;
      const exited = new Promise<boolean>((resolve) => child.once('exit', () => resolve(true)));
      child.kill('SIGTERM');
      if (!(await Promise.race([exited, sleep(10_000).then(() => false)]))) child.kill('SIGKILL');
    }
    camera.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(`[bench:idle] ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
});
