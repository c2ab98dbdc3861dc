// The connection guard (issue 11.3): its pure decisions (fd limit, limits, address groups,
// admission, expiry, proxy peers), then the guard itself on real HTTP and HTTPS servers with
// small limits: per-address refusal, logged-in connections not counted, room made at the total
// cap by closing the oldest idle stranger, idle connections closed, busy streams kept.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { join } from 'node:path';
import tls from 'node:tls';
import { describe, it } from 'node:test';

import type { ConnectionLimits } from '../src/web/connection-guard';
import { addressGroup, admission, ConnectionGuard, connectionLimits, isExpired, parseMaxOpenFiles, readMaxOpenFiles } from '../src/web/connection-guard';
import { proxyPeers } from '../src/web/server';
import { execFileAsync, recordingLog, tempDir, waitUntil } from './helpers';

const LIMITS_TEXT = `Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max open files            1024                 524288               files
Max locked memory         8388608              8388608              bytes
`;

describe('connection policy', () => {
  it('reads the soft open-files limit', () => {
    assert.equal(parseMaxOpenFiles(LIMITS_TEXT), 1024);
    assert.equal(parseMaxOpenFiles(LIMITS_TEXT.replace('1024  ', 'unlimited')), Number.POSITIVE_INFINITY);
    assert.equal(parseMaxOpenFiles('Max cpu time unlimited unlimited seconds\n'), undefined);
    assert.equal(readMaxOpenFiles('/no/such/file'), 1024);
    const own = readMaxOpenFiles();
    assert.ok(own >= 64, `this process may open ${own} files`);
  });

  it('keeps connections under half the fd limit and one address under a quarter of that', () => {
    assert.deepEqual(connectionLimits(1024), { total: 512, perAddress: 128, idleMs: 10_000 });
    assert.deepEqual(connectionLimits(524_288), { total: 4096, perAddress: 256, idleMs: 10_000 });
    assert.deepEqual(connectionLimits(Number.POSITIVE_INFINITY), { total: 4096, perAddress: 256, idleMs: 10_000 });
    assert.deepEqual(connectionLimits(20), { total: 16, perAddress: 4, idleMs: 10_000 });
  });

  it('counts IPv4 per address and IPv6 per /64', () => {
    assert.equal(addressGroup('127.0.0.2'), '127.0.0.2');
    assert.equal(addressGroup('::ffff:127.0.0.2'), '127.0.0.2');
    assert.equal(addressGroup('2001:db8:1:2:3:4:5:6'), '2001:db8:1:2::/64');
    assert.equal(addressGroup('2001:db8:1:2::9'), '2001:db8:1:2::/64');
    assert.notEqual(addressGroup('2001:db8:1:3::9'), addressGroup('2001:db8:1:2::9'));
    assert.equal(addressGroup(undefined), undefined);
  });

  it('refuses an address at its cap, makes room at the total cap, refuses when nothing can go', () => {
    const limits: ConnectionLimits = { total: 10, perAddress: 3, idleMs: 1000 };
    const state = { open: 0, fromAddress: 0, exempt: false, idleUnauthenticated: false };
    assert.equal(admission(state, limits), 'accept');
    assert.equal(admission({ ...state, fromAddress: 2 }, limits), 'accept');
    assert.equal(admission({ ...state, fromAddress: 3 }, limits), 'refuse-address');
    assert.equal(admission({ ...state, fromAddress: 3, exempt: true }, limits), 'accept', 'the proxy is not limited per address');
    assert.equal(admission({ ...state, open: 10, idleUnauthenticated: true }, limits), 'make-room');
    assert.equal(admission({ ...state, open: 10 }, limits), 'refuse-full');
    assert.equal(admission({ ...state, open: 10, exempt: true }, limits), 'refuse-full', 'the proxy too, at the total cap');
    assert.equal(admission({ ...state, open: 10, fromAddress: 3, idleUnauthenticated: true }, limits), 'refuse-address', 'a flooding address does not push others out');
  });

  it('expires connections with nothing in progress only', () => {
    const limits: ConnectionLimits = { total: 10, perAddress: 3, idleMs: 1000 };
    assert.equal(isExpired({ active: 0, idleSince: 0 }, 999, limits), false);
    assert.equal(isExpired({ active: 0, idleSince: 0 }, 1000, limits), true);
    assert.equal(isExpired({ active: 1, idleSince: 0 }, 1_000_000, limits), false, 'a stream is never idle');
  });

  it('exempts the unix socket, and the trusted proxy only when trustProxy is set', () => {
    const none = proxyPeers(false);
    assert.equal(none(undefined), true);
    assert.equal(none('127.0.0.1'), false);
    const local = proxyPeers(true);
    assert.equal(local('127.0.0.1'), true);
    assert.equal(local('::ffff:127.0.0.1'), true);
    assert.equal(local('192.168.1.9'), false);
    const listed = proxyPeers(['10.0.0.5', '192.168.2.0/24', 'loopback', 'not-an-address']);
    assert.equal(listed('10.0.0.5'), true);
    assert.equal(listed('192.168.2.77'), true);
    assert.equal(listed('::1'), true);
    assert.equal(listed('10.0.0.6'), false);
  });
});

interface Client {
  socket: Socket;
  closed: boolean;
  data: string;
}

/** A TCP connection from `localAddress` that records what arrives and whether it closed. */
function connect(port: number, localAddress: string, send?: string): Promise<Client> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port, localAddress });
    const client: Client = { socket, closed: false, data: '' };
    socket.on('data', (d: Buffer) => (client.data += d.toString('latin1')));
    socket.on('close', () => (client.closed = true));
    socket.on('error', () => {});
    socket.once('connect', () => {
      if (send) socket.write(send);
      resolve(client);
    });
    socket.once('error', reject);
  });
}

const GET = (path: string) => `GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`;

/**
 * A server with the guard and three routes: /login marks the connection logged in and answers,
 * /stream marks it and streams until the client goes, anything else answers as a stranger.
 */
async function guarded(t: { after: (fn: () => Promise<void> | void) => void }, limits: ConnectionLimits, server: http.Server = http.createServer()) {
  const log = recordingLog();
  const guard = new ConnectionGuard({ log, limits, sweepMs: 50 });
  guard.attach(server);
  const streams = new Set<NodeJS.Timeout>();
  server.on('request', (request: http.IncomingMessage, response: http.ServerResponse) => {
    if (request.url === '/login' || request.url === '/stream') guard.markAuthenticated(request.socket);
    if (request.url === '/stream') {
      response.writeHead(200, { 'content-type': 'text/plain' });
      const timer = setInterval(() => response.write('frame\n'), 50);
      streams.add(timer);
      response.on('close', () => {
        clearInterval(timer);
        streams.delete(timer);
      });
      return;
    }
    response.end('ok');
  });
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => sockets.add(s));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const clients: Client[] = [];
  t.after(async () => {
    for (const c of clients) c.socket.destroy();
    for (const s of sockets) s.destroy();
    for (const timer of streams) clearInterval(timer);
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const port = (server.address() as AddressInfo).port;
  const open = async (localAddress: string, send?: string) => {
    const client = await connect(port, localAddress, send);
    clients.push(client);
    return client;
  };
  return { guard, log, port, open, clients };
}

const WAIT = 10_000;

describe('connection guard on real sockets', () => {
  it('refuses connections beyond the per-address cap, logs the address once, lets other addresses in', async (t) => {
    const { guard, log, open } = await guarded(t, { total: 100, perAddress: 3, idleMs: 60_000 });
    const first = [await open('127.0.0.2'), await open('127.0.0.2'), await open('127.0.0.2')];
    await waitUntil('3 connections tracked', () => guard.stats().open === 3, WAIT);
    const refused = await open('127.0.0.2');
    await waitUntil('the fourth from 127.0.0.2 closed', () => refused.closed, WAIT);
    const more = [await open('127.0.0.2'), await open('127.0.0.2')];
    await waitUntil('the later ones closed too', () => more.every((c) => c.closed), WAIT);
    const other = await open('127.0.0.3', GET('/'));
    await waitUntil('another address is answered', () => other.data.startsWith('HTTP/1.1 200'), WAIT);
    assert.ok(first.every((c) => !c.closed), 'the first three stay open');
    const lines = log.lines.filter((l) => l.includes('Refusing connections'));
    assert.equal(lines.length, 1, `one line for the flood, not one per connection: ${lines.join(' | ')}`);
    assert.match(lines[0] ?? '', /^warn Refusing connections from 127\.0\.0\.2: .*limit per address/);
  });

  it('does not count logged-in connections against their address', async (t) => {
    const { guard, open } = await guarded(t, { total: 100, perAddress: 2, idleMs: 60_000 });
    const viewers = [await open('127.0.0.2', GET('/stream')), await open('127.0.0.2', GET('/stream')), await open('127.0.0.2', GET('/login'))];
    await waitUntil('the logged-in requests answered', () => viewers.every((c) => c.data.startsWith('HTTP/1.1 200')), WAIT);
    const strangers = [await open('127.0.0.2'), await open('127.0.0.2')];
    await waitUntil('5 connections tracked', () => guard.stats().open === 5, WAIT);
    const third = await open('127.0.0.2');
    await waitUntil('the third stranger closed', () => third.closed, WAIT);
    assert.ok([...viewers, ...strangers].every((c) => !c.closed));
    assert.equal(guard.stats().unauthenticated, 2);
  });

  it('at the total cap closes the oldest idle stranger, never a stream, and refuses when only streams are left', async (t) => {
    const { guard, log, open } = await guarded(t, { total: 4, perAddress: 3, idleMs: 60_000 });
    const stream = await open('127.0.0.1', GET('/stream'));
    await waitUntil('the stream flows', () => stream.data.includes('frame'), WAIT);
    const oldest = await open('127.0.0.2');
    await waitUntil('2 tracked', () => guard.stats().open === 2, WAIT);
    const next = [await open('127.0.0.2'), await open('127.0.0.3')];
    await waitUntil('4 tracked', () => guard.stats().open === 4, WAIT);
    // Full: a newcomer from elsewhere gets in, the oldest idle stranger makes room.
    const newcomer = await open('127.0.0.4', GET('/'));
    await waitUntil('the newcomer is answered', () => newcomer.data.startsWith('HTTP/1.1 200'), WAIT);
    await waitUntil('the oldest stranger closed', () => oldest.closed, WAIT);
    assert.ok(next.every((c) => !c.closed), 'only the oldest went');
    assert.ok(log.lines.some((l) => /Too many connections open .*closing the oldest idle/.test(l)), log.lines.join('\n'));

    // Only logged-in streams left: nothing may be closed, so newcomers are refused.
    for (const c of [...next, newcomer]) c.socket.destroy();
    const streams = [await open('127.0.0.2', GET('/stream')), await open('127.0.0.3', GET('/stream')), await open('127.0.0.4', GET('/stream'))];
    await waitUntil('4 streams flow', () => streams.every((c) => c.data.includes('frame')) && guard.stats().open === 4, WAIT);
    const refused = await open('127.0.0.5', GET('/'));
    await waitUntil('the newcomer refused', () => refused.closed, WAIT);
    assert.equal(refused.data, '');
    const before = stream.data.length;
    await waitUntil('the first stream still flows', () => stream.data.length > before, WAIT);
    assert.ok([stream, ...streams].every((c) => !c.closed));
  });

  it('closes connections with nothing in progress: silent, partial headers, keep-alive; keeps a stream', async (t) => {
    const { guard, open } = await guarded(t, { total: 100, perAddress: 10, idleMs: 1000 });
    const stream = await open('127.0.0.1', GET('/stream'));
    const silent = await open('127.0.0.1');
    const partial = await open('127.0.0.1', 'GET / HTTP/1.1\r\nHo');
    const keepAlive = await open('127.0.0.1', GET('/'));
    await waitUntil('silent, partial and keep-alive closed', () => silent.closed && partial.closed && keepAlive.closed, WAIT);
    assert.match(keepAlive.data, /^HTTP\/1\.1 200/, 'answered first, then closed');
    const before = stream.data.length;
    await waitUntil('the stream still flows', () => stream.data.length > before, WAIT);
    assert.equal(stream.closed, false);
    assert.equal(guard.stats().open, 1);
  });

  it('follows HTTPS connections through the handshake: logged-in TLS streams do not count, stalled handshakes close', async (t) => {
    const dir = tempDir();
    const key = join(dir, 'key.pem');
    const cert = join(dir, 'cert.pem');
    await execFileAsync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost']);
    const server = https.createServer({ key: readFileSync(key), cert: readFileSync(cert) });
    const { guard, port, open } = await guarded(t, { total: 100, perAddress: 2, idleMs: 1500 }, server);
    const received: string[] = [];
    const viewer = tls.connect({ socket: net.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.2' }), rejectUnauthorized: false }, () => viewer.write(GET('/stream')));
    t.after(() => viewer.destroy());
    viewer.on('data', (d: Buffer) => received.push(d.toString()));
    viewer.on('error', () => {});
    await waitUntil('the TLS stream flows', () => received.join('').includes('frame'), WAIT);
    // Two strangers (no handshake at all) fill 127.0.0.2's allowance; the stream is not counted.
    const stalled = [await open('127.0.0.2'), await open('127.0.0.2')];
    await waitUntil('3 tracked', () => guard.stats().open === 3, WAIT);
    const third = await open('127.0.0.2');
    await waitUntil('the third stranger refused', () => third.closed, WAIT);
    await waitUntil('the stalled handshakes closed', () => stalled.every((c) => c.closed), WAIT);
    const before = received.join('').length;
    await waitUntil('the TLS stream still flows', () => received.join('').length > before, WAIT);
    assert.equal(viewer.destroyed, false);
  });
});
