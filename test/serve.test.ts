// `webcam-server serve` as a real process: first user, live stream, clean shutdown with no ffmpeg
// left behind, and clear errors for a missing ffmpeg or a broken config file.
import assert from 'node:assert/strict';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { spawn } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { basic, childProcessesNamed, get, isAlive, MjpegClient, nth, sleep, tempDir, waitForExit } from './helpers';

const CLI = join(__dirname, '..', 'src', 'cli.ts');


function serve(args: string[], options: { env?: NodeJS.ProcessEnv } = {}): ChildProcessWithoutNullStreams & { output: () => string } {
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'serve', ...args], {
    cwd: join(__dirname, '..'),
    env: { ...process.env, ...options.env },
  });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  return Object.assign(child, { output: () => output });
}

async function waitForOutput(child: { output: () => string }, pattern: RegExp, timeoutMs = 15_000): Promise<RegExpMatchArray> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const match = pattern.exec(child.output());
    if (match) return match;
    if (Date.now() > deadline) throw new Error(`no ${pattern} in output:\n${child.output()}`);
    await sleep(50);
  }
}

describe('webcam-server serve', () => {
  it('creates a first user, streams, and shuts down leaving no ffmpeg behind', async (t) => {
    const dir = tempDir();
    const config = join(dir, 'config.json');
    writeFileSync(config, JSON.stringify({ cameras: [{ name: 'Demo', source: 'testsrc', width: 320, height: 240, fps: 10 }], web: { host: '127.0.0.1', port: 0, usersFile: join(dir, 'users') } }));
    const child = serve(['--config', config]);
    t.after(() => child.kill('SIGKILL'));
    // Not a terminal: the first password goes to a file only its owner can read, never to the log.
    const [, note] = await waitForOutput(child, /its password is in (\S+) \(readable by this user only\)/);
    assert.ok(note);
    assert.equal(statSync(note).mode & 0o777, 0o600);
    const [user, password] = readFileSync(note, 'utf8').trim().split('\t');
    assert.equal(user, 'admin');
    assert.ok(password !== undefined);
    const [, url] = await waitForOutput(child, /Web server listening on (http:\/\/127\.0\.0\.1:\d+)/);
    assert.ok(url);
    assert.equal((await get(url + '/api/cameras')).status, 401);

    const viewer = new MjpegClient(`${url}/cameras/demo/stream.mjpg`, basic('admin', password));
    await viewer.open();
    await viewer.waitForParts(3);
    const capture = await childProcessesNamed(child.pid!, 'ffmpeg');
    assert.equal(capture.length, 1);

    child.kill('SIGTERM');
    assert.equal(await waitForExit(child), 0);
    assert.equal(isAlive(nth(capture, 0, 'the captures')), false, 'the capture ffmpeg ended with the server');
    assert.ok(!child.output().includes(password), 'the password is not in the output');
    viewer.close();
  });

  it('says how to get ffmpeg when there is none', async () => {
    const dir = tempDir();
    const config = join(dir, 'config.json');
    writeFileSync(config, JSON.stringify({ videoProcessor: '/opt/none/ffmpeg', cameras: [{ name: 'Demo', source: 'testsrc' }], web: { port: 0 } }));
    const child = serve(['--config', config, '--users', join(dir, 'users')], { env: { PATH: '/nonexistent' } });
    assert.equal(await waitForExit(child), 1);
    assert.match(child.output(), /No usable ffmpeg found .*videoProcessor "\/opt\/none\/ffmpeg".*apt-get install ffmpeg/s);
  });

  it('names a broken config file and exits 1', async () => {
    const dir = tempDir();
    const config = join(dir, 'config.json');
    writeFileSync(config, '{ "cameras": [ ');
    const child = serve(['--config', config]);
    assert.equal(await waitForExit(child), 1);
    assert.match(child.output(), /Cannot read the config file .*config\.json/);
  });
});
