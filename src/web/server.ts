// The Fastify app factory: connection limits and timeouts, security headers, authentication on
// every route but /healthz, then one plugin per route group. It knows cameras only through their
// FrameHubs.
import { promises as fs } from 'node:fs';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { Server as TlsServer } from 'node:tls';

import helmet from '@fastify/helmet';
import Fastify from 'fastify';
import type { FastifyError, FastifyInstance } from 'fastify';
import type ipaddr from 'ipaddr.js';

import type { Log } from '../log';
import type { AuthOptions } from './auth';
import { authPlugin, inNetworks, parseNetworks, RetryLaterError, urlPath, UsersStore } from './auth';
import { ConnectionGuard, connectionLimits, IDLE_MS, readMaxOpenFiles } from './connection-guard';
import { LoginLockout } from './lockout';
import type { WebCamera } from './cameras';
import { apiRoutes } from './routes/api';
import { controlsRoutes } from './routes/controls';
import { HEALTH_PATH, healthRoutes } from './routes/health';
import { mediaRoutes } from './routes/media';
import { SendQueueProbe } from './send-queue';
import { pageRoutes } from './routes/pages';

export interface WebServerOptions {
  cameras: WebCamera[];
  usersFile: string;
  trustedNetworks?: string[];
  /** Shown in page titles. */
  siteName?: string;
  log: Log;
  /** PEM file paths; HTTPS when set. */
  tls?: { cert: string; key: string };
  onAuthFailure?: AuthOptions['onFailure'];
  /** Failed logins within 10 minutes that lock an address out (0: never), and for how long. */
  maxFailedLogins?: number;
  lockoutMinutes?: number;
  /** Believe X-Forwarded-For from a proxy: true for one proxy in front (nginx), or proxy addresses. */
  trustProxy?: boolean | string[];
  /** Origins allowed to frame the kiosk page. */
  kioskFrameAncestors?: string[];
  /** The Homebridge UI's preview secret (opens snapshots only). */
  previewToken?: string;
  /** Host names a trusted-network request may carry without credentials (DNS-rebinding defence). */
  allowedHosts?: string[];
  /**
   * A live viewer gets the next frame only while its connection has little still unacknowledged:
   * by default as much as its measured rate delivers in 60 ms (MJPEG_QUEUE); a number fixes the
   * limit; 0 turns it off (frames go out as fast as the socket takes them, as before).
   */
  maxUnackedBytes?: number;
}

/**
 * Whether a state-changing request comes from this server's own pages. Browsers say where a
 * request comes from (Sec-Fetch-Site, else Origin); a request with neither is not a page's
 * (curl, scripts) and cannot ride on a browser's saved credentials.
 */
export function isSameOrigin(headers: Record<string, string | string[] | undefined>, host: string): boolean {
  const site = headers['sec-fetch-site'];
  if (typeof site === 'string') return site === 'same-origin' || site === 'none';
  const origin = headers.origin;
  if (origin === undefined) return true;
  if (typeof origin !== 'string') return false;
  try {
    return new URL(origin).host === host;
  } catch {
    return false; // "null" (sandboxed frames, file:) and garbage
  }
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * `trustProxy: true` means one proxy on this machine: its X-Forwarded-For is believed only from
 * the unix socket or loopback, never from a client that connects directly and sends its own.
 */
export function isLocalPeer(address: string | undefined): boolean {
  if (!address) return true; // a unix socket has no peer address
  return /^(127\.|::1$|::ffff:127\.)/.test(address);
}

/** Names proxy-addr (Fastify's trustProxy) accepts for address ranges. */
const PROXY_RANGES: Record<string, string[]> = {
  loopback: ['127.0.0.1/8', '::1/128'],
  linklocal: ['169.254.0.0/16', 'fe80::/10'],
  uniquelocal: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', 'fc00::/7'],
};

/**
 * The peers the connection guard does not limit per address: the unix socket (nginx), and the
 * proxy `trustProxy` believes, whose connections carry every client behind it under one address
 * (it has limits of its own, and opens a connection to us only with a complete request).
 */
export function proxyPeers(trustProxy: WebServerOptions['trustProxy']): (address: string | undefined) => boolean {
  if (trustProxy === true) return isLocalPeer;
  const entries = Array.isArray(trustProxy) ? trustProxy.flatMap((entry) => PROXY_RANGES[entry] ?? [entry]) : [];
  const ranges: Array<[ipaddr.IPv4 | ipaddr.IPv6, number]> = [];
  for (const entry of entries) {
    try {
      ranges.push(...parseNetworks([entry]));
    } catch {
      // Not an address (Fastify refuses those itself); it exempts nobody.
    }
  }
  return (address) => !address || inNetworks(address, ranges);
}

/** Builds the app (not listening yet: use `listen` or `app.inject`). */
export async function buildWebServer(options: WebServerOptions): Promise<FastifyInstance> {
  const https = options.tls
    ? {
        key: await fs.readFile(options.tls.key),
        cert: await fs.readFile(options.tls.cert),
        // A TLS handshake that never finishes holds a descriptor (the guard closes it too).
        handshakeTimeout: IDLE_MS,
      }
    : null;
  const app = Fastify({
    logger: false,
    // Live streams never end on their own: close them when the server closes.
    forceCloseConnections: true,
    // An idle keep-alive connection is closed after 5 s (Fastify's default is 72 s), and a request
    // must arrive whole within 30 s (bodies here are small); responses (streams) are not limited.
    keepAliveTimeout: 5_000,
    requestTimeout: 30_000,
    // No request bodies are large here.
    bodyLimit: 64 * 1024,
    // Behind one proxy (nginx on a unix socket) the client is the last address it appends to
    // X-Forwarded-For; a client's own X-Forwarded-For entries come before it and are ignored.
    trustProxy:
      options.trustProxy === true
        ? (address: string, hop: number) => hop === 0 && isLocalPeer(address)
        : Array.isArray(options.trustProxy) && options.trustProxy.length > 0
          ? options.trustProxy
          : false,
    ...(https ? { https } : {}),
  }) as unknown as FastifyInstance;
  // Request headers within 10 s (Node checks this only once the first byte has arrived; the
  // guard closes connections that send nothing, and caps how many one address may hold).
  app.server.headersTimeout = IDLE_MS;
  const maxOpenFiles = readMaxOpenFiles();
  const limits = connectionLimits(maxOpenFiles);
  const guard = new ConnectionGuard({ log: options.log, limits, exempt: proxyPeers(options.trustProxy) });
  guard.attach(app.server);
  options.log.debug(
    `Connections: at most ${limits.total} open (this process may open ${maxOpenFiles} files), ${limits.perAddress} per address before logging in; ` +
      `closed after ${limits.idleMs / 1000} s without a request in progress.`,
  );

  // Node drops CONNECT requests without a word when nothing handles them: answer them properly.
  app.server.on('connect', (_request, socket: Duplex) => {
    socket.end('HTTP/1.1 405 Method Not Allowed\r\nAllow: GET, HEAD, PUT\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
  });

  app.setErrorHandler((error: FastifyError, request, reply) => {
    const status = error.statusCode ?? 500;
    if (status === 401) {
      return reply.code(401).type('text/plain; charset=utf-8').send('Authentication required.\n');
    }
    if (error instanceof RetryLaterError) {
      return reply
        .code(429)
        .header('Retry-After', String(error.retryAfterSeconds))
        .header('Cache-Control', 'no-store')
        .type('text/plain; charset=utf-8')
        .send(`${error.message}\n`);
    }
    if (error.validation) {
      return reply.code(400).send({ error: 'Bad Request', message: error.message });
    }
    // Errors meant for users (controls unavailable, a tool's refusal) keep their status and words.
    if ((error as { expose?: boolean }).expose) {
      const code = (error as { code?: string }).code;
      const label = status === 503 ? 'Service Unavailable' : status === 502 ? 'Bad Gateway' : status === 403 ? 'Forbidden' : 'Bad Request';
      if (status === 503) void reply.header('Retry-After', '5');
      return reply.code(status).send({ error: label, code, message: error.message });
    }
    if (status >= 500) {
      options.log.error(`${request.method} ${urlPath(request.url)} failed: ${error.stack ?? error.message}`);
      return reply.code(500).send({ error: 'Internal Server Error', message: 'Something went wrong; the server log has details.' });
    }
    return reply.code(status).send({ error: status === 404 ? 'Not Found' : 'Error', message: error.message });
  });

  await app.register(helmet, {
    contentSecurityPolicy: {
      directives: {
        'default-src': ["'self'"],
        // blob: the live page shows MJPEG frames it reads itself, and plays H.264 from a MediaSource.
        'img-src': ["'self'", 'data:', 'blob:'],
        'media-src': ["'self'", 'blob:'],
        'script-src': ["'self'"],
        'style-src': ["'self'"],
        // Plain-HTTP installs on a LAN must keep working: never rewrite requests to https.
        'upgrade-insecure-requests': null,
      },
    },
    // HSTS only when this server itself speaks TLS.
    hsts: Boolean(https),
  });

  await app.register(authPlugin, {
    store: new UsersStore(options.usersFile, options.log),
    trustedNetworks: options.trustedNetworks ?? [],
    publicPaths: [HEALTH_PATH],
    log: options.log,
    onFailure: options.onAuthFailure,
    previewToken: options.previewToken,
    allowedHosts: options.allowedHosts,
    lockout: new LoginLockout({
      maxFailures: options.maxFailedLogins ?? 10,
      windowMs: 10 * 60_000,
      lockMs: (options.lockoutMinutes ?? 15) * 60_000,
    }),
  });

  // A request that got past authentication (credentials, a trusted network, the preview token)
  // makes its connection a logged-in one: no longer counted against its address, never closed to
  // make room. /healthz needs no login, so it does not count: else a flood could ask for it once
  // per connection and escape the per-address limit.
  app.addHook('preHandler', async (request) => {
    if (urlPath(request.url) !== HEALTH_PATH) guard.markAuthenticated(request.raw.socket);
  });

  // Basic-auth credentials ride along with any request a browser makes, even one a foreign page
  // triggers: changes are accepted only from this server's own pages.
  app.addHook('preHandler', async (request, reply) => {
    if (SAFE_METHODS.has(request.method) || isSameOrigin(request.headers, request.host)) return;
    options.log.warn(`Refused a cross-site ${request.method} ${urlPath(request.url)} from ${request.ip} (Origin ${request.headers.origin ?? '-'}).`);
    return reply.code(403).send({ error: 'Forbidden', message: "Cross-site request refused: changes are accepted only from this server's own pages." });
  });

  const siteName = options.siteName ?? 'Webcam Server';
  await app.register(healthRoutes);
  await app.register(apiRoutes, { cameras: options.cameras });
  await app.register(controlsRoutes, { cameras: options.cameras });
  const fixed = options.maxUnackedBytes;
  await app.register(mediaRoutes, {
    cameras: options.cameras,
    log: options.log,
    sendQueue: fixed === 0 ? undefined : new SendQueueProbe(),
    mjpegQueue: fixed ? { defaultBytes: fixed, minBytes: fixed, maxBytes: fixed, seconds: 0 } : undefined,
  });
  await app.register(pageRoutes, { cameras: options.cameras, siteName, kioskFrameAncestors: options.kioskFrameAncestors ?? [] });
  return app;
}

export interface ListenOptions {
  host: string;
  port: number;
  /** A unix socket path (for nginx in front); replaces host and port. */
  socket?: string;
}

/** Removes a socket left by an earlier run; refuses to delete anything that is not a socket. */
async function removeStaleSocket(path: string): Promise<void> {
  let stat;
  try {
    stat = await fs.lstat(path);
  } catch {
    return; // nothing there
  }
  if (!stat.isSocket()) throw new Error(`"web.socket" ${path} exists and is not a socket: choose another path`);
  await fs.rm(path);
}

/** Starts listening; resolves with the address users can open. */
export async function listen(app: FastifyInstance, where: ListenOptions): Promise<string> {
  if (where.socket) {
    await removeStaleSocket(where.socket);
    await app.listen({ path: where.socket });
    await fs.chmod(where.socket, 0o660);
    return `unix:${where.socket}`;
  }
  await app.listen({ host: where.host, port: where.port });
  const { port } = app.server.address() as AddressInfo;
  const scheme = app.server instanceof TlsServer ? 'https' : 'http';
  const wildcard = where.host === '0.0.0.0' || where.host === '::';
  return wildcard ? `${scheme}://localhost:${port} (and every network interface)` : `${scheme}://${where.host.includes(':') ? `[${where.host}]` : where.host}:${port}`;
}
