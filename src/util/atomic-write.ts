// The one way this package writes a file (the users file, the preview token, the last public IP,
// the CLI's first-password note): a temp file beside it (mode 0600 unless told otherwise), its
// data flushed to disk, then renamed over the old one and the folder flushed too. A reader sees
// the old file or the new one, never half of one; a failed write leaves the old file and no temp
// file behind. Temp files a killed writer left are found by their name and removed later.
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** The temp file of one write of `path`: `.<name>.<pid>.<random>.tmp` in the same folder. */
export function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
}

/** Temp files of writes that never finished (a process killed mid-write) are removed after this long. */
export const STALE_TEMP_MS = 60_000;

export interface AtomicWriteOptions {
  /** The new file's mode (default 0600: readable by its owner only). */
  mode?: number;
}

/**
 * Writes `data` to `path` atomically: temp file, fsync, rename, fsync of the folder. Temp files
 * of `path` older than STALE_TEMP_MS (writers that died) are removed first.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array, options: AtomicWriteOptions = {}): Promise<void> {
  const mode = options.mode ?? 0o600;
  await removeStaleTempFiles(path);
  const temp = tempPathFor(path);
  const handle = await fs.open(temp, 'wx', mode);
  try {
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    // open()'s mode passes through the umask; the file gets exactly the mode asked for.
    await fs.chmod(temp, mode);
    await fs.rename(temp, path);
  } catch (error) {
    // A full disk or a read-only folder: the old file is untouched; leave no temp file either.
    await fs.rm(temp, { force: true });
    throw error;
  }
  await syncFolder(dirname(path));
}

/** Flushes a folder's entries (the rename) to disk; a file system that cannot is left as it is. */
async function syncFolder(dir: string): Promise<void> {
  let handle: fs.FileHandle | undefined;
  try {
    handle = await fs.open(dir, 'r');
    await handle.sync();
  } catch {
    // Some file systems refuse to sync a folder (EINVAL, EISDIR): the rename still happened.
  } finally {
    await handle?.close().catch(() => undefined);
  }
}

/**
 * Removes the temp files of writes of `path` that are older than `maxAgeMs`: left by writers
 * that died mid-write (kill -9, power loss). Answers the paths removed.
 */
export async function removeStaleTempFiles(path: string, maxAgeMs = STALE_TEMP_MS, now = Date.now()): Promise<string[]> {
  const dir = dirname(path);
  const prefix = `.${basename(path)}.`;
  const removed: string[] = [];
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch {
    return removed;
  }
  for (const name of names) {
    if (!name.startsWith(prefix) || !name.endsWith('.tmp')) continue;
    const temp = join(dir, name);
    try {
      const stat = await fs.lstat(temp);
      if (stat.isFile() && now - stat.mtimeMs > maxAgeMs) {
        await fs.rm(temp, { force: true });
        removed.push(temp);
      }
    } catch {
      // Gone already (another writer cleaned it): nothing to do.
    }
  }
  return removed;
}
