// Authentication and bad input, through app.inject and over real sockets: every route but
// /healthz needs credentials; users added while the server runs can log in; flask-cam's users
// file works; trusted networks skip the check; malformed requests get 4xx, never a 500.
import assert from 'node:assert/strict';
import { copyFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { checkPassword, hashCost } from '../src/users/users-file';
import { UsersStore, CredentialVerifier } from '../src/web/auth';
import { silentLog } from '../src/log';
import { basic, execFileAsync, get, MjpegClient, startTestServer, tempDir, writeUsers } from './helpers';

const PAGE_ROUTES = ['/', '/cameras/test-cam/', '/cameras/test-cam', '/kiosk', '/cameras/test-cam/kiosk', '/api/cameras', '/static/app.js', '/static/style.css'];
const SNAPSHOT_ROUTES = ['/snapshot.jpg', '/cameras/test-cam/snapshot.jpg'];
const STREAM_ROUTES = ['/stream.mjpg', '/stream', '/cameras/test-cam/stream.mjpg'];
const ALL_ROUTES = [...PAGE_ROUTES, ...SNAPSHOT_ROUTES, ...STREAM_ROUTES, '/api/cameras/test-cam/controls', '/static/controls.js', '/no/such/route'];

describe('authentication', () => {
  it('answers 401 with a Basic challenge on every route but /healthz', async (t) => {
    // Hundreds of failures from one address here: without the lockout, to see every 401.
    const { app } = await startTestServer(t, { web: { maxFailedLogins: 0 } });
    const attempts: Array<[string, string | undefined]> = [
      ['no credentials', undefined],
      ['wrong password', basic('alice', 'wrong')],
      ['unknown user', basic('mallory', 'wonderland')],
      ['empty user', basic('', '')],
      ['malformed header', 'Basic !!!not-base64!!!'],
      ['no colon', `Basic ${Buffer.from('alice').toString('base64')}`],
      ['other scheme', 'Bearer abc'],
      ['control characters', `Basic ${Buffer.from('alice:\u0000x').toString('base64')}`],
    ];
    for (const url of ALL_ROUTES) {
      for (const [what, authorization] of attempts) {
        const res = await app.inject({ url, headers: authorization ? { authorization } : {} });
        assert.equal(res.statusCode, 401, `${url} with ${what}`);
        assert.match(String(res.headers['www-authenticate']), /^Basic realm="Webcam Server"/, `${url} with ${what}`);
      }
    }
    const health = await app.inject({ url: '/healthz' });
    assert.deepEqual([health.statusCode, health.body], [200, 'ok']);
  });

  it('answers 200 on every route with a valid user, over a real socket', async (t) => {
    const { url } = await startTestServer(t);
    const auth = { authorization: basic('alice', 'wonderland') };
    for (const path of [...PAGE_ROUTES, ...SNAPSHOT_ROUTES]) {
      const res = await get(url + path, auth);
      assert.equal(res.status, 200, path);
    }
    for (const path of STREAM_ROUTES) {
      const viewer = new MjpegClient(url + path, auth.authorization);
      await viewer.open();
      assert.equal(viewer.status, 200, path);
      await viewer.waitForParts(1);
      viewer.close();
    }
  });

  it('lets a user added with the CLI log in without a restart', async (t) => {
    const { app, usersFile } = await startTestServer(t);
    const auth = { authorization: basic('newcomer', 'hello there') };
    assert.equal((await app.inject({ url: '/api/cameras', headers: auth })).statusCode, 401);
    const cli = join(__dirname, '..', 'src', 'cli.ts');
    await execFileAsync(process.execPath, ['--import', 'tsx', cli, 'passwd', '-a', '-u', 'newcomer', '-p', 'hello there', '-f', usersFile]);
    let status = 0;
    for (let i = 0; i < 20 && status !== 200; i++) {
      status = (await app.inject({ url: '/api/cameras', headers: auth })).statusCode;
      if (status !== 200) await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(status, 200);
    // ...and a deleted user is locked out at once, even though their login was remembered.
    await execFileAsync(process.execPath, ['--import', 'tsx', cli, 'passwd', '-d', 'newcomer', '-f', usersFile]);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal((await app.inject({ url: '/api/cameras', headers: auth })).statusCode, 401);
  });

  it("accepts flask-cam's users file as it is", async (t) => {
    const { app, usersFile } = await startTestServer(t);
    copyFileSync(join(__dirname, 'fixtures', 'flask-cam-users'), usersFile);
    await new Promise((r) => setTimeout(r, 300));
    const ok = await app.inject({ url: '/api/cameras', headers: { authorization: basic('rita', 's3cret with spaces') } });
    assert.equal(ok.statusCode, 200);
    const old = await app.inject({ url: '/api/cameras', headers: { authorization: basic('alice', 'wonderland') } });
    assert.equal(old.statusCode, 401, 'the file was replaced');
  });

  it('lets trusted networks in without credentials, and only them', async (t) => {
    const { app } = await startTestServer(t, { web: { trustedNetworks: ['192.168.1.0/24', '::1'] } });
    assert.equal((await app.inject({ url: '/api/cameras', remoteAddress: '192.168.1.77' })).statusCode, 200);
    assert.equal((await app.inject({ url: '/api/cameras', remoteAddress: '::ffff:192.168.1.77' })).statusCode, 200);
    assert.equal((await app.inject({ url: '/api/cameras', remoteAddress: '::1' })).statusCode, 200);
    assert.equal((await app.inject({ url: '/api/cameras', remoteAddress: '192.168.2.1' })).statusCode, 401);
    assert.equal((await app.inject({ url: '/api/cameras', remoteAddress: '10.0.0.1' })).statusCode, 401);
  });

  it('remembers a verified login (one bcrypt), but only while the stored hash is unchanged', async () => {
    const dir = tempDir();
    const store = new UsersStore(join(dir, 'users'), silentLog);
    await writeUsers(store.path, { alice: 'wonderland' });
    const checked: string[] = [];
    const verifier = new CredentialVerifier(store, {
      check: (password, hash) => {
        checked.push(hash);
        return checkPassword(password, hash);
      },
    });
    assert.equal(await verifier.verify('alice', 'wonderland'), true);
    assert.equal(await verifier.verify('alice', 'wonderland'), true);
    assert.equal(await verifier.verify('alice', 'wonderland'), true);
    assert.equal(checked.length, 1, 'three requests, one bcrypt');
    assert.equal(await verifier.verify('alice', 'Wonderland'), false);
    assert.equal(await verifier.verify('alice', 'Wonderland'), false);
    assert.equal(checked.length, 3, 'a wrong password is never remembered');
    await writeUsers(store.path, { alice: 'changed' });
    await store.refresh(true);
    assert.equal(await verifier.verify('alice', 'wonderland'), false, 'a changed password voids the remembered login');
    assert.equal(await verifier.verify('alice', 'changed'), true);
  });

  it('does the same bcrypt work for an unknown user as for a wrong password', async () => {
    const dir = tempDir();
    const store = new UsersStore(join(dir, 'users'), silentLog);
    await writeUsers(store.path, { alice: 'wonderland', bob: 'builder' }); // both at cost 4
    const checked: string[] = [];
    const verifier = new CredentialVerifier(store, {
      check: (password, hash) => {
        checked.push(hash);
        return checkPassword(password, hash);
      },
    });
    assert.equal(await verifier.verify('mallory', 'wonderland'), false);
    assert.equal(await verifier.verify('alice', 'wrong'), false);
    assert.equal(checked.length, 2, 'one bcrypt comparison each');
    const [first, second] = checked;
    assert.ok(first !== undefined && second !== undefined);
    assert.equal(hashCost(first), hashCost(second), 'against a hash of the same cost');
    assert.equal(await verifier.verify('mallory', 'wonderland'), false);
    assert.equal(checked.length, 3, 'an unknown user is never remembered either');
  });
});

describe('HTTPS', () => {
  it('serves over TLS with web.tls, still behind the password', async (t) => {
    const dir = tempDir();
    const key = join(dir, 'key.pem');
    const cert = join(dir, 'cert.pem');
    await execFileAsync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost']);
    const { runtime, port } = await startTestServer(t, { web: { tls: { cert, key } } });
    assert.match(runtime.address ?? '', /^https:\/\/127\.0\.0\.1:\d+$/);
    const fetchTls = (authorization?: string) =>
      new Promise<number>((resolve, reject) => {
        https
          .get({ host: '127.0.0.1', port, path: '/api/cameras', rejectUnauthorized: false, headers: authorization ? { authorization } : {} }, (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          })
          .on('error', reject);
      });
    assert.equal(await fetchTls(), 401);
    assert.equal(await fetchTls(basic('alice', 'wonderland')), 200);
  });
});

describe('unix socket', () => {
  it('listens on web.socket for a proxy in front, still behind the password', async (t) => {
    const socketPath = join(tempDir(), 'webcam.sock');
    const { runtime } = await startTestServer(t, { web: { socket: socketPath } });
    assert.equal(runtime.address, `unix:${socketPath}`);
    const status = (authorization?: string) =>
      new Promise<number>((resolve, reject) => {
        http
          .get({ socketPath, path: '/api/cameras', headers: authorization ? { authorization } : {} }, (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          })
          .on('error', reject);
      });
    assert.equal(await status(), 401);
    assert.equal(await status(basic('alice', 'wonderland')), 200);
  });
});

describe('bad input', () => {
  it('never answers 500 to malformed requests', async (t) => {
    const { app } = await startTestServer(t);
    const auth = { authorization: basic('alice', 'wonderland') };
    const cases: Array<[string, number]> = [
      ['/cameras/nope/', 404],
      ['/cameras/nope/stream.mjpg', 404],
      ['/cameras/nope/snapshot.jpg', 404],
      ['/cameras/nope/kiosk', 404],
      ['/stream.mjpg?fps=abc', 400],
      ['/stream.mjpg?fps=-1', 400],
      ['/stream.mjpg?fps=0', 400],
      ['/stream.mjpg?fps=0.001', 400],
      ['/cameras/%E0%A4%A/', 400],
      [`/cameras/${'x'.repeat(300)}/`, 414],
      ['/static/../package.json', 404],
    ];
    for (const [url, status] of cases) {
      const res = await app.inject({ url, headers: auth });
      assert.equal(res.statusCode, status, `${url}: ${res.body}`);
    }
    const head = await app.inject({ method: 'HEAD', url: '/stream.mjpg', headers: auth });
    assert.equal(head.statusCode, 200);
    assert.match(String(head.headers['content-type']), /^multipart\/x-mixed-replace/);
    const notFound = await app.inject({ url: '/cameras/nope/', headers: auth });
    assert.match(notFound.json<{ message: string }>().message, /No camera "nope"\. Cameras: test-cam/);
  });
});
