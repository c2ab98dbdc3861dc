// The Fastify app factory: security headers, authentication on every route but /healthz, then
// one plugin per route group. It knows cameras only through their FrameHubs.
import { promises as fs } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { Server as TlsServer } from 'node:tls';

import helmet from '@fastify/helmet';
import Fastify from 'fastify';
import type { FastifyError, FastifyInstance } from 'fastify';

import type { Log } from '../log';
import type { AuthOptions } from './auth';
import { authPlugin, UsersStore } from './auth';
import type { WebCamera } from './cameras';
import { apiRoutes } from './routes/api';
import { controlsRoutes } from './routes/controls';
import { HEALTH_PATH, healthRoutes } from './routes/health';
import { mediaRoutes } from './routes/media';
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
}

/** Builds the app (not listening yet: use `listen` or `app.inject`). */
export async function buildWebServer(options: WebServerOptions): Promise<FastifyInstance> {
  const https = options.tls
    ? { key: await fs.readFile(options.tls.key), cert: await fs.readFile(options.tls.cert) }
    : null;
  const app = Fastify({
    logger: false,
    // Live streams never end on their own: close them when the server closes.
    forceCloseConnections: true,
    // No request bodies are large here.
    bodyLimit: 64 * 1024,
    ...(https ? { https } : {}),
  }) as unknown as FastifyInstance;

  app.setErrorHandler((error: FastifyError, request, reply) => {
    const status = error.statusCode ?? 500;
    if (status === 401) {
      return reply.code(401).type('text/plain; charset=utf-8').send('Authentication required.\n');
    }
    if (error.validation) {
      return reply.code(400).send({ error: 'Bad Request', message: error.message });
    }
    // Errors meant for users (controls unavailable, a tool's refusal) keep their status and words.
    if ((error as { expose?: boolean }).expose) {
      const code = (error as { code?: string }).code;
      const label = status === 503 ? 'Service Unavailable' : status === 502 ? 'Bad Gateway' : 'Bad Request';
      return reply.code(status).send({ error: label, code, message: error.message });
    }
    if (status >= 500) {
      options.log.error(`${request.method} ${request.url.split('?', 1)[0]} failed: ${error.stack ?? error.message}`);
      return reply.code(500).send({ error: 'Internal Server Error', message: 'Something went wrong; the server log has details.' });
    }
    return reply.code(status).send({ error: status === 404 ? 'Not Found' : 'Error', message: error.message });
  });

  await app.register(helmet, {
    contentSecurityPolicy: {
      directives: {
        'default-src': ["'self'"],
        'img-src': ["'self'", 'data:'],
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
  });

  const siteName = options.siteName ?? 'Webcam Server';
  await app.register(healthRoutes);
  await app.register(apiRoutes, { cameras: options.cameras });
  await app.register(controlsRoutes, { cameras: options.cameras });
  await app.register(mediaRoutes, { cameras: options.cameras });
  await app.register(pageRoutes, { cameras: options.cameras, siteName });
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
