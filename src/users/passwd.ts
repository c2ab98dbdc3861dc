// `webcam-server passwd`: flask-cam's password.py, flag for flag. One action per call:
//   -a/--add-user, -m/--modify-user, -d/--delete-user, -c/--check-password (prints True/False),
//   with -u/--user (or the user right after the action flag), -p/--password, -f/--filepath.
// Without -p the password is asked for with no echo on a terminal, or read as one line from
// standard input. Exit codes: 0 done, 1 could not be done (user exists, no such user, wrong
// password for -c, file damaged or locked), 2 bad usage (no user, a name or password that can
// never work, a folder that does not exist). Changes go through user-changes.ts: locked, so
// several of these running at once all land.
import { promises as fs } from 'node:fs';
import { dirname } from 'node:path';

import { read } from 'read';

import type { UserChange } from './user-changes';
import { applyUserChange, checkUserChange, UserChangeError } from './user-changes';
import { checkPassword, invalidUserName, readUsersFile, UsersFileError } from './users-file';

export type PasswdAction = 'add' | 'modify' | 'delete' | 'check' | 'list';

export interface PasswdOptions {
  action: PasswdAction;
  user?: string;
  password?: string;
  file: string;
  /** bcrypt cost of new hashes (default flask-cam's 12). */
  cost?: number;
}

export interface PasswdIo {
  out: (line: string) => void;
  err: (line: string) => void;
  /** Asks for a password (no echo on a terminal; one line of stdin otherwise). */
  askPassword: (prompt: string) => Promise<string>;
}

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

/** Reads one line of standard input when it is not a terminal. */
async function readLineFromStdin(): Promise<string> {
  let data = '';
  process.stdin.setEncoding('utf8');
  for await (const chunk of process.stdin) {
    data += chunk as string;
    const newline = data.indexOf('\n');
    if (newline !== -1) {
      process.stdin.pause();
      return data.slice(0, newline).replace(/\r$/, '');
    }
  }
  return data.replace(/\r?\n?$/, '');
}

export const terminalIo: PasswdIo = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
  askPassword: (prompt) =>
    process.stdin.isTTY ? read({ prompt, silent: true, replace: '', output: process.stderr }) : readLineFromStdin(),
};

/** Refusals that are bad usage (exit 2) rather than an action that could not be done (exit 1). */
const USAGE_CODES = new Set(['USER_NAME_INVALID', 'FOLDER_MISSING']);

/** Words for a refused change in password.py's terms (the CLI's flags, not the UI's buttons). */
function refusal(error: UserChangeError | UsersFileError, user: string, file: string): string {
  switch (error.code) {
    case 'USER_EXISTS':
      return `User "${user}" already exists in ${file}; use -m to change the password.`;
    case 'USER_NOT_FOUND':
      return `No user "${user}" in ${file}; use -a to add one.`;
    default:
      return error.message;
  }
}

export async function runPasswd(options: PasswdOptions, io: PasswdIo = terminalIo): Promise<number> {
  const { action, file } = options;
  // A folder that does not exist is a typo in -f: say so rather than make it (and read nothing).
  if (action !== 'list' && action !== 'check') {
    const folder = dirname(file);
    const stat = await fs.stat(folder).catch(() => undefined);
    if (!stat?.isDirectory()) {
      io.err(`The folder ${folder} does not exist${stat ? ' (it is not a folder)' : ''}: check -f ${file}, or create the folder first.`);
      return EXIT_USAGE;
    }
  }
  let parsed;
  try {
    parsed = await readUsersFile(file);
  } catch (error) {
    io.err((error as Error).message);
    return EXIT_FAILED;
  }
  const { users, problems } = parsed;

  if (action === 'list') {
    for (const name of users.keys()) io.out(name);
    for (const problem of problems) io.err(`warning: ${problem}`);
    return EXIT_OK;
  }

  const user = options.user;
  if (!user) {
    io.err('No user given: name one with -u USER (or right after the action flag).');
    return EXIT_USAGE;
  }
  const badName = invalidUserName(user);
  if (badName) {
    io.err(`Invalid user name: ${badName}.`);
    return EXIT_USAGE;
  }

  if (action === 'check') {
    const hash = users.get(user);
    const password = options.password ?? (await io.askPassword('Password: '));
    const ok = hash !== undefined && (await checkPassword(password, hash));
    io.out(ok ? 'True' : 'False');
    return ok ? EXIT_OK : EXIT_FAILED;
  }

  // Said before asking for a password; checked again under the lock when the change is made.
  if (problems.length > 0) {
    // Rewriting would drop the unreadable lines: refuse rather than lose anything.
    io.err(`Not changing ${file}: it has lines that cannot be read, and rewriting it would lose them:`);
    for (const problem of problems) io.err(`  ${problem}`);
    io.err('Fix or remove those lines, then run the command again.');
    return EXIT_FAILED;
  }
  if (action === 'add' && users.has(user)) {
    io.err(refusal(new UserChangeError('USER_EXISTS', ''), user, file));
    return EXIT_FAILED;
  }
  if (action !== 'add' && !users.has(user)) {
    io.err(refusal(new UserChangeError('USER_NOT_FOUND', ''), user, file));
    return EXIT_FAILED;
  }

  try {
    let change: UserChange;
    if (action === 'delete') change = { action: 'delete', name: user };
    else change = { action: action === 'add' ? 'add' : 'password', name: user, password: options.password ?? (await io.askPassword('Password: ')) };
    checkUserChange(change);
    await applyUserChange(file, change, { cost: options.cost });
    const done = { add: `Added user "${user}" to ${file}.`, modify: `Changed the password of "${user}" in ${file}.`, delete: `Deleted user "${user}" from ${file}.` };
    io.out(done[action]);
    return EXIT_OK;
  } catch (error) {
    if (error instanceof UserChangeError || error instanceof UsersFileError) {
      io.err(refusal(error, user, file));
      return USAGE_CODES.has(error.code) ? EXIT_USAGE : EXIT_FAILED;
    }
    io.err(`Could not update ${file}: ${(error as Error).message}`);
    return EXIT_FAILED;
  }
}
