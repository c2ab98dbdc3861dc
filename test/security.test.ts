// The page on the open internet, over real sockets: password guessing is locked out per address,
// a foreign page cannot change anything with the browser's saved credentials, headers keep the
// pages from being framed or cached, a proxy's X-Forwarded-For is read the safe way, and
// malformed or oversized requests get a 4xx, never a 500 or a crash.
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { readFileSync, statSync } from 'node:fs';
import { hostname } from 'node:os';
import { delimiter, join } from 'node:path';
import { describe, it } from 'node:test';

import { checkPassword } from '../src/users/users-file';
import { AuthBusyError, CredentialVerifier, retryWait, UsersStore } from '../src/web/auth';
import { isLocalPeer, isSameOrigin } from '../src/web/server';
import { LoginLockout, lockoutKey } from '../src/web/lockout';
import { silentLog } from '../src/log';
import { allowedHostSet, hostOf, isAllowedHost } from '../src/web/allowed-hosts';
import { basic, get, MjpegClient, recordingLog, startTestServer, tempDir, writeUsers } from './helpers';

const alice = basic('alice', 'wonderland');

/** A raw request over a socket, for what fetch refuses to send; resolves with the status line's code. */
function rawRequest(port: number, text: string): Promise<{ status: number; head: string }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(text));
    let data = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      data += chunk;
      if (data.includes('\r\n\r\n')) socket.end();
    });
    const answer = () => ({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(data)?.[1] ?? 0), head: data.split('\r\n\r\n', 1)[0] ?? '' });
    socket.on('end', () => resolve(answer()));
    // Node's parser answers a request it refuses (431, 400) and closes; request bytes it never read make the
    // kernel reset the connection (Node 24 does so sooner than 20). A reset after the whole head is an answer.
    socket.on('error', (error) => (data.includes('\r\n\r\n') ? resolve(answer()) : reject(error)));
    socket.setTimeout(5_000, () => socket.destroy(new Error('timeout')));
  });
}

/** Sends `count` GET requests pipelined on one connection; resolves with the statuses in order. */
function pipeline(port: number, count: number, authorization: string): Promise<number[]> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const request = `GET /api/cameras HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: ${authorization}\r\n\r\n`;
    socket.write(request.repeat(count - 1) + request.replace('\r\n\r\n', '\r\nConnection: close\r\n\r\n'));
    let data = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => (data += chunk));
    socket.on('end', () => resolve([...data.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => Number(m[1]))));
    socket.on('error', reject);
    socket.setTimeout(20_000, () => socket.destroy(new Error('timeout')));
  });
}

describe('login lockout', () => {
  it('locks an address out after repeated failures, with Retry-After, even for the right password', async (t) => {
    const server = await startTestServer(t, { web: { maxFailedLogins: 3, lockoutMinutes: 2 } });
    for (let i = 0; i < 3; i++) {
      assert.equal((await get(`${server.url}/api/cameras`, { authorization: basic('alice', `guess${i}`) })).status, 401);
    }
    const locked = await get(`${server.url}/api/cameras`, { authorization: alice });
    assert.equal(locked.status, 429);
    assert.equal(locked.headers['retry-after'], '120');
    assert.match(locked.body.toString(), /Too many failed logins from your address\. Try again in 2 minutes\./);
    assert.equal((await get(`${server.url}/healthz`)).status, 200, 'health checks still answer');
  });

  it('counts guesses in flight: a burst of parallel wrong passwords gets no more checks than the limit', async (t) => {
    const server = await startTestServer(t, { web: { maxFailedLogins: 5 } });
    const burst = await Promise.all(
      Array.from({ length: 40 }, (_, i) => get(`${server.url}/api/cameras`, { authorization: basic('alice', `guess${i}`) })),
    );
    const statuses = burst.map((r) => r.status);
    assert.equal(statuses.filter((s) => s === 401).length, 5, `only 5 passwords were checked: ${statuses.join(',')}`);
    assert.equal(statuses.filter((s) => s === 429).length, 35);
    const refused = burst.find((r) => r.status === 429);
    assert.match(refused?.body.toString() ?? '', /different logins from your address are being checked at once\. Try again in 2 seconds/, 'nothing had failed yet when these were refused');
    assert.equal(refused?.headers['retry-after'], '2');
    const locked = await get(`${server.url}/api/cameras`, { authorization: alice });
    assert.equal(locked.status, 429, 'and the address is locked out now');
    assert.match(locked.body.toString(), /Too many failed logins/);
  });

  it('lets many correct logins in at once: fresh ones share one check, remembered ones skip the lockout', async (t) => {
    const server = await startTestServer(t, { web: { maxFailedLogins: 3 } });
    // Two failures first: one more would lock the address out.
    for (const guess of ['nope1', 'nope2']) assert.equal((await get(`${server.url}/api/cameras`, { authorization: basic('alice', guess) })).status, 401);
    const fresh = await Promise.all(Array.from({ length: 30 }, () => get(`${server.url}/api/cameras`, { authorization: alice })));
    assert.deepEqual(
      fresh.map((r) => r.status),
      Array.from({ length: 30 }, () => 200),
    );
    // 50 requests pipelined on one connection, with the login remembered now.
    const pipelined = await pipeline(server.port, 50, alice);
    assert.deepEqual(pipelined, Array.from({ length: 50 }, () => 200));
    // The two failures were forgotten by the good login: three more are needed to lock it out.
    for (const guess of ['nope3', 'nope4']) assert.equal((await get(`${server.url}/api/cameras`, { authorization: basic('alice', guess) })).status, 401);
    assert.equal((await get(`${server.url}/api/cameras`, { authorization: alice })).status, 200);
  });

  it('runs one bcrypt check for identical logins arriving together, and none for a remembered one', async () => {
    const dir = tempDir();
    const file = join(dir, 'users');
    await writeUsers(file, { alice: 'wonderland' });
    let checks = 0;
    const counting = async (password: string, hash: string) => {
      checks++;
      await new Promise((resolve) => setTimeout(resolve, 50));
      return checkPassword(password, hash);
    };
    const verifier = new CredentialVerifier(new UsersStore(file, silentLog), { check: counting, maxConcurrent: 2, maxWaiting: 2 });
    const gates: string[] = [];
    const gate = { begin: () => void gates.push('begin'), finish: (outcome: string) => void gates.push(outcome) };
    const together = await Promise.all(Array.from({ length: 50 }, () => verifier.check('alice', 'wonderland', gate)));
    assert.equal(checks, 1, 'fifty logins, one bcrypt');
    assert.ok(together.every((v) => v.ok));
    assert.equal(together.filter((v) => v.checked).length, 1);
    assert.deepEqual(gates, ['begin', 'ok'], 'the lockout saw one check');
    assert.equal((await verifier.check('alice', 'wonderland', gate)).ok, true);
    assert.equal(checks, 1, 'remembered: no bcrypt');
    assert.deepEqual(gates, ['begin', 'ok'], 'and no lockout');
    const wrong = await Promise.all(Array.from({ length: 20 }, () => verifier.check('alice', 'guess', gate)));
    assert.equal(checks, 2);
    assert.ok(wrong.every((v) => !v.ok));
    assert.deepEqual(gates, ['begin', 'ok', 'begin', 'failed'], 'one guess, one failure');
  });

  it('says in Retry-After what the message says', () => {
    assert.deepEqual(retryWait(1), { seconds: 1, words: '1 second' });
    assert.deepEqual(retryWait(2_000), { seconds: 2, words: '2 seconds' });
    assert.deepEqual(retryWait(61_500), { seconds: 62, words: '62 seconds' });
    assert.deepEqual(retryWait(120_000), { seconds: 120, words: '2 minutes' });
    assert.deepEqual(retryWait(14 * 60_000 + 1), { seconds: 900, words: '15 minutes' });
  });

  it('runs at most two bcrypt checks at once and refuses a flood beyond the queue (503)', async () => {
    const dir = tempDir();
    let running = 0;
    let most = 0;
    const slowCheck = async () => {
      running++;
      most = Math.max(most, running);
      await new Promise((resolve) => setTimeout(resolve, 20));
      running--;
      return false;
    };
    const verifier = new CredentialVerifier(new UsersStore(join(dir, 'users'), silentLog), { check: slowCheck, maxConcurrent: 2, maxWaiting: 5 });
    const results = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => verifier.verify('nobody', `p${i}`)));
    assert.equal(most, 2);
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 7);
    assert.ok(results.filter((r) => r.status === 'rejected').every((r) => (r).reason instanceof AuthBusyError));
  });

  it('counts IPv6 clients by /64 and believes X-Forwarded-For only from a local proxy', () => {
    assert.equal(lockoutKey('2001:db8:1:2:aaaa::1'), lockoutKey('2001:db8:1:2:bbbb::9'));
    assert.notEqual(lockoutKey('2001:db8:1:2::1'), lockoutKey('2001:db8:1:3::1'));
    assert.equal(lockoutKey('::ffff:192.0.2.4'), '192.0.2.4');
    assert.equal(lockoutKey('192.0.2.4'), '192.0.2.4');
    assert.equal(isLocalPeer(undefined), true, 'a unix socket');
    assert.equal(isLocalPeer('127.0.0.1'), true);
    assert.equal(isLocalPeer('::1'), true);
    assert.equal(isLocalPeer('::ffff:127.0.0.1'), true);
    assert.equal(isLocalPeer('203.0.113.9'), false);
    assert.equal(isLocalPeer('192.168.1.5'), false);
  });

  it('forgets failures after a good login, and counts within the window only', () => {
    const lockout = new LoginLockout({ maxFailures: 3, windowMs: 60_000, lockMs: 300_000 });
    lockout.fail('a', 0);
    lockout.fail('a', 1);
    lockout.succeed('a', 2);
    assert.equal(lockout.fail('a', 3), 0);
    assert.equal(lockout.fail('a', 4), 0);
    assert.equal(lockout.fail('a', 70_000), 0, 'the first two left the window');
    assert.equal(lockout.fail('a', 70_001), 0);
    assert.equal(lockout.fail('a', 70_002), 300_000);
    assert.equal(lockout.lockedFor('a', 70_003), 299_999);
    assert.equal(lockout.lockedFor('b', 70_003), 0, 'other addresses are not affected');
    assert.equal(lockout.lockedFor('a', 370_002), 0, 'the lockout ends');
    const off = new LoginLockout({ maxFailures: 0, windowMs: 1, lockMs: 1 });
    for (let i = 0; i < 100; i++) assert.equal(off.fail('a', i), 0);
    const small = new LoginLockout({ maxFailures: 2, windowMs: 1000, lockMs: 1000, maxAddresses: 10 });
    for (let i = 0; i < 1000; i++) small.fail(`10.0.${i >> 8}.${i & 255}`, 0);
    assert.ok(small.trackedAddresses <= 10, 'bounded memory');
  });

  it('behind a proxy, locks out the client nginx names (the last X-Forwarded-For hop), not a spoofed one', async (t) => {
    const server = await startTestServer(t, { web: { maxFailedLogins: 2, trustProxy: true } });
    const as = (client: string, spoof = '1.1.1.1') => ({ 'x-forwarded-for': `${spoof}, ${client}` });
    for (const spoof of ['9.9.9.9', '8.8.8.8']) {
      await get(`${server.url}/api/cameras`, { ...as('203.0.113.5', spoof), authorization: basic('alice', 'nope') });
    }
    assert.equal((await get(`${server.url}/api/cameras`, { ...as('203.0.113.5'), authorization: alice })).status, 429, 'the client is locked out whatever it puts first');
    assert.equal((await get(`${server.url}/api/cameras`, { ...as('198.51.100.9'), authorization: alice })).status, 200, 'another client is not');
  });
});

describe("the Homebridge UI's preview token", () => {
  it('opens snapshots and nothing else, and only the right token', async (t) => {
    const stateDir = tempDir();
    const server = await startTestServer(t, { stateDir });
    const token = readFileSync(join(stateDir, 'preview-token'), 'utf8').trim();
    assert.equal((statSync(join(stateDir, 'preview-token')).mode & 0o777).toString(8), '600');
    const bearer = { authorization: `Bearer ${token}` };
    const snapshot = await get(`${server.url}/cameras/test-cam/snapshot.jpg`, bearer);
    assert.equal(snapshot.status, 200);
    assert.equal(snapshot.headers['content-type'], 'image/jpeg');
    assert.equal((await get(`${server.url}/snapshot.jpg`, bearer)).status, 200);
    for (const path of ['/', '/api/cameras', '/stream.mjpg', '/kiosk', '/cameras/test-cam/', '/static/app.js', '/snapshot.jpg/..', '/cameras/test-cam/snapshot.jpg?x=/api']) {
      const res = await get(server.url + path, bearer);
      assert.ok(path.includes('?x=') ? res.status === 200 : res.status === 401 || res.status === 404, `${path}: ${res.status}`);
    }
    assert.equal((await get(`${server.url}/snapshot.jpg`, { authorization: `Bearer ${token}x` })).status, 401);
    assert.equal((await get(`${server.url}/snapshot.jpg`, { authorization: `Basic ${token}` })).status, 401);
    const put = await fetch(`${server.url}/api/cameras/test-cam/controls`, { method: 'PUT', headers: { ...bearer, 'content-type': 'application/json' }, body: '{"Brightness":1}' });
    assert.equal(put.status, 401);
  });
});

describe('cross-site requests', () => {
  it('decides from Sec-Fetch-Site, else Origin', () => {
    const host = 'cam.example.com:8181';
    assert.equal(isSameOrigin({ 'sec-fetch-site': 'same-origin' }, host), true);
    assert.equal(isSameOrigin({ 'sec-fetch-site': 'none' }, host), true, 'typed into the address bar');
    assert.equal(isSameOrigin({ 'sec-fetch-site': 'cross-site', origin: 'https://cam.example.com:8181' }, host), false);
    assert.equal(isSameOrigin({ 'sec-fetch-site': 'same-site' }, host), false, 'another app on the same site');
    assert.equal(isSameOrigin({ origin: 'http://cam.example.com:8181' }, host), true);
    assert.equal(isSameOrigin({ origin: 'https://evil.example' }, host), false);
    assert.equal(isSameOrigin({ origin: 'null' }, host), false);
    assert.equal(isSameOrigin({}, host), true, 'no browser context: curl, scripts');
  });

  it('refuses a cross-site PUT before any tool runs, and takes a same-origin one', async (t) => {
    const dir = tempDir();
    const saved = process.env.PATH;
    process.env.PATH = `${join(__dirname, 'fixtures', 'controls', 'bin')}${delimiter}${saved}`;
    process.env.FAKE_CONTROLS_DIR = dir;
    t.after(() => {
      process.env.PATH = saved;
    });
    const server = await startTestServer(t, { cameras: [{ name: 'Porch', source: 'testsrc', width: 160, height: 120, fps: 5, controlsDevice: 'video0' }] });
    const put = (headers: Record<string, string>) =>
      fetch(`${server.url}/api/cameras/porch/controls`, {
        method: 'PUT',
        headers: { authorization: alice, 'content-type': 'application/json', ...headers },
        body: JSON.stringify({ Brightness: 99 }),
      });
    const evil = await put({ origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' });
    assert.equal(evil.status, 403);
    assert.match(((await evil.json()) as { message: string }).message, /Cross-site request refused/);
    assert.equal((await put({ origin: 'https://evil.example' })).status, 403, 'Origin alone (older browsers)');
    const own = await put({ origin: server.url, 'sec-fetch-site': 'same-origin' });
    assert.equal(own.status, 200);
  });
});

describe('headers', () => {
  it('keeps pages out of foreign frames and streams out of caches; the kiosk opens only to configured origins', async (t) => {
    const server = await startTestServer(t, { web: { kioskFrameAncestors: ['https://dash.example.com'] } });
    const page = await get(`${server.url}/`, { authorization: alice });
    assert.equal(page.headers['x-frame-options'], 'SAMEORIGIN');
    assert.match(String(page.headers['content-security-policy']), /frame-ancestors 'self'(;|$)/);
    assert.match(String(page.headers['content-security-policy']), /script-src 'self'/);
    assert.equal(page.headers['cache-control'], 'no-store');
    const kiosk = await get(`${server.url}/kiosk`, { authorization: alice });
    assert.equal(kiosk.headers['x-frame-options'], undefined);
    assert.match(String(kiosk.headers['content-security-policy']), /frame-ancestors 'self' https:\/\/dash\.example\.com$/);
    assert.match(String(kiosk.headers['content-security-policy']), /default-src 'self'/, 'the rest of the policy stays');
    const snapshot = await get(`${server.url}/snapshot.jpg`, { authorization: alice });
    assert.equal(snapshot.headers['cache-control'], 'no-store');
    const viewer = new MjpegClient(`${server.url}/stream.mjpg`, alice);
    await viewer.open();
    t.after(() => viewer.close());
    assert.match(String(viewer.headers['cache-control']), /^no-store\b/);
    assert.equal(viewer.headers['x-content-type-options'], 'nosniff');
  });
});

describe('bad input', () => {
  it('answers malformed, oversized and hostile requests with a 4xx and keeps streaming', async (t) => {
    const server = await startTestServer(t, { web: { maxFailedLogins: 0 } });
    const viewer = new MjpegClient(`${server.url}/stream.mjpg`, alice);
    await viewer.open();
    t.after(() => viewer.close());
    await viewer.waitForParts(1);

    const cases: Array<[string, Record<string, string>, number[]]> = [
      ['/api/cameras', { authorization: 'Basic ' + 'A'.repeat(8000) }, [401]],
      ['/api/cameras', { authorization: 'Basic ' + Buffer.from('alice:' + 'x'.repeat(5000)).toString('base64') }, [401]],
      ['/api/cameras', { authorization: 'Basic' }, [401]],
      ['/api/cameras', { authorization: 'Basic ====' }, [401]],
      ['/api/cameras', { authorization: `Basic ${Buffer.from('\u00ff\u00fe:\u0000').toString('base64')}` }, [401]],
      ['/static/../package.json', { authorization: alice }, [400, 403, 404]],
      ['/static/%2e%2e/package.json', { authorization: alice }, [400, 403, 404]],
      ['/static/..%2fpackage.json', { authorization: alice }, [400, 403, 404]],
      ['/static/%2e%2e%2f%2e%2e%2fetc%2fpasswd', { authorization: alice }, [400, 403, 404]],
      ['/stream.mjpg?fps=abc', { authorization: alice }, [400]],
      ['/stream.mjpg?fps=-1', { authorization: alice }, [400]],
      ['/stream.mjpg?fps=1e9', { authorization: alice }, [400]],
      ['/stream.mjpg?fps=0', { authorization: alice }, [400]],
      ['/cameras/nope/stream.mjpg', { authorization: alice }, [404]],
      ['/cameras/' + 'x'.repeat(300) + '/', { authorization: alice }, [400, 414]],
      ['/cameras/%00/', { authorization: alice }, [400, 404]],
      ['/cameras/..%2f..%2f/', { authorization: alice }, [400, 404]],
      ['/api/cameras/nope/controls', { authorization: alice }, [404]],
      ['/api/cameras/test-cam/controls', { authorization: alice }, [503]],
    ];
    for (const [path, headers, expected] of cases) {
      const res = await get(server.url + path, headers);
      assert.ok(expected.includes(res.status), `${path.slice(0, 80)}: ${res.status}, expected ${expected.join('/')}`);
    }
    const traversal = await get(`${server.url}/static/../package.json`, { authorization: alice });
    assert.doesNotMatch(traversal.body.toString(), /"name": "homebridge-webcam-server"/);

    const huge = await rawRequest(server.port, `GET /api/cameras HTTP/1.1\r\nHost: x\r\nAuthorization: ${alice}\r\nX-Big: ${'y'.repeat(20_000)}\r\n\r\n`);
    assert.equal(huge.status, 431, 'oversized headers');
    const longUrl = await rawRequest(server.port, `GET /${'a'.repeat(70_000)} HTTP/1.1\r\nHost: x\r\n\r\n`);
    assert.ok([414, 431].includes(longUrl.status), `oversized URL: ${longUrl.status}`);
    const garbage = await rawRequest(server.port, 'NOT HTTP AT ALL\r\n\r\n');
    assert.equal(garbage.status, 400);
    const badBody = await fetch(`${server.url}/api/cameras/test-cam/controls`, {
      method: 'PUT',
      headers: { authorization: alice, 'content-type': 'application/json' },
      body: '{"a":' + '['.repeat(10_000),
    });
    assert.equal(badBody.status, 400);
    const tooBig = await fetch(`${server.url}/api/cameras/test-cam/controls`, {
      method: 'PUT',
      headers: { authorization: alice, 'content-type': 'application/json' },
      body: JSON.stringify({ a: 'x'.repeat(200_000) }),
    });
    assert.equal(tooBig.status, 413);

    // Still streaming, still answering.
    const before = viewer.count;
    await viewer.waitForParts(before + 3);
    assert.equal((await get(`${server.url}/api/cameras`, { authorization: alice })).status, 200);
  });

  it('never answers 500 to a HEAD, OPTIONS or unknown method', async (t) => {
    const server = await startTestServer(t);
    for (const method of ['HEAD', 'OPTIONS', 'DELETE', 'PATCH', 'POST', 'TRACE', 'PROPFIND']) {
      const status = await new Promise<number>((resolve, reject) => {
        const req = http.request(`${server.url}/api/cameras`, { method, headers: { authorization: alice } }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
        req.end();
      });
      assert.ok(status < 500, `${method}: ${status}`);
    }
  });
});

describe('DNS rebinding with trusted networks', () => {
  it('answers a trusted address without a password only under an IP, its own names or an allowed name', async (t) => {
    const log = recordingLog();
    const server = await startTestServer(t, { web: { trustedNetworks: ['127.0.0.0/8'], allowedHosts: ['camera.example.org'] }, log });
    const as = (host: string, extra: Record<string, string> = {}) => get(`${server.url}/api/cameras`, { host, ...extra });
    for (const host of [`127.0.0.1:${server.port}`, `localhost:${server.port}`, hostname(), `${hostname()}.local:${server.port}`, 'camera.example.org', 'CAMERA.example.org.:8181', `[::1]:${server.port}`]) {
      assert.equal((await as(host)).status, 200, host);
    }
    // A page on evil.example rebinds its name to this server: its requests carry its own name.
    const rebound = await as(`evil.example:${server.port}`);
    assert.equal(rebound.status, 403);
    assert.match(rebound.body.toString(), /does not answer to \\"evil.example\\" without a password.*web\.allowedHosts/);
    assert.equal((await get(`${server.url}/stream.mjpg`, { host: 'evil.example' })).status, 403, 'not the stream either');
    assert.equal((await get(`${server.url}/snapshot.jpg`, { host: 'other.evil.example' })).status, 403);
    // Credentials are not affected: a login works under any name, a wrong one is a failed login.
    assert.equal((await as('evil.example', { authorization: alice })).status, 200);
    assert.equal((await as('evil.example', { authorization: basic('alice', 'nope') })).status, 401);
    assert.equal((await get(`${server.url}/healthz`, { host: 'evil.example' })).status, 200, 'health checks answer anyone');
    const said = log.lines.filter((line) => line.includes('allowedHosts'));
    assert.equal(said.filter((line) => line.includes('"evil.example"')).length, 1, 'said once per name');
    assert.match(said[0] ?? '', /^warn \[web\] Refused a request from the trusted network \(127\.0\.0\.1\) for the host name "evil\.example"/);
  });

  it('reads Host headers and names the way browsers send them', () => {
    const allowed = allowedHostSet(['cam.example.org'], 'pi-cam');
    assert.equal(hostOf('Pi-Cam.local:8181'), 'pi-cam.local');
    assert.equal(hostOf('[fe80::1]:8181'), 'fe80::1');
    assert.equal(isAllowedHost('pi-cam', allowed), true);
    assert.equal(isAllowedHost('pi-cam.local', allowed), true);
    assert.equal(isAllowedHost('192.168.1.20:8181', allowed), true);
    assert.equal(isAllowedHost('[fe80::1]:8181', allowed), true);
    assert.equal(isAllowedHost(undefined, allowed), true, 'HTTP/1.0 without Host: not a browser');
    assert.equal(isAllowedHost('cam.example.org', allowed), true);
    assert.equal(isAllowedHost('x.cam.example.org', allowed), false);
    assert.equal(isAllowedHost('pi-cam.evil.example', allowed), false);
    assert.equal(isAllowedHost('192.168.1.20.nip.io', allowed), false);
  });
});
