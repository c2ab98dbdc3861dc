// The web users as the Homebridge UI manages them: the same users file the plugin reads
// (`<storage>/webcam-server/users`, or `web.usersFile`), in flask-cam's format, changed one user
// at a time through the same locked change as `webcam-server passwd` (users/user-changes.ts). Names only ever leave this module;
// password hashes never do.
import { constants, promises as fs } from 'node:fs';
import { userInfo } from 'node:os';
import { dirname } from 'node:path';

import type { UserChange } from '../users/user-changes';
import { applyUserChange, checkUserChange, UserChangeError } from '../users/user-changes';
import { BCRYPT_COST, readUsersFile, UsersFileError } from '../users/users-file';
import { UiError } from './ui-error';

/** The users file of a config, as the plugin resolves it under Homebridge. */
export { usersFilePath } from '../settings';

export interface UsersList {
  file: string;
  exists: boolean;
  /** Whether this process can change the file (write into its folder, or create the folder). */
  writable: boolean;
  /** Why it cannot, with the fix; undefined when it can. */
  notWritable?: string;
  users: string[];
  /** Lines that cannot be read; while there are any, nothing is changed. */
  problems: string[];
}

function whoAmI(): string {
  try {
    return userInfo().username;
  } catch {
    return 'homebridge';
  }
}

function notWritableMessage(file: string, error: NodeJS.ErrnoException): string {
  const folder = dirname(file);
  switch (error.code) {
    case 'EACCES':
    case 'EPERM':
      return `The users file ${file} is not writable by ${whoAmI()}, who runs Homebridge: give it the folder (sudo chown -R ${whoAmI()} ${folder}), or set "Users file" under Web server to a file it may write.`;
    case 'EROFS':
      return `The users file ${file} is on a read-only file system: set "Users file" under Web server to a writable place.`;
    case 'ENOTDIR':
    case 'ENOENT':
      return `The users file ${file} cannot be created: a part of the path ${folder} is not a folder. Check "Users file" under Web server.`;
    case 'ENOSPC':
      return `The users file ${file} cannot be written: the disk is full.`;
    default:
      return `The users file ${file} cannot be written (${error.message}).`;
  }
}

/** The first folder of `path` (itself or a parent) that exists. */
async function existingAncestor(path: string): Promise<string> {
  let dir = path;
  for (;;) {
    try {
      await fs.stat(dir);
      return dir;
    } catch {
      const parent = dirname(dir);
      if (parent === dir) return dir;
      dir = parent;
    }
  }
}

/** Why this process cannot make files in `folder` (ENOENT: it does not exist), or undefined when it can. */
async function folderProblem(folder: string): Promise<NodeJS.ErrnoException | undefined> {
  try {
    const stat = await fs.stat(folder);
    if (!stat.isDirectory()) return Object.assign(new Error('not a folder'), { code: 'ENOTDIR' });
    await fs.access(folder, constants.W_OK | constants.X_OK);
    return undefined;
  } catch (error) {
    return error as NodeJS.ErrnoException;
  }
}

async function checkWritable(file: string): Promise<string | undefined> {
  const folder = dirname(file);
  const problem = await folderProblem(folder);
  if (!problem) return undefined;
  if (problem.code !== 'ENOENT') return notWritableMessage(file, problem);
  // The folder does not exist yet: it is made on the first write, if its parent lets us.
  const ancestorProblem = await folderProblem(await existingAncestor(folder));
  return ancestorProblem && notWritableMessage(file, ancestorProblem);
}

export async function listUsers(file: string): Promise<UsersList> {
  const exists = await fs.stat(file).then(
    () => true,
    () => false,
  );
  let parsed: { users: Map<string, string>; problems: string[] } = { users: new Map(), problems: [] };
  if (exists) {
    try {
      parsed = await readUsersFile(file);
    } catch (error) {
      throw new UiError('USERS_UNREADABLE', `${(error as Error).message}. Check that the user running Homebridge may read it.`);
    }
  }
  const notWritable = await checkWritable(file);
  return { file, exists, writable: !notWritable, notWritable, users: [...parsed.users.keys()], problems: parsed.problems };
}

export type { UserChange };

/** UI error codes for a refused change (the page shows the message; the codes stay as they were). */
function uiCode(error: UserChangeError | UsersFileError, change: UserChange): string {
  switch (error.code) {
    case 'PASSWORD_INVALID':
      return change.action !== 'delete' && !change.password ? 'PASSWORD_EMPTY' : 'PASSWORD_INVALID';
    case 'UNREADABLE':
      return 'USERS_UNREADABLE';
    case 'DAMAGED':
      return 'USERS_FILE_DAMAGED';
    case 'FOLDER_MISSING':
    case 'WRITE_FAILED':
      return 'USERS_NOT_WRITABLE';
    case 'LOCKED':
      return 'USERS_LOCKED';
    default:
      return error.code;
  }
}

/** Adds a user, sets a password or deletes a user; answers the new list. */
export async function changeUser(file: string, change: UserChange, cost = BCRYPT_COST): Promise<UsersList> {
  try {
    checkUserChange(change);
  } catch (error) {
    if (error instanceof UserChangeError) throw new UiError(uiCode(error, change), error.message);
    throw error;
  }
  const notWritable = await checkWritable(file);
  if (notWritable) throw new UiError('USERS_NOT_WRITABLE', notWritable);
  try {
    // The Homebridge storage folder exists; its webcam-server folder is made on the first user.
    await applyUserChange(file, change, { cost, createFolder: true });
  } catch (error) {
    if (error instanceof UserChangeError) {
      const message =
        error.code === 'USER_EXISTS'
          ? `There is already a user "${change.name}": change its password instead.`
          : error.code === 'USER_NOT_FOUND'
            ? `There is no user "${change.name}" (any more).`
            : error.message;
      throw new UiError(uiCode(error, change), message);
    }
    if (error instanceof UsersFileError) {
      const message = error.code === 'WRITE_FAILED' && error.cause ? notWritableMessage(file, error.cause as NodeJS.ErrnoException) : error.message;
      throw new UiError(uiCode(error, change), message);
    }
    throw error;
  }
  return listUsers(file);
}
