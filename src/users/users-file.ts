// The users file, in flask-cam's format: one `name<TAB>base64(bcrypt hash)` line per user.
// A flask-cam `users` file works unchanged and the other way round. Writes are atomic
// (util/atomic-write.ts: a temp file in the same folder, fsync, rename) and leave the file
// readable by its owner only; temp files a killed writer left are removed at the next write.
// Every change is a read-modify-write under an advisory lock (`.users.lock` beside the file), so
// changes made at the same time by the CLI, the Homebridge UI and the server all land.
import { promises as fs } from 'node:fs';
import { basename, dirname, join } from 'node:path';

import bcrypt from 'bcrypt';
import { lock } from 'proper-lockfile';

import { writeFileAtomic } from '../util/atomic-write';

/** flask-cam's password.py uses bcrypt's default cost, 12. */
export const BCRYPT_COST = 12;

export type Users = Map<string, string>;

export interface ParsedUsers {
  /** name -> bcrypt hash (`$2b$12$...`, decoded from base64). */
  users: Users;
  /** One message per line that could not be read, naming the line. */
  problems: string[];
}

/** Why the users file could not be read or changed; `code` lets callers pick their words and exit codes. */
export type UsersFileErrorCode = 'UNREADABLE' | 'FOLDER_MISSING' | 'DAMAGED' | 'LOCKED' | 'WRITE_FAILED';

export class UsersFileError extends Error {
  constructor(
    message: string,
    readonly code: UsersFileErrorCode = 'UNREADABLE',
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'UsersFileError';
  }
}

const BCRYPT_HASH = /^\$2[abxy]\$\d{2}\$[./A-Za-z0-9]{53}$/;

/** Why a user name cannot be stored (it would break the file or basic auth), or undefined. */
export function invalidUserName(name: string): string | undefined {
  if (!name) return 'the user name is empty';
  if (/[\t\r\n]/.test(name)) return 'a user name cannot contain tabs or line breaks';
  // Basic auth carries no control characters (browsers and curl never send them): such a user could never log in.
  // eslint-disable-next-line no-control-regex -- finding control characters is the point
  if (/[\u0000-\u001f\u007f-\u009f]/.test(name)) return 'a user name cannot contain control characters';
  if (name.includes(':')) return 'a user name cannot contain ":" (HTTP basic auth splits on it)';
  if (name.length > 128) return 'the user name is longer than 128 characters';
  return undefined;
}

/** bcrypt reads at most 72 bytes of a password and ignores the rest. */
export const MAX_PASSWORD_BYTES = 72;

/** Why a password cannot be stored, or undefined. */
export function invalidPassword(password: string): string | undefined {
  if (!password) return 'an empty password is refused';
  const bytes = Buffer.byteLength(password, 'utf8');
  if (bytes > MAX_PASSWORD_BYTES) {
    return `the password is ${bytes} bytes long; bcrypt uses only the first ${MAX_PASSWORD_BYTES} and ignores the rest, so choose one of at most ${MAX_PASSWORD_BYTES} bytes (as many letters, fewer with accents or emoji)`;
  }
  return undefined;
}

/** Node's bcrypt checks `$2a$`/`$2b$`; PHP-style `$2y$` hashes are the same algorithm. */
function normalizeHash(hash: string): string {
  return hash.startsWith('$2y$') ? `$2b$${hash.slice(4)}` : hash;
}

export function parseUsers(text: string, file = 'users file'): ParsedUsers {
  const users: Users = new Map();
  const problems: string[] = [];
  // An editor on Windows may start the file with a byte-order mark: it is not part of the first name.
  text.replace(/^\uFEFF/, '').split('\n').forEach((rawLine, index) => {
    const line = rawLine.replace(/\r$/, '');
    if (!line.trim()) return;
    const tab = line.indexOf('\t');
    const where = `${file} line ${index + 1}`;
    if (tab <= 0) {
      problems.push(`${where}: expected "name<TAB>base64(bcrypt hash)"`);
      return;
    }
    const name = line.slice(0, tab);
    const encoded = line.slice(tab + 1).trim();
    const hash = normalizeHash(Buffer.from(encoded, 'base64').toString('latin1'));
    if (!BCRYPT_HASH.test(hash)) {
      problems.push(`${where} (user "${name}"): the password field is not a base64-encoded bcrypt hash`);
      return;
    }
    if (users.has(name)) problems.push(`${where}: user "${name}" appears twice; the later line wins`);
    users.set(name, hash);
  });
  return { users, problems };
}

export function serializeUsers(users: Users): string {
  let text = '';
  for (const [name, hash] of users) text += `${name}\t${Buffer.from(hash, 'latin1').toString('base64')}\n`;
  return text;
}

/** Reads the file; a missing file is an empty user list. */
export async function readUsersFile(path: string): Promise<ParsedUsers> {
  let text: string;
  try {
    text = await fs.readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { users: new Map(), problems: [] };
    throw new UsersFileError(`Cannot read the users file ${path}: ${(error as Error).message}`);
  }
  return parseUsers(text, path);
}

/**
 * Writes atomically (util/atomic-write.ts): temp file (mode 0600) in the same folder, fsync,
 * rename over the old one; temp files a killed writer left are removed first.
 */
export function writeUsersFile(path: string, users: Users): Promise<void> {
  return writeFileAtomic(path, serializeUsers(users), { mode: 0o600 });
}

/** The advisory lock beside the users file (a folder, made and removed by proper-lockfile). */
export function lockPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.lock`);
}

export interface UpdateOptions {
  /** Make the file's folder (mode 0700) when it does not exist; otherwise that is an error. */
  createFolder?: boolean;
  /** A lock older than this is taken over: its holder died (default 10 s; it refreshes it while alive). */
  staleLockMs?: number;
  /** How long to wait for another writer before giving up (default about 15 s). */
  waitMs?: number;
}

/**
 * A locked read-modify-write: takes the lock, reads the file, lets `change` edit the users (or
 * throw to change nothing), writes the result atomically when it differs, and lets go. A file
 * with unreadable lines is not rewritten (that would drop them): it throws DAMAGED.
 */
export async function updateUsersFile<T>(path: string, change: (users: Users) => T | Promise<T>, options: UpdateOptions = {}): Promise<T> {
  const dir = dirname(path);
  try {
    const stat = await fs.stat(dir);
    if (!stat.isDirectory()) throw new UsersFileError(`Cannot write the users file ${path}: ${dir} is not a folder.`, 'FOLDER_MISSING');
  } catch (error) {
    if (error instanceof UsersFileError) throw error;
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT' || !options.createFolder) {
      throw new UsersFileError(
        (error as NodeJS.ErrnoException).code === 'ENOENT'
          ? `The folder ${dir} does not exist: create it first (mkdir -p ${dir}), or give a users file in an existing folder.`
          : `Cannot reach the folder of the users file ${path}: ${(error as Error).message}`,
        'FOLDER_MISSING',
      );
    }
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  }

  const staleMs = options.staleLockMs ?? 10_000;
  const waitMs = options.waitMs ?? 15_000;
  let release: () => Promise<void>;
  try {
    release = await lock(path, {
      realpath: false,
      lockfilePath: lockPathFor(path),
      stale: staleMs,
      // Writers hold the lock for a few milliseconds (passwords are hashed before it is taken).
      retries: { retries: Math.ceil(waitMs / 250), factor: 1.2, minTimeout: 10, maxTimeout: 250, randomize: true },
      // Only possible when a write stalls longer than the stale time; never worth a crash.
      onCompromised: () => undefined,
    });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ELOCKED') {
      throw new UsersFileError(
        `The users file ${path} is being changed by another program and stayed locked for ${Math.round(waitMs / 1000)} s; try again. (If nothing else is running, remove ${lockPathFor(path)}.)`,
        'LOCKED',
        { cause: error },
      );
    }
    throw new UsersFileError(`Cannot lock the users file ${path}: ${(error as Error).message}`, 'WRITE_FAILED', { cause: error });
  }
  try {
    const { users, problems } = await readUsersFile(path);
    if (problems.length > 0) {
      throw new UsersFileError(
        `${path} has lines that cannot be read, and rewriting it would lose them: ${problems.join('; ')}. Fix or remove those lines first.`,
        'DAMAGED',
      );
    }
    const before = serializeUsers(users);
    const result = await change(users);
    if (serializeUsers(users) !== before) {
      try {
        await writeUsersFile(path, users);
      } catch (error) {
        throw new UsersFileError(`Could not write ${path}: ${(error as Error).message}`, 'WRITE_FAILED', { cause: error });
      }
    }
    return result;
  } finally {
    await release().catch(() => undefined);
  }
}

export function hashPassword(password: string, cost = BCRYPT_COST): Promise<string> {
  return bcrypt.hash(password, cost);
}

export function checkPassword(password: string, hash: string): Promise<boolean> {
  return bcrypt.compare(password, hash);
}

/** The cost factor of a bcrypt hash (`$2b$12$...` -> 12). */
export function hashCost(hash: string): number {
  return Number(hash.slice(4, 6)) || BCRYPT_COST;
}
