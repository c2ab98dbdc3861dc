// The users file (flask-cam's format, atomic 0600 writes) and `webcam-server passwd` run as a
// real process with password.py's flags, prompts and exit codes.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, readdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';

import { checkPassword, parseUsers, readUsersFile, serializeUsers, writeUsersFile } from '../src/users/users-file';
import { changeUser } from '../src/ui/users';
import { tempDir, writeUsers } from './helpers';

const FIXTURE = join(__dirname, 'fixtures', 'flask-cam-users');
const CLI = join(__dirname, '..', 'src', 'cli.ts');

/** Runs `webcam-server passwd ...` as a real process; `input` goes to its stdin. */
function passwd(args: string[], input?: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'passwd', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input ?? '');
  });
}

describe('users file', () => {
  it("reads flask-cam's users file and checks its passwords", async () => {
    const { users, problems } = await readUsersFile(FIXTURE);
    assert.deepEqual(problems, []);
    assert.deepEqual([...users.keys()], ['dexter', 'rita']);
    assert.ok(await checkPassword('flask-cam-pass', users.get('dexter')!));
    assert.ok(await checkPassword('s3cret with spaces', users.get('rita')!));
    assert.ok(!(await checkPassword('wrong', users.get('dexter')!)));
  });

  it('writes the file back byte for byte', () => {
    const text = readFileSync(FIXTURE, 'utf8');
    assert.equal(serializeUsers(parseUsers(text).users), text);
  });

  it('writes atomically with mode 0600 and leaves no temp file', async () => {
    const dir = tempDir();
    const file = join(dir, 'users');
    writeFileSync(file, 'old\n', { mode: 0o644 });
    await writeUsersFile(file, parseUsers(readFileSync(FIXTURE, 'utf8')).users);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.deepEqual(readdirSync(dir), ['users']);
    assert.equal(readFileSync(file, 'utf8'), readFileSync(FIXTURE, 'utf8'));
  });

  it('names the line of a corrupt entry and keeps the good ones', () => {
    const good = readFileSync(FIXTURE, 'utf8').split('\n')[0];
    const { users, problems } = parseUsers(`${good}\nno-tab-here\nbob\tbm90IGEgaGFzaA==\n`, 'users');
    assert.deepEqual([...users.keys()], ['dexter']);
    assert.match(problems[0] ?? '', /users line 2: expected "name<TAB>base64\(bcrypt hash\)"/);
    assert.match(problems[1] ?? '', /users line 3 \(user "bob"\): the password field is not a base64-encoded bcrypt hash/);
  });
});

describe('webcam-server passwd', () => {
  it('adds, checks, modifies and deletes a user with password.py flags', async () => {
    const file = join(tempDir(), 'users');
    let r = await passwd(['-a', '-u', 'bob', '-p', 'first', '-f', file]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.match(readFileSync(file, 'utf8'), /^bob\t[A-Za-z0-9+/=]+\n$/);

    r = await passwd(['--check-password', '--user', 'bob', '--password', 'first', '--filepath', file]);
    assert.deepEqual([r.code, r.stdout.trim()], [0, 'True']);
    r = await passwd(['-c', '-u', 'bob', '-p', 'nope', '-f', file]);
    assert.deepEqual([r.code, r.stdout.trim()], [1, 'False']);

    r = await passwd(['-a', '-u', 'bob', '-p', 'again', '-f', file]);
    assert.equal(r.code, 1, 'adding an existing user fails');
    assert.match(r.stderr, /already exists/);

    r = await passwd(['--modify-user', 'bob', '-p', 'second', '-f', file]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await passwd(['-c', '-u', 'bob', '-p', 'second', '-f', file])).stdout.trim(), 'True');

    r = await passwd(['--delete-user', 'bob', '-f', file]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(readFileSync(file, 'utf8'), '');
    r = await passwd(['-d', '-u', 'bob', '-f', file]);
    assert.equal(r.code, 1, 'deleting a missing user fails');
    assert.match(r.stderr, /No user "bob"/);
  });

  it('reads the password from standard input when -p is left out', async () => {
    const file = join(tempDir(), 'users');
    assert.equal((await passwd(['-a', '-u', 'carol', '-f', file], 'from stdin\nignored\n')).code, 0);
    assert.equal((await passwd(['-c', '-u', 'carol', '-f', file], 'from stdin\n')).stdout.trim(), 'True');
  });

  it("checks and changes users in flask-cam's file", async () => {
    const file = join(tempDir(), 'users');
    copyFileSync(FIXTURE, file);
    assert.equal((await passwd(['-c', '-u', 'rita', '-p', 's3cret with spaces', '-f', file])).stdout.trim(), 'True');
    assert.equal((await passwd(['-d', 'dexter', '-f', file])).code, 0);
    const [, rita] = readFileSync(FIXTURE, 'utf8').split('\n');
    assert.ok(rita, "the fixture's second line");
    assert.equal(readFileSync(file, 'utf8'), `${rita}\n`, 'rita untouched');
  });

  it('exits 2 on bad usage', async () => {
    const file = join(tempDir(), 'users');
    assert.equal((await passwd(['-u', 'x', '-p', 'y', '-f', file])).code, 2, 'no action');
    assert.equal((await passwd(['-a', '-m', '-u', 'x', '-p', 'y', '-f', file])).code, 2, 'two actions');
    assert.equal((await passwd(['-a', '-p', 'y', '-f', file])).code, 2, 'no user');
    assert.equal((await passwd(['--bogus'])).code, 2, 'unknown flag');
    assert.equal((await passwd(['-a', '-u', 'a:b', '-p', 'y', '-f', file])).code, 2, 'a colon cannot be in a basic-auth user');
  });

  it('refuses to rewrite a file with unreadable lines, losing nothing', async () => {
    const file = join(tempDir(), 'users');
    const original = `${readFileSync(FIXTURE, 'utf8')}garbage line\n`;
    writeFileSync(file, original);
    const r = await passwd(['-a', '-u', 'new', '-p', 'pw', '-f', file]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /line 3/);
    assert.equal(readFileSync(file, 'utf8'), original);
  });
});

describe('users file under concurrent changes', () => {
  it('20 `passwd -a` at the same time: all 20 users land', async () => {
    const file = join(tempDir(), 'users');
    const runs = await Promise.all(Array.from({ length: 20 }, (_, i) => passwd(['-a', '-u', `u${i + 1}`, '-p', 'p', '-f', file])));
    for (const r of runs) assert.equal(r.code, 0, r.stderr);
    const { users, problems } = await readUsersFile(file);
    assert.deepEqual(problems, []);
    assert.deepEqual([...users.keys()].sort(), Array.from({ length: 20 }, (_, i) => `u${i + 1}`).sort());
    assert.deepEqual(readdirSync(dirname(file)), ['users'], 'no lock or temp file left');
  });

  it('a deletion racing with additions stays deleted: the revoked user cannot log in', async () => {
    const file = join(tempDir(), 'users');
    await writeUsers(file, { mallory: 'old-pass', keeper: 'k' });
    // Each deletion races with three additions started at the same moment.
    const runs = await Promise.all([
      passwd(['-d', 'mallory', '-f', file]),
      passwd(['-a', '-u', 'newbie', '-p', 'n', '-f', file]),
      passwd(['-a', '-u', 'newbie2', '-p', 'n', '-f', file]),
      passwd(['-m', '-u', 'keeper', '-p', 'k2', '-f', file]),
    ]);
    for (const r of runs) assert.equal(r.code, 0, r.stderr);
    const { users } = await readUsersFile(file);
    assert.deepEqual([...users.keys()].sort(), ['keeper', 'newbie', 'newbie2']);
    const check = await passwd(['-c', '-u', 'mallory', '-p', 'old-pass', '-f', file]);
    assert.deepEqual([check.code, check.stdout.trim()], [1, 'False']);
    assert.equal((await passwd(['-c', '-u', 'keeper', '-p', 'k2', '-f', file])).stdout.trim(), 'True');
  });

  it('the Homebridge UI and the CLI changing users at once: every change lands', async () => {
    const storagePath = tempDir();
    const file = join(storagePath, 'webcam-server', 'users');
    const ui = Array.from({ length: 8 }, (_, i) => changeUser(file, { action: 'add', name: `ui${i}`, password: 'x' }, 4));
    const cli = Array.from({ length: 8 }, (_, i) => passwd(['-a', '-u', `cli${i}`, '-p', 'x', '-f', file]));
    await Promise.all(ui);
    for (const r of await Promise.all(cli)) assert.equal(r.code, 0, r.stderr);
    const { users } = await readUsersFile(file);
    assert.equal(users.size, 16, [...users.keys()].join(' '));
  });

  it('a writer killed while it held the lock leaves no lock or temp file behind for the next one', async (t) => {
    const dir = tempDir();
    const file = join(dir, 'users');
    await writeUsers(file, { dexter: 'd' });
    // A real process takes the lock, starts a write and is killed with SIGKILL in the middle.
    const holder = spawn(process.execPath, ['--import', 'tsx', '-e', HOLDER, file], { stdio: ['ignore', 'pipe', 'inherit'] });
    t.after(() => holder.kill('SIGKILL'));
    await new Promise<void>((resolve, reject) => {
      holder.stdout.on('data', (d: Buffer) => d.toString().includes('holding') && resolve());
      holder.once('exit', (code) => reject(new Error(`the lock holder exited early (${code})`)));
    });
    holder.kill('SIGKILL');
    await new Promise((resolve) => holder.once('exit', resolve));
    const leftovers = readdirSync(dir).filter((name) => name !== 'users');
    assert.equal(leftovers.length, 2, `a lock and a temp file are left: ${leftovers.join(' ')}`);
    // Later: both are older than the stale limits (a lock is stale after 10 s, a temp file after a minute).
    const past = new Date(Date.now() - 5 * 60_000);
    for (const name of leftovers) utimesSync(join(dir, name), past, past);

    const r = await passwd(['-a', '-u', 'next', '-p', 'n', '-f', file]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(readdirSync(dir), ['users'], 'the stale lock and temp file are gone');
    assert.deepEqual([...(await readUsersFile(file)).users.keys()], ['dexter', 'next']);
  });
});

/** Takes the users file's lock, starts a write (a temp file as writeUsersFile names it) and waits to be killed. */
const HOLDER = `
const { writeFileSync } = require('node:fs');
const { basename, dirname, join } = require('node:path');
const { updateUsersFile } = require(${JSON.stringify(join(__dirname, '..', 'src', 'users', 'users-file.ts'))});
const file = process.argv[1];
void updateUsersFile(file, () => {
  writeFileSync(join(dirname(file), '.' + basename(file) + '.' + process.pid + '.dead.tmp'), 'half');
  process.stdout.write('holding\\n');
  setInterval(() => {}, 60_000); // alive until killed
  return new Promise(() => {});
});
`;

describe('users: names and passwords that could never work', () => {
  it('refuses passwords longer than bcrypt reads (72 bytes), in the CLI and the UI', async () => {
    const dir = tempDir();
    const file = join(dir, 'users');
    const long = await passwd(['-a', '-u', 'bob', '-p', `${'A'.repeat(72)}x`, '-f', file]);
    assert.equal(long.code, 1);
    assert.match(long.stderr, /73 bytes long; bcrypt uses only the first 72/);
    // 37 accented letters are 74 bytes in UTF-8.
    assert.equal((await passwd(['-a', '-u', 'bob', '-p', 'é'.repeat(37), '-f', file])).code, 1);
    assert.equal((await passwd(['-a', '-u', 'bob', '-p', 'A'.repeat(72), '-f', file])).code, 0, 'exactly 72 bytes is fine');
    assert.equal((await passwd(['-m', '-u', 'bob', '-p', `${'A'.repeat(72)}x`, '-f', file])).code, 1);
    await assert.rejects(changeUser(join(dir, 'ui-users'), { action: 'add', name: 'carol', password: 'B'.repeat(80) }, 4), { code: 'PASSWORD_INVALID', message: /80 bytes long/ });
  });

  it('refuses user names with control characters (basic auth can never send them)', async () => {
    const file = join(tempDir(), 'users');
    const r = await passwd(['-a', '-u', 'bob\u0001', '-p', 'x', '-f', file]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /control characters/);
    await assert.rejects(changeUser(file, { action: 'add', name: 'eve\u007f', password: 'x' }, 4), { code: 'USER_NAME_INVALID' });
  });

  it('ignores a UTF-8 byte-order mark at the start of the file', async () => {
    const file = join(tempDir(), 'users');
    writeFileSync(file, `\uFEFF${readFileSync(FIXTURE, 'utf8')}`);
    assert.deepEqual([...(await readUsersFile(file)).users.keys()], ['dexter', 'rita']);
    assert.equal((await passwd(['-c', '-u', 'dexter', '-p', 'flask-cam-pass', '-f', file])).stdout.trim(), 'True');
  });

  it('says a missing folder does not exist and does not create it (exit 2)', async () => {
    const dir = tempDir();
    const file = join(dir, 'no', 'such', 'dir', 'users');
    const r = await passwd(['-a', '-u', 'bob', '-p', 'x', '-f', file]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /The folder .*no\/such\/dir does not exist/);
    assert.equal(existsSync(join(dir, 'no')), false);
  });
});
