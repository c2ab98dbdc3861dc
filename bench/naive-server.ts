// Benchmark child: the naive MJPEG fan-out that many small camera servers use (the pattern of the
// npm `mjpeg-server` package, written here from scratch): plain node:http, and for every frame
// and every client `res.write(header); res.write(jpeg)`, ignoring write()'s return value, so a
// client that reads slowly makes the server buffer every frame for it. Same replay source and the
// same wire format as our server (multipart/x-mixed-replace, each part with Content-Length, no
// chunked encoding). Authentication is a plain string comparison of the Authorization header
// (no bcrypt: the naive server gets the cheaper deal), except with BENCH_NAIVE_AUTH=bcrypt (the
// burst configuration): then it reads the same users file as ours once at start and checks every
// request's password with bcrypt, as a naive server that stores hashes would: no remembered
// logins, no sharing of identical checks, no queue, no lockout. It also serves /snapshot.jpg from
// its latest frame, for comparison. Listens on 127.0.0.1 (BENCH_HOST to change). Started by
// bench/fanout.ts and bench/links.ts.
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

import bcrypt from 'bcrypt';

import { readUsersFile } from '../src/users/users-file';
import { ReplaySource, ReplayStats } from './replay-source';
import { listenHost, runServerChild } from './server-child';

const BOUNDARY = 'naiveframe';
const stats = new ReplayStats();

/** The password check: the header string, or bcrypt against the users file (BENCH_NAIVE_AUTH=bcrypt). */
async function authorizer(authorization: string, usersFile: string): Promise<(req: IncomingMessage) => boolean | Promise<boolean>> {
  const mode = process.env.BENCH_NAIVE_AUTH ?? 'string';
  // Answered synchronously, as before the bcrypt mode existed.
  if (mode === 'string') return (req) => req.headers.authorization === authorization;
  if (mode !== 'bcrypt') throw new Error(`BENCH_NAIVE_AUTH must be "string" or "bcrypt" (got "${mode}")`);
  const { users } = await readUsersFile(usersFile);
  return async (req) => {
    const [, credentials] = /^Basic ([A-Za-z0-9+/=]+)$/.exec(req.headers.authorization ?? '') ?? [];
    if (credentials === undefined) return false;
    const decoded = Buffer.from(credentials, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) return false;
    const hash = users.get(decoded.slice(0, colon));
    return hash !== undefined && (await bcrypt.compare(decoded.slice(colon + 1), hash));
  };
}

runServerChild('naive-server', stats, async ({ frames, authorization, usersFile }) => {
  const allowed = await authorizer(authorization, usersFile);
  const clients = new Set<ServerResponse>();
  let latest: Buffer | undefined;
  const source = new ReplaySource(frames, stats);
  source.on('frame', (jpeg: Buffer) => {
    latest = jpeg;
    for (const res of clients) {
      // The naive pattern: two writes per frame per client, return values ignored.
      res.write(`--${BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: ${jpeg.length}\r\n\r\n`);
      res.write(jpeg);
      res.write('\r\n');
    }
  });

  const handle = (req: IncomingMessage, res: ServerResponse, ok: boolean): void => {
    const path = (req.url ?? '/').split('?', 1)[0];
    if (!ok) {
      res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="naive"', 'Content-Type': 'text/plain' });
      res.end('Authentication required.\n');
      return;
    }
    if (path === '/stream.mjpg') {
      res.useChunkedEncodingByDefault = false;
      res.writeHead(200, {
        'Content-Type': `multipart/x-mixed-replace; boundary=${BOUNDARY}`,
        'Cache-Control': 'no-cache',
        Connection: 'close',
        Pragma: 'no-cache',
      });
      clients.add(res);
      res.once('close', () => clients.delete(res));
      return;
    }
    if (path === '/snapshot.jpg' && latest) {
      res.writeHead(200, { 'Content-Type': 'image/jpeg', 'Content-Length': latest.length, 'Cache-Control': 'no-store' });
      res.end(latest);
      return;
    }
    res.writeHead(404, { 'Content-Type': 'text/plain' });
    res.end('Not found.\n');
  };
  const server = createServer((req, res) => {
    const ok = allowed(req);
    if (typeof ok === 'boolean') handle(req, res, ok);
    else ok.then((verdict) => handle(req, res, verdict), () => handle(req, res, false));
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, listenHost(), resolve);
  });
  source.start();
  return {
    port: (server.address() as AddressInfo).port,
    close: async () => {
      await source.stop();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
});
