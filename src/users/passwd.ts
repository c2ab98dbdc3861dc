// `webcam-server passwd`: flask-cam's password.py, flag for flag. One action per call:
//   -a/--add-user, -m/--modify-user, -d/--delete-user, -c/--check-password (prints True/False),
//   with -u/--user (or the user right after the action flag), -p/--password, -f/--filepath.
// Without -p the password is asked for with no echo on a terminal, or read as one line from
// standard input. Exit codes: 0 done, 1 could not be done (user exists, no such user, wrong
// password for -c), 2 bad usage.
import { read } from 'read';

import {
  checkPassword,
  hashPassword,
  invalidUserName,
  readUsersFile,
  UsersFileError,
  writeUsersFile,
} from './users-file';

export type PasswdAction = 'add' | 'modify' | 'delete' | 'check' | 'list';

export interface PasswdOptions {
  action: PasswdAction;
  user?: string;
  password?: string;
  file: string;
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

export async function runPasswd(options: PasswdOptions, io: PasswdIo = terminalIo): Promise<number> {
  const { action, file } = options;
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

  if (action !== 'check' && problems.length > 0) {
    // Rewriting would drop the unreadable lines: refuse rather than lose anything.
    io.err(`Not changing ${file}: it has lines that cannot be read, and rewriting it would lose them:`);
    for (const problem of problems) io.err(`  ${problem}`);
    io.err('Fix or remove those lines, then run the command again.');
    return EXIT_FAILED;
  }

  const getPassword = async (): Promise<string> => options.password ?? (await io.askPassword('Password: '));

  try {
    switch (action) {
      case 'add': {
        if (users.has(user)) {
          io.err(`User "${user}" already exists in ${file}; use -m to change the password.`);
          return EXIT_FAILED;
        }
        const password = await getPassword();
        if (!password) {
          io.err('Refusing an empty password.');
          return EXIT_FAILED;
        }
        users.set(user, await hashPassword(password));
        await writeUsersFile(file, users);
        io.out(`Added user "${user}" to ${file}.`);
        return EXIT_OK;
      }
      case 'modify': {
        if (!users.has(user)) {
          io.err(`No user "${user}" in ${file}; use -a to add one.`);
          return EXIT_FAILED;
        }
        const password = await getPassword();
        if (!password) {
          io.err('Refusing an empty password.');
          return EXIT_FAILED;
        }
        users.set(user, await hashPassword(password));
        await writeUsersFile(file, users);
        io.out(`Changed the password of "${user}" in ${file}.`);
        return EXIT_OK;
      }
      case 'delete': {
        if (!users.delete(user)) {
          io.err(`No user "${user}" in ${file}.`);
          return EXIT_FAILED;
        }
        await writeUsersFile(file, users);
        io.out(`Deleted user "${user}" from ${file}.`);
        return EXIT_OK;
      }
      case 'check': {
        const hash = users.get(user);
        const password = await getPassword();
        const ok = hash !== undefined && (await checkPassword(password, hash));
        io.out(ok ? 'True' : 'False');
        return ok ? EXIT_OK : EXIT_FAILED;
      }
    }
  } catch (error) {
    const message = error instanceof UsersFileError ? error.message : `Could not update ${file}: ${(error as Error).message}`;
    io.err(message);
    return EXIT_FAILED;
  }
}
