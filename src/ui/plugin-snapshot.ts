// The preview from the running plugin: its web server's snapshot of the camera, read with the
// preview token it wrote into the storage folder. A webcam can be opened by one program at a
// time, and the plugin usually has it open (motion detection keeps the capture running), so
// this is the only way to show a real webcam's picture while the plugin runs.
import http from 'node:http';
import { join } from 'node:path';

import { slugify } from '../config';
import { readPreviewToken } from '../web/preview-token';
import { DEFAULT_PORT } from '../settings';
import { isRecord } from '../util/is-record';


/** Where the plugin's web server listens, from the config (the saved one is what it runs with). */
export function pluginAddress(config: Record<string, unknown>): { socketPath: string } | { host: string; port: number } | undefined {
  const web = isRecord(config.web) ? config.web : {};
  if (web.enabled === false) return undefined;
  if (typeof web.socket === 'string' && web.socket.trim()) return { socketPath: web.socket.trim() };
  const port = typeof web.port === 'number' && Number.isInteger(web.port) && web.port > 0 ? web.port : DEFAULT_PORT;
  const configured = typeof web.host === 'string' ? web.host.trim() : '';
  const host = !configured || configured === '0.0.0.0' ? '127.0.0.1' : configured === '::' ? '::1' : configured;
  return { host, port };
}

/**
 * The running plugin's snapshot of the camera named `cameraName`, or undefined when the plugin is
 * not running, has no web server, or has no such camera (the caller then grabs a frame itself).
 */
export async function pluginSnapshot(storagePath: string, config: Record<string, unknown>, cameraName: string, timeoutMs = 3_000): Promise<Buffer | undefined> {
  const address = pluginAddress(config);
  const token = await readPreviewToken(join(storagePath, 'webcam-server'));
  if (!address || !token) return undefined;
  const path = `/cameras/${encodeURIComponent(slugify(cameraName))}/snapshot.jpg`;
  return new Promise((resolve) => {
    const request = http.get({ ...address, path, headers: { authorization: `Bearer ${token}` }, timeout: timeoutMs }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolve(response.statusCode === 200 && response.headers['content-type'] === 'image/jpeg' ? Buffer.concat(chunks) : undefined));
      response.on('error', () => resolve(undefined));
    });
    request.on('timeout', () => request.destroy());
    request.on('error', () => resolve(undefined));
  });
}
