// Behind real nginx (Debian's), as flask-cam ran: the server on a unix socket, nginx in front with
// the site `webcam-server nginx-config` prints and a test TLS certificate. `nginx -t` accepts the
// site; pages, headers and the live stream come through; the server sees the client's address.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { checkNginxOptions, nginxSite } from '../src/web/nginx';
import { basic, execFileAsync, freeTcpPort, recordingLog, sleep, startTestServer, tempDir, waitForExit } from './helpers';

const NGINX = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((path) => existsSync(path));
const skip = NGINX || process.env.CI ? false : 'nginx is not installed (apt-get install nginx)';
const alice = basic('alice', 'wonderland');

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

function request(url: string, options: https.RequestOptions = {}, body?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = https.request(url, { rejectUnauthorized: false, ...options }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Reads a live stream through nginx until `parts` JPEG parts have arrived. */
function readStream(url: string, parts: number): Promise<{ contentType: string; parts: number }> {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { rejectUnauthorized: false, headers: { authorization: alice } }, (res) => {
      let seen = 0;
      let text = '';
      res.setEncoding('latin1');
      res.on('data', (chunk: string) => {
        text += chunk;
        seen = text.split('Content-Type: image/jpeg').length - 1;
        if (text.length > 4_000_000) text = text.slice(-100_000);
        if (seen >= parts) {
          req.destroy();
          resolve({ contentType: String(res.headers['content-type']), parts: seen });
        }
      });
    });
    req.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== 'ECONNRESET') reject(error);
    });
    req.setTimeout(15_000, () => req.destroy(new Error('no frames through nginx within 15 s')));
  });
}

describe('behind nginx', { skip }, () => {
  it('checks the nginx-config flags', () => {
    assert.deepEqual(checkNginxOptions({ port: 9001, serverName: 'cam.example.com', socket: '/run/webcam/webcam.sock' }), []);
    const bad = checkNginxOptions({ port: 0, serverName: 'x;y', cert: '/a.pem', socket: 'relative.sock', upstream: 'nope' });
    assert.equal(bad.length, 5, bad.join('\n'));
    const plain = nginxSite({ port: 80, serverName: 'cam' });
    assert.doesNotMatch(plain, /ssl|Strict-Transport/, 'plain HTTP without a certificate');
    assert.match(plain, /set "web": \{ "trustProxy": true \}/, 'a TCP upstream says how to pass the client address on');
    assert.match(nginxSite({ port: 80, serverName: 'cam', socket: '/run/w.sock' }), /usermod -aG homebridge www-data/, 'a socket says who must be able to open it');
  });

  it('serves pages and the live stream over TLS from the server on a unix socket', async (t) => {
    const dir = tempDir();
    const socket = join(dir, 'webcam.sock');
    const log = recordingLog();
    await startTestServer(t, {
      web: { socket, maxFailedLogins: 0 },
      cameras: [{ name: 'Porch', source: 'testsrc', width: 320, height: 240, fps: 10 }],
      log,
    });

    const cert = join(dir, 'cert.pem');
    const key = join(dir, 'key.pem');
    await execFileAsync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost']);
    const port = await freeTcpPort();
    const cli = join(__dirname, '..', 'src', 'cli.ts');
    const { stdout: site } = await execFileAsync(process.execPath, [
      '--import', 'tsx', cli, 'nginx-config', '--port', String(port), '--server-name', 'localhost', '--socket', socket, '--cert', cert, '--key', key,
    ]);
    writeFileSync(join(dir, 'site.conf'), site);
    for (const temp of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(join(dir, temp));
    const conf = join(dir, 'nginx.conf');
    writeFileSync(
      conf,
      [
        'daemon off;',
        'worker_processes 1;',
        // As root, nginx's workers would run as nobody, who may not open the 0660 socket.
        ...(process.getuid?.() === 0 ? ['user root;'] : []),
        `pid ${join(dir, 'nginx.pid')};`,
        `error_log ${join(dir, 'error.log')} warn;`,
        'events { worker_connections 64; }',
        'http {',
        '  access_log off;',
        ...['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((temp) => `  ${temp === 'body' ? 'client_body' : temp}_temp_path ${join(dir, temp)};`),
        `  include ${join(dir, 'site.conf')};`,
        '}',
        '',
      ].join('\n'),
    );
    const check = await execFileAsync(NGINX!, ['-t', '-p', dir, '-c', conf]);
    assert.match(check.stderr, /syntax is ok[\s\S]*test is successful/);

    const nginx: ChildProcess = spawn(NGINX!, ['-p', dir, '-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
    let errors = '';
    nginx.stderr?.on('data', (chunk: Buffer) => (errors += chunk.toString()));
    t.after(async () => {
      nginx.kill('SIGQUIT');
      await waitForExit(nginx, 5_000);
    });
    const base = `https://localhost:${port}`;
    for (let i = 0; ; i++) {
      const up = await request(`${base}/healthz`).then(
        (answer) => answer.status === 200,
        () => false,
      );
      if (up) break;
      if (i > 100 || nginx.exitCode !== null) throw new Error(`nginx did not come up: ${errors}`);
      await sleep(100);
    }

    const page = await request(`${base}/`, { headers: { authorization: alice } });
    assert.equal(page.status, 200);
    assert.match(page.body.toString(), /<h1>Porch<\/h1>/);
    assert.equal(page.headers['strict-transport-security'], 'max-age=31536000');
    assert.equal((await request(`${base}/`)).status, 401, 'still needs a password');

    const stream = await readStream(`${base}/cameras/porch/stream.mjpg`, 3);
    assert.match(stream.contentType, /^multipart\/x-mixed-replace/);

    // The server sees the client (nginx's X-Forwarded-For), not an empty socket address.
    await request(`${base}/api/cameras`, { headers: { authorization: basic('mallory', 'guess') } });
    assert.ok(log.lines.some((line) => /Failed login for user "mallory" from 127\.0\.0\.1\./.test(line)), log.lines.join('\n'));

    // The Host header keeps nginx's port, so the page's own writes pass the same-origin check
    // (503 here: this camera has nothing to tune), and a foreign page's do not.
    const put = (origin: string) =>
      request(`${base}/api/cameras/porch/controls`, { method: 'PUT', headers: { authorization: alice, origin, 'content-type': 'application/json' } }, '{"Brightness":1}');
    assert.equal((await put(base)).status, 503);
    assert.equal((await put('https://evil.example')).status, 403);
  });
});
