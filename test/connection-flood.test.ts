// Issue 11.3 with real sockets: one client must not be able to use up the server's file
// descriptors. `webcam-server serve` runs as a child with a low open-files limit (prlimit), a
// logged-in viewer watches from 127.0.0.1, and thousands of idle connections arrive from
// 127.0.0.2-127.0.0.5: /healthz and logged-in requests still answer, the viewer keeps its frames,
// the log names the refused address, the idle connections are closed and the server lives on.
// Then, on the in-process server (HTTP and HTTPS): connections with nothing in progress (silent,
// stalled headers, keep-alive, a TLS handshake never begun) are closed, long streams are not.
import assert from 'node:assert/strict';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import tls from 'node:tls';
import { describe, it } from 'node:test';

import { readMaxOpenFiles } from '../src/web/connection-guard';
import { basic, childProcessesNamed, execFileAsync, isAlive, MjpegClient, sleep, startTestServer, tempDir, waitForExit, waitUntil, writeUsers } from './helpers';

const ROOT = join(__dirname, '..');
const CLI = join(ROOT, 'src', 'cli.ts');
const PRLIMIT = ['/usr/bin/prlimit', '/bin/prlimit'].find((path) => existsSync(path));
/** The server's open-files limit: low, so a flood of a couple of thousand sockets would exhaust it. */
const NOFILE = 1024;
const FLOOD_ADDRESSES = ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5'];
const PER_ADDRESS = 400;

type Served = ChildProcessWithoutNullStreams & { output: () => string };

/** `webcam-server serve` with at most `nofile` open files; killed (with its ffmpeg) when the test ends. */
function serveWithFileLimit(t: { after: (fn: () => Promise<void>) => void }, args: string[], nofile: number): Served {
  const child = spawn(PRLIMIT!, [`--nofile=${nofile}:${nofile}`, '--', process.execPath, '--import', 'tsx', CLI, 'serve', ...args], { cwd: ROOT, env: process.env });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const served = Object.assign(child, { output: () => output });
  t.after(async () => {
    const ffmpeg = child.exitCode === null ? await childProcessesNamed(child.pid!, 'ffmpeg').catch(() => []) : [];
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await waitForExit(child, 15_000).catch(() => {
        child.kill('SIGKILL');
        return waitForExit(child, 5_000).catch(() => null);
      });
    }
    for (const pid of ffmpeg) if (isAlive(pid)) process.kill(pid, 'SIGKILL');
  });
  return served;
}

async function waitForOutput(child: Served, pattern: RegExp, timeoutMs = 30_000): Promise<RegExpMatchArray> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const match = pattern.exec(child.output());
    if (match) return match;
    if (child.exitCode !== null) throw new Error(`the server exited (${child.exitCode}) without ${pattern}:\n${child.output()}`);
    if (Date.now() > deadline) throw new Error(`no ${pattern} in output:\n${child.output()}`);
    await sleep(100);
  }
}

/** A GET on a fresh connection (no keep-alive pool), with a deadline: status 0 when it fails. */
function fetchStatus(url: string, headers: Record<string, string> = {}, timeoutMs = 15_000): Promise<number> {
  return new Promise((resolve) => {
    const request = http.get(url, { headers, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', () => resolve(0));
    });
    request.setTimeout(timeoutMs, () => request.destroy(new Error('timed out')));
    request.on('error', () => resolve(0));
  });
}

interface Idle {
  socket: Socket;
  connected: boolean;
  closed: boolean;
}

/** A connection from `localAddress` that never sends a byte. */
function idleConnection(port: number, localAddress: string): Promise<Idle> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port, localAddress });
    const idle: Idle = { socket, connected: false, closed: false };
    const timer = setTimeout(() => resolve(idle), 10_000);
    socket.on('error', () => {});
    socket.on('close', () => {
      idle.closed = true;
      clearTimeout(timer);
      resolve(idle);
    });
    socket.once('connect', () => {
      idle.connected = true;
      clearTimeout(timer);
      resolve(idle);
    });
    // Read whatever comes, so an end from the server is seen as a close here.
    socket.resume();
  });
}

/** Why the flood cannot run here, if it cannot: it needs prlimit, and room for its own sockets. */
const floodSkip = !PRLIMIT
  ? 'prlimit (util-linux) is needed to lower the server’s open-files limit'
  : readMaxOpenFiles() < FLOOD_ADDRESSES.length * PER_ADDRESS + 1000
    ? `this process may open only ${readMaxOpenFiles()} files, too few for the flood`
    : false;

describe('connection floods', { skip: floodSkip }, () => {
  it('one address flooding with idle connections stops neither /healthz nor a logged-in viewer elsewhere', async (t) => {
    const dir = tempDir();
    const users = join(dir, 'users');
    await writeUsers(users, { alice: 'wonderland' });
    const config = join(dir, 'config.json');
    writeFileSync(config, JSON.stringify({ cameras: [{ name: 'Demo', source: 'testsrc', width: 320, height: 240, fps: 10 }], web: { host: '127.0.0.1', port: 0 } }));
    const server = serveWithFileLimit(t, ['--config', config, '--users', users], NOFILE);
    const [, url] = await waitForOutput(server, /Web server listening on (http:\/\/127\.0\.0\.1:\d+)/);
    assert.ok(url);
    const port = Number(new URL(url).port);
    assert.match(readFileSync(`/proc/${server.pid}/limits`, 'utf8'), new RegExp(`Max open files\\s+${NOFILE}\\s`), 'the server runs with the low limit');

    const viewer = new MjpegClient(`${url}/stream.mjpg`, basic('alice', 'wonderland'));
    t.after(() => viewer.close());
    await viewer.open();
    assert.equal(viewer.status, 200);
    await viewer.waitForParts(3, 30_000);

    // More idle connections than the server may open files, from four addresses, 100 at a time.
    const flood: Idle[] = [];
    t.after(() => {
      for (const idle of flood) idle.socket.destroy();
    });
    const framesBeforeFlood = viewer.count;
    for (const address of FLOOD_ADDRESSES) {
      for (let i = 0; i < PER_ADDRESS; i += 100) {
        flood.push(...(await Promise.all(Array.from({ length: 100 }, () => idleConnection(port, address)))));
      }
    }
    // While the flood holds whatever the server let it keep:
    assert.equal(await fetchStatus(`${url}/healthz`), 200, '/healthz from 127.0.0.1 answers');
    assert.equal(await fetchStatus(`${url}/api/cameras`, { authorization: basic('alice', 'wonderland') }), 200, 'a fresh logged-in request from 127.0.0.1 answers');
    await viewer.waitForParts(framesBeforeFlood + 5, 30_000);
    assert.equal(viewer.ended, false);
    await waitForOutput(server, /Refusing connections from 127\.0\.0\.2\b/);

    // Idle connections are closed by the server: every one of them ends.
    await waitUntil('every flood connection closed by the server', () => flood.every((idle) => idle.closed), 60_000);
    assert.ok(flood.some((idle) => idle.connected), 'some flood connections were accepted before being closed');

    const framesAfterFlood = viewer.count;
    await viewer.waitForParts(framesAfterFlood + 5, 30_000);
    assert.equal(viewer.ended, false, 'the logged-in viewer was never cut');
    assert.equal(await fetchStatus(`${url}/healthz`), 200);
    assert.equal(server.exitCode, null, 'the server is still running');
    assert.ok(isAlive(server.pid!));
  });
});

interface Watched {
  socket: Socket;
  closed: boolean;
  data: string;
}

function watch(socket: Socket, send?: string): Watched {
  const watched: Watched = { socket, closed: false, data: '' };
  socket.on('data', (d: Buffer) => (watched.data += d.toString('latin1')));
  socket.on('close', () => (watched.closed = true));
  socket.on('error', () => {});
  if (send) socket.once('connect', () => socket.write(send));
  return watched;
}

describe('idle connections', () => {
  it('closes silent, stalled and idle keep-alive connections, never a long MJPEG stream', async (t) => {
    const { port, url } = await startTestServer(t);
    const viewer = new MjpegClient(`${url}/stream.mjpg`, basic('alice', 'wonderland'));
    t.after(() => viewer.close());
    await viewer.open();
    await viewer.waitForParts(2, 30_000);

    const connect = () => net.connect({ host: '127.0.0.1', port });
    const silent = watch(connect());
    const keepAlive = watch(connect(), 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    const loggedIn = watch(connect(), `GET /api/cameras HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: ${basic('alice', 'wonderland')}\r\n\r\n`);
    // A slow client that sends a header byte a second and never finishes.
    const stalled = watch(connect(), 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ');
    const drip = setInterval(() => stalled.socket.write('a'), 1000);
    t.after(() => {
      clearInterval(drip);
      for (const w of [silent, keepAlive, loggedIn, stalled]) w.socket.destroy();
    });

    await waitUntil('the silent, stalled and keep-alive connections closed', () => [silent, keepAlive, loggedIn, stalled].every((w) => w.closed), 40_000);
    assert.match(keepAlive.data, /^HTTP\/1\.1 200 /, 'the keep-alive connection was answered before it was closed');
    assert.match(loggedIn.data, /^HTTP\/1\.1 200 /);
    assert.equal(silent.data, '');
    // The viewer started before all of them and outlived every idle timeout; it still gets frames.
    const frames = viewer.count;
    await viewer.waitForParts(frames + 3, 30_000);
    assert.equal(viewer.ended, false, 'the stream was not cut');
  });

  it('over HTTPS: closes a connection whose TLS handshake never starts, keeps a stream', async (t) => {
    const dir = tempDir();
    const key = join(dir, 'key.pem');
    const cert = join(dir, 'cert.pem');
    await execFileAsync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost']);
    const { port } = await startTestServer(t, { web: { tls: { cert, key } } });
    let frames = 0;
    let streamEnded = false;
    const stream = https.get({ host: '127.0.0.1', port, path: '/stream.mjpg', rejectUnauthorized: false, headers: { authorization: basic('alice', 'wonderland') } }, (res) => {
      res.on('data', (d: Buffer) => (frames += d.toString('latin1').split('Content-Type: image/jpeg').length - 1));
      res.on('close', () => (streamEnded = true));
    });
    stream.on('error', () => {});
    t.after(() => stream.destroy());
    await waitUntil('frames over HTTPS', () => frames >= 2, 30_000);

    const silent = watch(net.connect({ host: '127.0.0.1', port }));
    // A handshake begun and left hanging: the ClientHello's first bytes only.
    const half = watch(net.connect({ host: '127.0.0.1', port }), '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03');
    const idleTls = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false });
    let idleTlsClosed = false;
    idleTls.on('error', () => {});
    idleTls.on('close', () => (idleTlsClosed = true));
    idleTls.resume();
    t.after(() => {
      for (const s of [silent.socket, half.socket, idleTls]) s.destroy();
    });
    await waitUntil('the stalled TLS connections closed', () => silent.closed && half.closed && idleTlsClosed, 40_000);
    const before = frames;
    await waitUntil('the HTTPS stream still flows', () => frames > before, 30_000);
    assert.equal(streamEnded, false);
  });
});
