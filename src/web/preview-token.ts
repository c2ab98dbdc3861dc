// A secret the running server shares with the Homebridge UI on the same machine, so the UI's
// preview can take the plugin's own snapshot instead of opening the webcam a second time (which
// fails with "device busy" while the plugin captures). The server writes it at start into its
// state folder, readable by its own user only; it opens snapshots and nothing else.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';

import { writeFileAtomic } from '../util/atomic-write';

export const PREVIEW_TOKEN_FILE = 'preview-token';

/** Writes a new token (mode 0600, atomically) and returns it. */
export async function writePreviewToken(dir: string): Promise<string> {
  const token = randomBytes(32).toString('base64url');
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  await writeFileAtomic(join(dir, PREVIEW_TOKEN_FILE), `${token}\n`, { mode: 0o600 });
  return token;
}

/** The token the running server wrote into `dir`, if any. */
export async function readPreviewToken(dir: string): Promise<string | undefined> {
  try {
    const token = (await fs.readFile(join(dir, PREVIEW_TOKEN_FILE), 'utf8')).trim();
    return token || undefined;
  } catch {
    return undefined;
  }
}

/** Whether an Authorization header carries the token (compared in constant time). */
export function carriesToken(authorization: string | undefined, token: string): boolean {
  if (!authorization?.startsWith('Bearer ')) return false;
  const digest = (text: string) => createHash('sha256').update(text).digest();
  return timingSafeEqual(digest(authorization.slice('Bearer '.length).trim()), digest(token));
}

/** The only requests the token opens: reading a snapshot. */
export function isSnapshotRequest(method: string, path: string): boolean {
  return (method === 'GET' || method === 'HEAD') && /^\/(cameras\/[^/]+\/)?snapshot\.jpg$/.test(path);
}
