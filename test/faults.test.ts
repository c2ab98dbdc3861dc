// Faults, with real ffmpeg and real sockets: the capture killed or hung, a camera's source down and
// back, the users file deleted or corrupted, a bad camera entry beside good ones. Viewers resume,
// nobody is locked out, nothing is left running.
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { describe, it } from 'node:test';

import { normalizeConfig } from '../src/config';
import { silentLog } from '../src/log';
import { WebcamRuntime } from '../src/runtime';
import { basic, childProcessesNamed, get, isAlive, MjpegClient, nth, recordingLog, sleep, startTestServer, tempDir, waitUntil, writeUsers } from './helpers';

const alice = basic('alice', 'wonderland');

describe('capture faults', () => {
  it('a killed capture is restarted and the viewer resumes', async (t) => {
    const server = await startTestServer(t);
    const viewer = new MjpegClient(`${server.url}/stream.mjpg`, alice);
    await viewer.open();
    t.after(() => viewer.close());
    await viewer.waitForParts(2);
    const capture = nth(await childProcessesNamed(process.pid, 'ffmpeg'), 0, 'the captures');
    process.kill(capture, 'SIGKILL');
    const before = viewer.count;
    await viewer.waitForParts(before + 5, 15_000);
    const [next] = await childProcessesNamed(process.pid, 'ffmpeg');
    assert.notEqual(next, capture, 'a new capture process');
  });

  it('a capture killed every few seconds is restarted after the first delay each time (it was healthy)', async (t) => {
    const server = await startTestServer(t);
    const hub = server.camera().hub;
    const delays: number[] = [];
    hub.on('restart', ({ delayMs }: { delayMs: number }) => delays.push(delayMs));
    const viewer = new MjpegClient(`${server.url}/stream.mjpg`, alice);
    await viewer.open();
    t.after(() => viewer.close());
    let capture = 0;
    for (let round = 0; round < 3; round++) {
      await viewer.waitForParts(viewer.count + 1, 15_000);
      const streaming = Date.now();
      capture = nth(await childProcessesNamed(process.pid, 'ffmpeg'), 0, 'the captures');
      // Streamed for a few seconds (more than the 3 s that count as healthy), then killed.
      await sleep(Math.max(0, 3_500 - (Date.now() - streaming)));
      process.kill(capture, 'SIGKILL');
      await waitUntil('a new capture', async () => !(await childProcessesNamed(process.pid, 'ffmpeg')).includes(capture), 15_000);
    }
    await viewer.waitForParts(viewer.count + 2, 15_000);
    assert.deepEqual(delays, [500, 500, 500], 'no growing backoff for a camera that streams between deaths');
  });

  it('a hung capture (no frames) is killed by the watchdog and replaced; the viewer resumes', async (t) => {
    const server = await startTestServer(t);
    const viewer = new MjpegClient(`${server.url}/stream.mjpg`, alice);
    await viewer.open();
    t.after(() => viewer.close());
    await viewer.waitForParts(2);
    const capture = nth(await childProcessesNamed(process.pid, 'ffmpeg'), 0, 'the captures');
    process.kill(capture, 'SIGSTOP');
    t.after(() => {
      if (isAlive(capture)) process.kill(capture, 'SIGKILL');
    });
    const before = viewer.count;
    // The stall watchdog gives a capture 5 s without a frame.
    await viewer.waitForParts(before + 5, 20_000);
    await waitUntil('the hung ffmpeg to be gone', () => !isAlive(capture), 5_000);
    assert.equal((await childProcessesNamed(process.pid, 'ffmpeg')).length, 1, 'exactly one capture');
  });
});

describe('users file faults', () => {
  it('keeps the last good users when the file is deleted or corrupted, says so, and takes a fixed file', async (t) => {
    const log = recordingLog();
    const server = await startTestServer(t, { log });
    assert.equal((await get(`${server.url}/api/cameras`, { authorization: alice })).status, 200);

    rmSync(server.usersFile);
    await sleep(300);
    assert.equal((await get(`${server.url}/api/cameras`, { authorization: alice })).status, 200, 'deleted: alice still gets in');
    assert.ok(log.lines.some((l) => /error \[web\] The users file .* is gone; keeping the 1 user\(s\) loaded before\. Restore it/.test(l)), log.lines.join('\n'));

    writeFileSync(server.usersFile, Buffer.from([0xff, 0x00, 0x13, 0x37, 0x0a, 0x66, 0x6f, 0x6f, 0x0a]));
    await sleep(300);
    assert.equal((await get(`${server.url}/api/cameras`, { authorization: alice })).status, 200, 'corrupt: alice still gets in');
    assert.ok(log.lines.some((l) => /has unreadable lines .*keeping the 1 user\(s\)/.test(l)));

    await writeUsers(server.usersFile, { bob: 'builder' });
    await sleep(300);
    assert.equal((await get(`${server.url}/api/cameras`, { authorization: basic('bob', 'builder') })).status, 200, 'a fixed file is taken');
    assert.equal((await get(`${server.url}/api/cameras`, { authorization: alice })).status, 401, 'and replaces the old list');
  });
});

describe('config faults', () => {
  it('a bad camera entry is skipped with a clear problem; a missing source goes offline; the others stream', async (t) => {
    const dir = tempDir();
    const usersFile = `${dir}/users`;
    await writeUsers(usersFile, { alice: 'wonderland' });
    const { config, problems } = normalizeConfig({
      cameras: [
        { name: 'Good', source: 'testsrc', width: 160, height: 120, fps: 5 },
        { name: 'No source' },
        { name: 'Bad source', source: 'ftp:/nope' },
        'not an object',
        { name: 'Unplugged', source: '/dev/video9', width: 160, height: 120, fps: 5 },
      ],
      web: { host: '127.0.0.1', port: 0 },
    });
    assert.equal(config.cameras.length, 2);
    assert.match(problems.join('\n'), /cameras\[1\] \("No source"\) has no "source": set a device such as \/dev\/video0, the word testsrc, or a stream URL .*; this camera is disabled\./);
    assert.match(problems.join('\n'), /cameras\[2\] \("Bad source"\)\.source "ftp:\/nope" must be a device such as \/dev\/video0.*; this camera is disabled\./);
    assert.match(problems.join('\n'), /cameras\[3\] must be an object with at least "name" and "source" \(got "not an object"\); this camera is disabled\./);
    const runtime = new WebcamRuntime({ config, log: silentLog, usersFile, idleGraceMs: 1000 });
    t.after(() => runtime.stop());
    await runtime.start();
    const [address = ''] = runtime.address!.split(' ');
    const base = address.replace('localhost', '127.0.0.1');
    const snapshot = await get(`${base}/cameras/good/snapshot.jpg`, { authorization: alice });
    assert.equal(snapshot.status, 200);
    const missing = await get(`${base}/cameras/unplugged/snapshot.jpg`, { authorization: alice });
    assert.equal(missing.status, 503);
    assert.match(missing.body.toString(), /Camera "Unplugged" has no picture right now: .*(No such file|does not exist|not found)/i);
    const list = await get(`${base}/api/cameras`, { authorization: alice });
    const cameras = JSON.parse(list.body.toString()) as Array<{ id: string; online: boolean }>;
    assert.deepEqual(cameras.map((c) => [c.id, c.online]), [['good', true], ['unplugged', false]]);
  });
});

describe('setup faults the log explains', () => {
  it('says when "videoProcessor" does not exist and which ffmpeg is used instead', async (t) => {
    const dir = tempDir();
    const log = recordingLog();
    const { config } = normalizeConfig({ videoProcessor: '/opt/no/such/ffmpeg', cameras: [], web: { enabled: false } });
    const runtime = new WebcamRuntime({ config, log, usersFile: `${dir}/users` });
    t.after(() => runtime.stop());
    await runtime.start();
    const said = log.lines.find((line) => line.includes('/opt/no/such/ffmpeg'));
    assert.match(said ?? log.lines.join('\n'), /^warn "videoProcessor" \/opt\/no\/such\/ffmpeg was not found or is not executable: using \/\S+ffmpeg instead/);
  });

  it('says that the folder of a unix socket does not exist (not "no permission")', async (t) => {
    const dir = tempDir();
    await writeUsers(`${dir}/users`, { alice: 'wonderland' });
    const { config } = normalizeConfig({ cameras: [], web: { socket: `${dir}/run/webcam/cam.sock` } });
    const runtime = new WebcamRuntime({ config, log: silentLog, usersFile: `${dir}/users` });
    t.after(() => runtime.stop());
    await assert.rejects(runtime.start(), /The web server could not start: the folder .*\/run\/webcam of "web.socket" does not exist: create it/);
  });
});
