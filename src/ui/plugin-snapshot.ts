// The preview from the running plugin: its web server's snapshot of the camera, read with the
// preview token it wrote into the storage folder. A webcam can be opened by one program at a
// time, and the plugin usually has it open (motion detection keeps the capture running), so
// this is the only way to show a real webcam's picture while the plugin runs.
import http from 'node:http';

import type { WebConfig } from '../config';
import { pluginStorageDir } from '../settings';
import { readPreviewToken } from '../web/preview-token';

/** Where the plugin's web server listens, as this machine reaches it, from its (validated) web settings. */
export function pluginAddress(web: WebConfig): { socketPath: string } | { host: string; port: number } | undefined {
  if (!web.enabled) return undefined;
  if (web.socket) return { socketPath: web.socket };
  const host = web.host === '0.0.0.0' ? '127.0.0.1' : web.host === '::' ? '::1' : web.host;
  return { host, port: web.port };
}

/**
 * The running plugin's snapshot of the camera with id `cameraId` (ConfigResult.cameraIds, the id
 * the plugin gives it), or undefined when the plugin is not running, has no web server, or has no
 * such camera (the caller then grabs a frame itself).
 */
export async function pluginSnapshot(storagePath: string, web: WebConfig, cameraId: string, timeoutMs = 3_000): Promise<Buffer | undefined> {
  const address = pluginAddress(web);
  const token = await readPreviewToken(pluginStorageDir(storagePath));
  if (!address || !token) return undefined;
  const path = `/cameras/${encodeURIComponent(cameraId)}/snapshot.jpg`;
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
