// The users file, in flask-cam's format: one `name<TAB>base64(bcrypt hash)` line per user.
// A flask-cam `users` file works unchanged and the other way round. Writes are atomic
// (a temp file in the same folder, then rename) and leave the file readable by its owner only.
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { basename, dirname, join } from 'node:path';

import bcrypt from 'bcrypt';

/** flask-cam's password.py uses bcrypt's default cost, 12. */
export const BCRYPT_COST = 12;

export type Users = Map<string, string>;

export interface ParsedUsers {
  /** name -> bcrypt hash (`$2b$12$...`, decoded from base64). */
  users: Users;
  /** One message per line that could not be read, naming the line. */
  problems: string[];
}

export class UsersFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsersFileError';
  }
}

const BCRYPT_HASH = /^\$2[abxy]\$\d{2}\$[./A-Za-z0-9]{53}$/;

/** Why a user name cannot be stored (it would break the file or basic auth), or undefined. */
export function invalidUserName(name: string): string | undefined {
  if (!name) return 'the user name is empty';
  if (/[\t\r\n]/.test(name)) return 'a user name cannot contain tabs or line breaks';
  if (name.includes(':')) return 'a user name cannot contain ":" (HTTP basic auth splits on it)';
  if (name.length > 128) return 'the user name is longer than 128 characters';
  return undefined;
}

/** Node's bcrypt checks `$2a$`/`$2b$`; PHP-style `$2y$` hashes are the same algorithm. */
function normalizeHash(hash: string): string {
  return hash.startsWith('$2y$') ? `$2b$${hash.slice(4)}` : hash;
}

export function parseUsers(text: string, file = 'users file'): ParsedUsers {
  const users: Users = new Map();
  const problems: string[] = [];
  text.split('\n').forEach((rawLine, index) => {
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

/** Writes atomically: temp file (mode 0600) in the same folder, fsync, rename over the old one. */
export async function writeUsersFile(path: string, users: Users): Promise<void> {
  const dir = dirname(path);
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  const temp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const handle = await fs.open(temp, 'wx', 0o600);
  try {
    try {
      await handle.writeFile(serializeUsers(users));
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.chmod(temp, 0o600);
    await fs.rename(temp, path);
  } catch (error) {
    // A full disk or a read-only folder: the old file is untouched; leave no temp file either.
    await fs.rm(temp, { force: true });
    throw error;
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
