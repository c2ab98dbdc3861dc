// StreamSession's lifecycle with a real encoder ffmpeg fed from a testsrc hub: RTCP keeps it
// alive, silence ends it (and its ffmpeg), stop() leaves nothing behind, and an encoder spawned
// beforehand (a warm encoder) is adopted with the same handling, its relay closed with it.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import type { Socket } from 'node:dgram';
import { describe, it } from 'node:test';

import { StreamSession } from '../src/homekit/stream-session';
import { silentLog } from '../src/log';
import { childProcessesNamed, sleep, startTestServer } from './helpers';

/** An encoder stand-in that decodes the frames it gets and throws them away. */
const SINK_ARGS = ['-hide_banner', '-loglevel', 'error', '-f', 'mpjpeg', '-i', 'pipe:0', '-f', 'null', '-'];
/** A stand-in that takes three frames and exits. */
const THREE_FRAMES_ARGS = ['-hide_banner', '-loglevel', 'error', '-f', 'mpjpeg', '-i', 'pipe:0', '-frames:v', '3', '-f', 'null', '-'];

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
      hub: server.runtime.cameras[0].hub,
      ffmpegPath: 'ffmpeg',
      args: SINK_ARGS,
      rtcpSocket: rtcp,
      rtcpTimeoutMs: 600,
      log: silentLog,
      onEnded: (reason) => ended.push(reason),
    });
    t.after(() => session.stop());
    await session.start();

    // A fake Home app sends receiver reports every 200 ms for a second and a half.
    const sender = createSocket('udp4');
    const port = rtcp.address().port;
    for (let i = 0; i < 8; i++) {
      sender.send(Buffer.from([0x81, 0xc9, 0, 1, 0, 0, 0, 1]), port, '127.0.0.1');
      await sleep(200);
    }
    assert.deepEqual(ended, [], 'alive while reports arrive');
    assert.ok(session.framesIn > 10, `frames went to the encoder (${session.framesIn})`);
    const encoders = (await childProcessesNamed(process.pid, 'ffmpeg')).length;
    assert.equal(encoders, 2, 'the capture and this encoder');

    sender.close();
    await sleep(1000);
    assert.equal(ended.length, 1);
    assert.match(ended[0], /no RTCP from the Home app/);
    await sleep(300);
    assert.equal((await childProcessesNamed(process.pid, 'ffmpeg')).length, 1, 'the encoder is gone; the capture stays');
  });

  it('reports an encoder that dies, once', async (t) => {
    const server = await startTestServer(t, { cameras: [{ name: 'Test Cam', source: 'testsrc', width: 160, height: 120, fps: 10 }] });
    const ended: string[] = [];
    const session = new StreamSession({
      hub: server.runtime.cameras[0].hub,
      ffmpegPath: 'ffmpeg',
      args: THREE_FRAMES_ARGS,
      rtcpSocket: await boundSocket(),
      rtcpTimeoutMs: 30_000,
      log: silentLog,
      onEnded: (reason) => ended.push(reason),
    });
    t.after(() => session.stop());
    await session.start();
    await sleep(1500);
    assert.equal(ended.length, 1);
    assert.match(ended[0], /encoder exited \(code 0\)/);
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
        hub: server.runtime.cameras[0].hub,
        ffmpegPath: 'no-such-ffmpeg', // never spawned: the child above is adopted
        args,
        rtcpSocket: await boundSocket(),
        rtcpTimeoutMs: 30_000,
        log: silentLog,
        onEnded: (reason) => ended.push(reason),
      });
      t.after(() => session.stop());
      await session.start({ child, relay });
      await sleep(1500);
      return { ended, session, child, relay };
    };
    const done = await run(THREE_FRAMES_ARGS);
    assert.ok(done.session.framesIn >= 3, `frames went to the adopted encoder (${done.session.framesIn})`);
    assert.equal(done.ended.length, 1);
    assert.match(done.ended[0], /encoder exited \(code 0\)/);
    assert.equal(done.relay.closed, 1, 'its relay is closed with it');

    const failing = await run(['-hide_banner', '-loglevel', 'error', '-f', 'mpjpeg', '-i', 'pipe:0', '-c:v', 'no_such_encoder', '-f', 'null', '-']);
    assert.equal(failing.ended.length, 1);
    assert.match(failing.ended[0], /encoder exited \(code \d+\): .*no_such_encoder/, 'its stderr is in the reason');
    assert.equal(failing.relay.closed, 1);
  });

  it("closes an adopted encoder's relay when a reconfigure replaces it, and keeps the session", async (t) => {
    const server = await startTestServer(t, { cameras: [{ name: 'Test Cam', source: 'testsrc', width: 160, height: 120, fps: 10 }] });
    const child = spawn('ffmpeg', SINK_ARGS, { stdio: ['pipe', 'ignore', 'pipe'] });
    await new Promise((resolve) => child.once('spawn', resolve));
    const relay = { closed: 0, close: () => relay.closed++ };
    const ended: string[] = [];
    const session = new StreamSession({
      hub: server.runtime.cameras[0].hub,
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
    await sleep(500);
    assert.ok(session.framesIn > before, 'the new encoder gets frames');
    await session.stop();
    assert.equal(relay.closed, 1, 'closed once');
    assert.deepEqual(ended, []);
  });
});
