// The users file (flask-cam's format, atomic 0600 writes) and `webcam-server passwd` run as a
// real process with password.py's flags, prompts and exit codes.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFileSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { checkPassword, parseUsers, readUsersFile, serializeUsers, writeUsersFile } from '../src/users/users-file';
import { tempDir } from './helpers';

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

  it('writes atomically with mode 0600 and leaves no temp file', async (t) => {
    const dir = tempDir(t);
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
    assert.match(problems[0], /users line 2: expected "name<TAB>base64\(bcrypt hash\)"/);
    assert.match(problems[1], /users line 3 \(user "bob"\): the password field is not a base64-encoded bcrypt hash/);
  });
});

describe('webcam-server passwd', () => {
  it('adds, checks, modifies and deletes a user with password.py flags', async (t) => {
    const file = join(tempDir(t), 'users');
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

  it('reads the password from standard input when -p is left out', async (t) => {
    const file = join(tempDir(t), 'users');
    assert.equal((await passwd(['-a', '-u', 'carol', '-f', file], 'from stdin\nignored\n')).code, 0);
    assert.equal((await passwd(['-c', '-u', 'carol', '-f', file], 'from stdin\n')).stdout.trim(), 'True');
  });

  it("checks and changes users in flask-cam's file", async (t) => {
    const file = join(tempDir(t), 'users');
    copyFileSync(FIXTURE, file);
    assert.equal((await passwd(['-c', '-u', 'rita', '-p', 's3cret with spaces', '-f', file])).stdout.trim(), 'True');
    assert.equal((await passwd(['-d', 'dexter', '-f', file])).code, 0);
    assert.equal(readFileSync(file, 'utf8'), readFileSync(FIXTURE, 'utf8').split('\n')[1] + '\n', 'rita untouched');
  });

  it('exits 2 on bad usage', async (t) => {
    const file = join(tempDir(t), 'users');
    assert.equal((await passwd(['-u', 'x', '-p', 'y', '-f', file])).code, 2, 'no action');
    assert.equal((await passwd(['-a', '-m', '-u', 'x', '-p', 'y', '-f', file])).code, 2, 'two actions');
    assert.equal((await passwd(['-a', '-p', 'y', '-f', file])).code, 2, 'no user');
    assert.equal((await passwd(['--bogus'])).code, 2, 'unknown flag');
    assert.equal((await passwd(['-a', '-u', 'a:b', '-p', 'y', '-f', file])).code, 2, 'a colon cannot be in a basic-auth user');
  });

  it('refuses to rewrite a file with unreadable lines, losing nothing', async (t) => {
    const file = join(tempDir(t), 'users');
    const original = `${readFileSync(FIXTURE, 'utf8')}garbage line\n`;
    writeFileSync(file, original);
    const r = await passwd(['-a', '-u', 'new', '-p', 'pw', '-f', file]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /line 3/);
    assert.equal(readFileSync(file, 'utf8'), original);
  });
});
