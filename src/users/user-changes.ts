// One user change (add, new password, delete) as the CLI (`webcam-server passwd`), the Homebridge
// UI and `serve`'s first user all make it: the name and password checked, the password hashed
// before the users file is locked (bcrypt takes a while; the lock is held for milliseconds), then
// a locked read-modify-write that checks again whether the user exists. Callers turn the error
// codes into their own words and exit codes.
import type { UpdateOptions } from './users-file';
import { BCRYPT_COST, hashPassword, invalidPassword, invalidUserName, updateUsersFile } from './users-file';

export type UserChange = { action: 'add' | 'password'; name: string; password: string } | { action: 'delete'; name: string };

export type UserChangeErrorCode = 'USER_NAME_INVALID' | 'PASSWORD_INVALID' | 'USER_EXISTS' | 'USER_NOT_FOUND';

/** The change cannot be made as asked (the file is fine): a bad name or password, or the user's state. */
export class UserChangeError extends Error {
  constructor(
    readonly code: UserChangeErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'UserChangeError';
  }
}

export interface UserChangeOptions extends UpdateOptions {
  /** bcrypt cost of a new hash (flask-cam's 12 by default; tests use 4). */
  cost?: number;
}

/** Checks the name and password of a change before anything is hashed or locked. */
export function checkUserChange(change: UserChange): void {
  const badName = invalidUserName(change.name);
  if (badName) throw new UserChangeError('USER_NAME_INVALID', `That user name cannot be used: ${badName}.`);
  if (change.action === 'delete') return;
  const badPassword = invalidPassword(change.password);
  if (badPassword) throw new UserChangeError('PASSWORD_INVALID', `That password cannot be used: ${badPassword}.`);
}

/**
 * Makes one change in the users file at `file`. Throws UserChangeError (nothing changed: bad
 * input, user exists or is missing) or UsersFileError (the file could not be read, locked or
 * written; nothing changed either).
 */
export async function applyUserChange(file: string, change: UserChange, options: UserChangeOptions = {}): Promise<void> {
  checkUserChange(change);
  const hash = change.action === 'delete' ? undefined : await hashPassword(change.password, options.cost ?? BCRYPT_COST);
  await updateUsersFile(
    file,
    (users) => {
      const exists = users.has(change.name);
      if (change.action === 'add' && exists) {
        throw new UserChangeError('USER_EXISTS', `User "${change.name}" already exists in ${file}.`);
      }
      if (change.action !== 'add' && !exists) throw new UserChangeError('USER_NOT_FOUND', `There is no user "${change.name}" in ${file}.`);
      if (hash === undefined) users.delete(change.name);
      else users.set(change.name, hash);
    },
    options,
  );
}

/**
 * Adds `name` with a password hashed from `password` only while the file has no users at all
 * (the first user of `serve`); answers whether it did.
 */
export async function addFirstUser(file: string, name: string, password: string, options: UserChangeOptions = {}): Promise<boolean> {
  checkUserChange({ action: 'add', name, password });
  const hash = await hashPassword(password, options.cost ?? BCRYPT_COST);
  return updateUsersFile(
    file,
    (users) => {
      if (users.size > 0) return false;
      users.set(name, hash);
      return true;
    },
    options,
  );
}
