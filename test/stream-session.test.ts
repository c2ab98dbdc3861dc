// StreamSession's lifecycle with a real encoder ffmpeg fed from a testsrc hub: RTCP keeps it
// alive (RTCP only, and a longer wait before the first report), silence ends it (and its ffmpeg),
// an event loop stall with reports waiting does not, stop() leaves nothing behind, reconfigures
// in quick succession leave one encoder, and an encoder spawned beforehand (a warm encoder) is
// adopted with the same handling, its relay closed with it.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import type { Socket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';

import { StreamSession } from '../src/homekit/stream-session';
import { silentLog } from '../src/log';
import { childProcessesNamed, nth, sleep, startTestServer, waitUntil } from './helpers';

/** An encoder stand-in that decodes the frames it gets and throws them away. */
const SINK_ARGS = ['-hide_banner', '-loglevel', 'error', '-f', 'mpjpeg', '-i', 'pipe:0', '-f', 'null', '-'];
/** A stand-in that takes three frames and exits. */
const THREE_FRAMES_ARGS = ['-hide_banner', '-loglevel', 'error', '-f', 'mpjpeg', '-i', 'pipe:0', '-frames:v', '3', '-f', 'null', '-'];

/** A process's command line ('' once it has gone). */
function commandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
  } catch {
    return '';
  }
}

function boundSocket(): Promise<Socket> {
  const socket = createSocket('udp4');
  return new Promise((resolve) => socket.bind(0, '127.0.0.1', () => resolve(socket)));
}

describe('StreamSession', () => {
  it('feeds the encoder from the hub, stays up while RTCP arrives, and ends on silence', async (t) => {
    const server = await startTestServer(t, { cameras: [{ name: 'Test Cam', source: 'testsrc', width: 320, height: 240, fps: 15 }] });
    const rtcp = await boundSocket();
    const ended: string[] = [];
    const session = new StreamSession({
      hub: server.camera().hub,
      ffmpegPath: 'ffmpeg',
      args: SINK_ARGS,
      rtcpSocket: rtcp,
      rtcpTimeoutMs: 1_000,
      log: silentLog,
      onEnded: (reason) => ended.push(reason),
    });
    t.after(() => session.stop());
    await session.start();

    // A fake Home app sends receiver reports every 200 ms for three seconds (three timeouts).
    const sender = createSocket('udp4');
    const port = rtcp.address().port;
    for (let i = 0; i < 15; i++) {
      sender.send(Buffer.from([0x81, 0xc9, 0, 1, 0, 0, 0, 1]), port, '127.0.0.1');
      await sleep(200);
    }
    assert.deepEqual(ended, [], 'alive while reports arrive');
    assert.ok(session.framesIn > 10, `frames went to the encoder (${session.framesIn})`);
    const encoderPids = async () => (await childProcessesNamed(process.pid, 'ffmpeg')).filter((pid) => commandLine(pid).includes('pipe:0'));
    assert.equal((await encoderPids()).length, 1, 'this encoder');

    sender.close();
    await waitUntil('the session to end on silence', () => ended.length > 0);
    assert.equal(ended.length, 1);
    assert.match(nth(ended, 0, 'the end reasons'), /no RTCP from the Home app for 1 s/);
    await waitUntil('the encoder to be gone', async () => (await encoderPids()).length === 0, 3_000);
  });

  it('waits longer for the first report; counts only RTCP, not any datagram at the port', async (t) => {
    const server = await startTestServer(t, { cameras: [{ name: 'Test Cam', source: 'testsrc', width: 160, height: 120, fps: 10 }] });
    const hub = server.camera().hub;
    const sender = createSocket('udp4');
    t.after(() => sender.close());
    const open = async (firstRtcpTimeoutMs?: number) => {
      const rtcp = await boundSocket();
      const ended: string[] = [];
      const session = new StreamSession({ hub, ffmpegPath: 'ffmpeg', args: SINK_ARGS, rtcpSocket: rtcp, rtcpTimeoutMs: 400, firstRtcpTimeoutMs, log: silentLog, onEnded: (reason) => ended.push(reason) });
      t.after(() => session.stop());
      await session.start();
      return { session, ended, port: rtcp.address().port };
    };

    const first = await open(2_000);
    await sleep(800);
    assert.deepEqual(first.ended, [], 'no report yet, but still inside the first wait');
    sender.send(Buffer.from([0x80, 0xc9, 0, 1, 0, 0, 0, 1]), first.port, '127.0.0.1');
    await waitUntil('the report to arrive', () => first.session.rtcpReports === 1);
    await waitUntil('the session to end once reports stop', () => first.ended.length === 1, 3_000);
    assert.match(nth(first.ended, 0, 'the end reasons'), /^no RTCP from the Home app for 0\.4 s$/, 'after the usual wait, once one had come');

    // Datagrams that are not RTCP (RTP, junk) keep nothing alive.
    const junk = await open();
    const timer = setInterval(() => {
      sender.send(Buffer.from('not a report at all'), junk.port, '127.0.0.1');
      sender.send(Buffer.from([0x80, 0x63, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1]), junk.port, '127.0.0.1');
    }, 100);
    t.after(() => clearInterval(timer));
    await waitUntil('the session fed only junk to end', () => junk.ended.length === 1, 3_000);
    clearInterval(timer);
    assert.equal(junk.session.rtcpReports, 0);
  });

  it('is not ended by an event loop stall while reports wait in its socket', async (t) => {
    const server = await startTestServer(t, { cameras: [{ name: 'Test Cam', source: 'testsrc', width: 160, height: 120, fps: 10 }] });
    const rtcp = await boundSocket();
    const ended: string[] = [];
    const session = new StreamSession({ hub: server.camera().hub, ffmpegPath: 'ffmpeg', args: SINK_ARGS, rtcpSocket: rtcp, rtcpTimeoutMs: 500, firstRtcpTimeoutMs: 10_000, log: silentLog, onEnded: (reason) => ended.push(reason) });
    t.after(() => session.stop());
    await session.start();
    // Reports from another process (given time to load: the first wait is long), which goes on sending while this one is stalled.
    const script = `const s = require('node:dgram').createSocket('udp4'); const rr = Buffer.from([0x80, 0xc9, 0, 1, 0, 0, 0, 1]); setInterval(() => s.send(rr, ${rtcp.address().port}, '127.0.0.1'), 50);`;
    const reporter = spawn(process.execPath, ['-e', script], { stdio: 'ignore' });
    t.after(() => reporter.kill('SIGKILL'));
    await waitUntil('reports to arrive', () => session.rtcpReports > 3);
    const stalledUntil = Date.now() + 1_200;
    while (Date.now() < stalledUntil) {
      // busy: timers and sockets wait
    }
    await sleep(300);
    assert.deepEqual(ended, [], 'the reports that waited were read before the watchdog judged');
    reporter.kill('SIGKILL');
    await waitUntil('the session to end once the reports stop', () => ended.length === 1, 3_000);
  });

  it('takes a new RTCP wait while running', async (t) => {
    const server = await startTestServer(t, { cameras: [{ name: 'Test Cam', source: 'testsrc', width: 160, height: 120, fps: 10 }] });
    const ended: string[] = [];
    const session = new StreamSession({ hub: server.camera().hub, ffmpegPath: 'ffmpeg', args: SINK_ARGS, rtcpSocket: await boundSocket(), rtcpTimeoutMs: 30_000, log: silentLog, onEnded: (reason) => ended.push(reason) });
    t.after(() => session.stop());
    await session.start();
    await sleep(300);
    assert.deepEqual(ended, []);
    session.setRtcpTimeout(300);
    await waitUntil('the session to end after the new wait', () => ended.length === 1, 3_000);
    assert.match(nth(ended, 0, 'the end reasons'), /for 0\.3 s/);
  });

  it('runs reconfigures one after the other: two at once leave exactly one encoder, the last asked for', async (t) => {
    const server = await startTestServer(t, { cameras: [{ name: 'Test Cam', source: 'testsrc', width: 160, height: 120, fps: 10 }] });
    const ended: string[] = [];
    const session = new StreamSession({ hub: server.camera().hub, ffmpegPath: 'ffmpeg', args: SINK_ARGS, rtcpSocket: await boundSocket(), rtcpTimeoutMs: 30_000, log: silentLog, onEnded: (reason) => ended.push(reason) });
    t.after(() => session.stop());
    await session.start();
    const encoders = async () => (await childProcessesNamed(process.pid, 'ffmpeg')).filter((pid) => commandLine(pid).includes('pipe:0'));
    assert.equal((await encoders()).length, 1, 'the encoder');
    const last = [...SINK_ARGS.slice(0, -1), '-nostats', '-'];
    await Promise.all([session.reconfigure(SINK_ARGS), session.reconfigure(last)]);
    const running = await encoders();
    assert.equal(running.length, 1, 'one encoder: none orphaned');
    assert.deepEqual(session.args, last);
    assert.ok(commandLine(nth(running, 0, 'the encoders')).includes('-nostats'), 'the one asked for last');
    const frames = session.framesIn;
    await waitUntil('frames to the encoder', () => session.framesIn > frames + 3);
    await session.stop();
    assert.deepEqual(await encoders(), [], 'stop leaves no encoder');
    assert.deepEqual(ended, []);
  });

  it('reports an encoder that dies, once', async (t) => {
    const server = await startTestServer(t, { cameras: [{ name: 'Test Cam', source: 'testsrc', width: 160, height: 120, fps: 10 }] });
    const ended: string[] = [];
    const session = new StreamSession({
      hub: server.camera().hub,
      ffmpegPath: 'ffmpeg',
      args: THREE_FRAMES_ARGS,
      rtcpSocket: await boundSocket(),
      rtcpTimeoutMs: 30_000,
      log: silentLog,
      onEnded: (reason) => ended.push(reason),
    });
    t.after(() => session.stop());
    await session.start();
    await waitUntil('the encoder to exit after three frames', () => ended.length > 0);
    await sleep(300);
    assert.equal(ended.length, 1, 'reported once');
    assert.match(nth(ended, 0, 'the end reasons'), /encoder exited \(code 0\)/);
  });

  it('adopts an encoder spawned beforehand: feeds it, reports its exit and its stderr as its own', async (t) => {
    const server = await startTestServer(t, { cameras: [{ name: 'Test Cam', source: 'testsrc', width: 160, height: 120, fps: 10 }] });
    const run = async (args: string[]) => {
      const child = spawn('ffmpeg', args, { stdio: ['pipe', 'ignore', 'pipe'] });
      await new Promise((resolve) => child.once('spawn', resolve));
      await sleep(300); // loaded and waiting on stdin, as a warm encoder is
      const ended: string[] = [];
      const relay = { closed: 0, close: () => relay.closed++ };
      const session = new StreamSession({
        hub: server.camera().hub,
        ffmpegPath: 'no-such-ffmpeg', // never spawned: the child above is adopted
        args,
        rtcpSocket: await boundSocket(),
        rtcpTimeoutMs: 30_000,
        log: silentLog,
        onEnded: (reason) => ended.push(reason),
      });
      t.after(() => session.stop());
      await session.start({ child, relay });
      await waitUntil('the adopted encoder to exit', () => ended.length > 0);
      await sleep(300);
      return { ended, session, child, relay };
    };
    const done = await run(THREE_FRAMES_ARGS);
    assert.ok(done.session.framesIn >= 3, `frames went to the adopted encoder (${done.session.framesIn})`);
    assert.equal(done.ended.length, 1);
    assert.match(nth(done.ended, 0, 'the end reasons'), /encoder exited \(code 0\)/);
    assert.equal(done.relay.closed, 1, 'its relay is closed with it');

    const failing = await run(['-hide_banner', '-loglevel', 'error', '-f', 'mpjpeg', '-i', 'pipe:0', '-c:v', 'no_such_encoder', '-f', 'null', '-']);
    assert.equal(failing.ended.length, 1);
    assert.match(nth(failing.ended, 0, 'the end reasons'), /encoder exited \(code \d+\): .*no_such_encoder/, 'its stderr is in the reason');
    assert.equal(failing.relay.closed, 1);
  });

  it("closes an adopted encoder's relay when a reconfigure replaces it, and keeps the session", async (t) => {
    const server = await startTestServer(t, { cameras: [{ name: 'Test Cam', source: 'testsrc', width: 160, height: 120, fps: 10 }] });
    const child = spawn('ffmpeg', SINK_ARGS, { stdio: ['pipe', 'ignore', 'pipe'] });
    await new Promise((resolve) => child.once('spawn', resolve));
    const relay = { closed: 0, close: () => relay.closed++ };
    const ended: string[] = [];
    const session = new StreamSession({
      hub: server.camera().hub,
      ffmpegPath: 'ffmpeg',
      args: SINK_ARGS,
      rtcpSocket: await boundSocket(),
      rtcpTimeoutMs: 30_000,
      log: silentLog,
      onEnded: (reason) => ended.push(reason),
    });
    t.after(() => session.stop());
    await session.start({ child, relay });
    await sleep(300);
    await session.reconfigure(SINK_ARGS);
    assert.notEqual(child.exitCode ?? child.signalCode, null, 'the adopted encoder is gone');
    assert.equal(relay.closed, 1, 'and its relay closed');
    const before = session.framesIn;
    await waitUntil('the new encoder to get frames', () => session.framesIn > before + 2);
    await session.stop();
    assert.equal(relay.closed, 1, 'closed once');
    assert.deepEqual(ended, []);
  });
});
