// A real slow link for tests and benchmarks: two network namespaces (server, viewer) joined by a veth
// pair whose server->viewer direction is shaped with tc's token bucket (`tbf rate Nmbit burst 16kb
// latency 200ms`; netem is not available here). It runs the real `webcam-server serve` in the server
// namespace, MJPEG viewers (test/fixtures/netns-viewer.ts) in either namespace, and Debian's Chromium
// in the viewer namespace through a small wrapper. Needs root and iproute2 (`ip`, `tc`): without them
// it throws a clear error, so the test fails rather than passing or skipping. Namespaces are removed
// (with every process left in them) when the test ends and on process exit; leftovers of crashed
// earlier runs (same prefix, dead owner pid) are removed before the first new link is made.
import type { ChildProcess, ChildProcessWithoutNullStreams } from 'node:child_process';
import { execFile, execFileSync, spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';

import type { Browser } from 'playwright-core';
import { chromium } from 'playwright-core';

import { basic, CHROMIUM, CHROMIUM_ARGS, commandFailure, isAlive, sleep, writeUsers } from './helpers';

const execFileAsync = promisify(execFile);
const ROOT = join(__dirname, '..');
const VIEWER_SCRIPT = join(__dirname, 'fixtures', 'netns-viewer.ts');
const PREFIX = 'wcs-';
/** wcs-srv-<pid>-<n> / wcs-view-<pid>-<n>: the pid says whose they are, for cleaning up after crashes. */
const NAME = /^wcs-(?:srv|view)-(\d+)-\d+$/;
const SERVER_IF = 'veth-srv';
const VIEWER_IF = 'veth-view';

type After = { after: (fn: () => Promise<void> | void) => void };

let counter = 0;
let sweptLeftovers = false;
/** Namespaces this process made and has not removed yet. */
const ours = new Set<string>();
/** Temporary folders (config, users, Chromium wrapper) to remove with them. */
const ourDirs = new Set<string>();

/** A temporary folder removed when the test ends, or on exit if it never does. */
function tempDir(t: After): string {
  const dir = mkdtempSync(join(tmpdir(), 'webcam-netns-'));
  ourDirs.add(dir);
  t.after(() => {
    rmSync(dir, { recursive: true, force: true });
    ourDirs.delete(dir);
  });
  return dir;
}

async function run(command: string, args: string[]): Promise<string> {
  try {
    const { stdout } = await execFileAsync(command, args, { timeout: 15_000 });
    return stdout;
  } catch (error) {
    const e = error as Error & { stderr?: string };
    throw new Error(`${command} ${args.join(' ')} failed: ${(e.stderr || e.message).trim()}`, { cause: error });
  }
}

/** Throws, saying what is missing, unless this process can make namespaces and shape a link. */
export async function requireNetns(): Promise<void> {
  if (process.platform !== 'linux') throw new Error(`network namespaces need Linux (this is ${process.platform})`);
  if (process.getuid?.() !== 0) throw new Error('network namespaces need root (run the test as root, as CI does)');
  for (const tool of ['ip', 'tc']) {
    try {
      await execFileAsync(tool, ['-V'], { timeout: 5_000 });
    } catch (error) {
      throw new Error(`"${tool}" is not usable (${(error as Error).message}); install Debian's iproute2 package`, { cause: error });
    }
  }
}

function namespacesNow(): string[] {
  const out = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8', timeout: 10_000 });
  return out
    .split('\n')
    .map((line) => line.trim().split(/\s+/)[0])
    .filter((name): name is string => Boolean(name));
}

function pidsInSync(ns: string): number[] {
  try {
    return execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8', timeout: 10_000 }).split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

async function pidsIn(ns: string): Promise<number[]> {
  try {
    const { stdout } = await execFileAsync('ip', ['netns', 'pids', ns], { timeout: 10_000 });
    return stdout.split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

function signal(pids: number[], sig: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, sig);
    } catch {
      // already gone
    }
  }
}

/** Synchronous removal, for process exit: kills what still runs in the namespace, then deletes it. */
function removeNamespaceSync(ns: string): void {
  signal(pidsInSync(ns), 'SIGKILL');
  try {
    execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore', timeout: 10_000 });
  } catch {
    // already gone
  }
  ours.delete(ns);
}

/** Removal at the end of a test: SIGTERM to what runs inside (servers stop their ffmpeg), SIGKILL after 5 s. */
async function removeNamespaces(names: string[]): Promise<void> {
  const all = async () => (await Promise.all(names.map(pidsIn))).flat();
  signal(await all(), 'SIGTERM');
  const deadline = Date.now() + 5_000;
  let left = await all();
  while (left.length && Date.now() < deadline) {
    await sleep(100);
    left = await all();
  }
  signal(left, 'SIGKILL');
  for (const ns of names) {
    // A killed process may take a moment to leave; the namespace goes once its name is deleted either way.
    await execFileAsync('ip', ['netns', 'del', ns], { timeout: 10_000 }).catch(() => {});
    ours.delete(ns);
  }
}

function removeOursSync(): void {
  for (const ns of [...ours]) removeNamespaceSync(ns);
  for (const dir of ourDirs) rmSync(dir, { recursive: true, force: true });
  ourDirs.clear();
}

let exitHooked = false;
function hookExit(): void {
  if (exitHooked) return;
  exitHooked = true;
  process.once('exit', removeOursSync);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      removeOursSync();
      process.exit(128 + (sig === 'SIGINT' ? 2 : sig === 'SIGTERM' ? 15 : 1));
    });
  }
}

/** Namespaces with our prefix whose owner process is gone (a crashed or killed earlier run). */
function sweepLeftovers(): void {
  if (sweptLeftovers) return;
  sweptLeftovers = true;
  for (const ns of namespacesNow()) {
    if (!ns.startsWith(PREFIX)) continue;
    const owner = Number(NAME.exec(ns)?.[1]);
    if (owner === process.pid || (owner && isAlive(owner))) continue;
    removeNamespaceSync(ns);
  }
}

export interface ShapedLinkOptions {
  /** Rate of the server->viewer direction in Mbit/s (1, 2, 5, 10 for the benchmarks). */
  rateMbit?: number;
  /** tbf burst, e.g. "16kb". */
  burst?: string;
  /** tbf latency (the most a packet may wait in the shaper), e.g. "200ms". */
  latency?: string;
}

export interface ShapedLink {
  /** Namespace the server runs in; its side of the veth is shaped. */
  server: string;
  /** Namespace remote viewers run in. */
  viewer: string;
  serverAddress: string;
  viewerAddress: string;
  /** The shaped interface (inside `server`). */
  serverInterface: string;
  rateMbit: number;
  /** `tc -s qdisc` of the shaper: bytes sent, drops, backlog (for diagnostics). */
  shaperStats(): Promise<string>;
  close(): Promise<void>;
}

/**
 * Two fresh namespaces and a veth pair between them (made directly inside them, so nothing is left in
 * the host namespace), `lo` up in both, server side 10.231.0.1/30, viewer side 10.231.0.2/30 (each
 * link is its own world, so every link can use the same addresses), the server side shaped.
 * Removed by t.after, or on process exit; a failing step removes what was made so far.
 */
export async function createShapedLink(t: After, options: ShapedLinkOptions = {}): Promise<ShapedLink> {
  await requireNetns();
  sweepLeftovers();
  hookExit();
  const rateMbit = options.rateMbit ?? 2;
  if (!(rateMbit > 0 && rateMbit <= 10_000)) throw new Error(`rateMbit must be a positive number (got ${rateMbit})`);
  const n = counter++;
  const server = `${PREFIX}srv-${process.pid}-${n}`;
  const viewer = `${PREFIX}view-${process.pid}-${n}`;
  const serverAddress = '10.231.0.1';
  const viewerAddress = '10.231.0.2';
  const names = [server, viewer];
  let closed: Promise<void> | undefined;
  const close = () => (closed ??= removeNamespaces(names));
  t.after(close);
  try {
    for (const ns of names) {
      ours.add(ns);
      await run('ip', ['netns', 'add', ns]);
    }
    await run('ip', ['link', 'add', SERVER_IF, 'netns', server, 'type', 'veth', 'peer', 'name', VIEWER_IF, 'netns', viewer]);
    for (const [ns, dev, address] of [
      [server, SERVER_IF, serverAddress],
      [viewer, VIEWER_IF, viewerAddress],
    ] as const) {
      await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
      await run('ip', ['-n', ns, 'addr', 'add', `${address}/30`, 'dev', dev]);
      await run('ip', ['-n', ns, 'link', 'set', dev, 'up']);
    }
    await run('tc', [
      '-n', server, 'qdisc', 'add', 'dev', SERVER_IF, 'root', 'tbf',
      'rate', `${rateMbit}mbit`, 'burst', options.burst ?? '16kb', 'latency', options.latency ?? '200ms',
    ]);
  } catch (error) {
    await close();
    throw error;
  }
  return {
    server,
    viewer,
    serverAddress,
    viewerAddress,
    serverInterface: SERVER_IF,
    rateMbit,
    shaperStats: () => run('tc', ['-s', '-n', server, 'qdisc', 'show', 'dev', SERVER_IF]).then((s) => s.trim()),
    close,
  };
}

/** Spawns `cmd args...` inside the namespace (`ip netns exec NS ...`; ip execs it, so the pid is the command's). */
export function spawnIn(ns: string, command: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): ChildProcessWithoutNullStreams {
  return spawn('ip', ['netns', 'exec', ns, command, ...args], { cwd: options.cwd ?? ROOT, env: options.env ?? process.env });
}

/** Runs `cmd args...` inside the namespace to its end; resolves with its stdout, rejects with its stderr. */
export function execIn(ns: string, command: string, args: string[], timeoutMs = 30_000): Promise<string> {
  return execFileAsync('ip', ['netns', 'exec', ns, command, ...args], { cwd: ROOT, timeout: timeoutMs }).then(
    ({ stdout }) => stdout,
    (error: unknown) => {
      const { stderr, message } = commandFailure(error);
      throw new Error(`in ${ns}: ${command} ${args.join(' ')} failed: ${(stderr || message).trim()}`, { cause: error });
    },
  );
}

/** Resolves once `url` answers 200 when asked from inside `ns`. */
export async function waitForHttpIn(ns: string, url: string, timeoutMs = 30_000): Promise<void> {
  await execIn(ns, process.execPath, ['--import', 'tsx', VIEWER_SCRIPT, 'wait', url, String(timeoutMs)], timeoutMs + 15_000);
}

/** Per-socket send queues (bytes sent but not acknowledged) from /proc/net/tcp inside `ns`, for one local port. */
export async function sendQueues(ns: string, port: number): Promise<Array<{ remote: string; txQueue: number }>> {
  const table = (await execIn(ns, 'cat', ['/proc/net/tcp', '/proc/net/tcp6'])).split('\n');
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  const rows: Array<{ remote: string; txQueue: number }> = [];
  for (const line of table) {
    const cols = line.trim().split(/\s+/);
    // sl local_address rem_address st tx_queue:rx_queue ...; st 01 = ESTABLISHED
    const [, local, remote, state, queues] = cols;
    if (remote === undefined || queues === undefined || !local?.endsWith(`:${hexPort}`) || state !== '01') continue;
    const [txQueue = ''] = queues.split(':');
    rows.push({ remote, txQueue: parseInt(txQueue, 16) });
  }
  return rows;
}

export interface NetnsServerOptions {
  port?: number;
  cameras?: unknown[];
  users?: Record<string, string>;
  web?: Record<string, unknown>;
}

export interface NetnsServer {
  child: ChildProcess;
  port: number;
  /** The server from inside its own namespace (the local path). */
  localUrl: string;
  /** The server from the viewer namespace, through the shaped link. */
  remoteUrl: string;
  /** Basic auth for the first user. */
  authorization: string;
  output(): string;
  stop(): Promise<void>;
}

/**
 * `webcam-server serve` in the link's server namespace, listening on 0.0.0.0:port, with one testsrc
 * camera at the defaults (1280x720, 30 fps, default quality) unless `cameras` says otherwise. Resolves
 * once /healthz answers inside the server namespace and through the link.
 */
export async function startServerIn(t: After, link: ShapedLink, options: NetnsServerOptions = {}): Promise<NetnsServer> {
  const dir = tempDir(t);
  const port = options.port ?? 8080;
  const users = options.users ?? { alice: 'wonderland' };
  const [account] = Object.entries(users);
  if (!account) throw new Error('serving needs at least one user');
  const usersFile = join(dir, 'users');
  await writeUsers(usersFile, users);
  const configFile = join(dir, 'config.json');
  writeFileSync(
    configFile,
    JSON.stringify({
      cameras: options.cameras ?? [{ name: 'Slow Link', source: 'testsrc' }],
      web: { ...options.web, host: '0.0.0.0', port },
    }),
  );
  const child = spawnIn(link.server, process.execPath, ['--import', 'tsx', join(ROOT, 'src', 'cli.ts'), 'serve', '--config', configFile, '--users', usersFile]);
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-20_000)));
  child.stderr.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-20_000)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  };
  t.after(stop);
  const [name, password] = account;
  const server: NetnsServer = {
    child,
    port,
    localUrl: `http://127.0.0.1:${port}`,
    remoteUrl: `http://${link.serverAddress}:${port}`,
    authorization: basic(name, password),
    output: () => output,
    stop,
  };
  const early = exited.then(() => {
    throw new Error(`the server in ${link.server} exited (${child.exitCode ?? child.signalCode}) before answering:\n${output}`);
  });
  try {
    await Promise.race([early, waitForHttpIn(link.server, `${server.localUrl}/healthz`)]);
    await Promise.race([early, waitForHttpIn(link.viewer, `${server.remoteUrl}/healthz`)]);
  } catch (error) {
    throw new Error(`${(error as Error).message}\nserver output:\n${output}`, { cause: error });
  } finally {
    early.catch(() => {});
  }
  return server;
}

export interface Frame {
  /** Date.now() in the viewer process when the part was complete (one clock for all viewers). */
  at: number;
  /** sha1 of the JPEG. */
  hash: string;
  bytes: number;
}

export interface NetnsViewer {
  readonly frames: Frame[];
  readonly child: ChildProcess;
  /** What the viewer wrote to stderr (why it failed). */
  errors(): string;
  waitForFrames(n: number, timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

/** An MJPEG viewer process in `ns`, recording each complete part (see test/fixtures/netns-viewer.ts). */
export function startMjpegViewer(t: After, ns: string, url: string, authorization?: string): NetnsViewer {
  const child = spawnIn(ns, process.execPath, ['--import', 'tsx', VIEWER_SCRIPT, 'mjpeg', url, ...(authorization ? [authorization] : [])]);
  const frames: Frame[] = [];
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-10_000)));
  createInterface({ input: child.stdout }).on('line', (line) => {
    if (line.startsWith('{')) frames.push(JSON.parse(line) as Frame);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  };
  t.after(stop);
  return {
    frames,
    child,
    errors: () => stderr,
    async waitForFrames(n, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      while (frames.length < n) {
        if (child.exitCode !== null || child.signalCode !== null) throw new Error(`the viewer of ${url} in ${ns} ended after ${frames.length} frames: ${stderr}`);
        if (Date.now() > deadline) throw new Error(`the viewer of ${url} in ${ns} got ${frames.length} of ${n} frames within ${timeoutMs} ms ${stderr}`);
        await sleep(50);
      }
    },
    stop,
  };
}

/**
 * Debian's Chromium, driven by playwright-core, running inside `ns`: its executablePath is a wrapper
 * written at run time that execs `ip netns exec NS /usr/lib/chromium/chromium "$@"` (the pid stays
 * Chromium's, and the DevTools pipe passes through). Closed when the test ends.
 */
export async function launchChromiumIn(t: After, ns: string): Promise<Browser> {
  if (!CHROMIUM) throw new Error('Chromium is not installed (apt-get install chromium)');
  if (!/^[a-z0-9-]+$/.test(ns)) throw new Error(`unexpected namespace name ${JSON.stringify(ns)}`);
  const wrapper = join(tempDir(t), 'chromium-in-netns');
  writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec '${ns}' '${CHROMIUM}' "$@"\n`);
  chmodSync(wrapper, 0o755);
  const browser = await chromium.launch({ executablePath: wrapper, args: CHROMIUM_ARGS });
  t.after(() => browser.close());
  return browser;
}
