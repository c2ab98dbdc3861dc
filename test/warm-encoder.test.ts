// The standby encoder through the real streaming delegate, HAP-NodeJS's types and a real ffmpeg on
// a testsrc hub, with no Homebridge: prepareStream spawns it and nothing reaches the Home app's
// port before START; a START that asks for the predicted command adopts it (hit), another one
// replaces it (miss); and it never outlives its session (timeout, a second SetupEndpoints, STOP,
// shutdown), nor is spawned for a camera with sound.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import type { Socket } from 'node:dgram';
import { describe, it } from 'node:test';

import * as hap from 'hap-nodejs';
import type { PrepareStreamRequest, StreamingRequest } from 'homebridge';

import type { AudioCodecName } from '../src/homekit/stream-policy';
import { WebcamStreamingDelegate } from '../src/homekit/streaming-delegate';
import type { Log } from '../src/log';
import { Snapshotter } from '../src/media/snapshot';
import { execFileAsync, isAlive, sleep, startTestServer } from './helpers';

/** This process's HomeKit encoders (ffmpeg reading frames on stdin), with their command lines. */
async function encoders(): Promise<Array<{ pid: number; args: string }>> {
  const { stdout } = await execFileAsync('ps', ['-e', '-o', 'pid=,ppid=,args=']);
  return stdout
    .split('\n')
    .map((line) => /^\s*(\d+)\s+(\d+)\s+(.*)$/.exec(line))
    .filter((m): m is RegExpExecArray => !!m && Number(m[2]) === process.pid && /ffmpeg .*-i pipe:0/.test(m[3]))
    .map((m) => ({ pid: Number(m[1]), args: m[3] }));
}

async function waitUntil(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

/** A log that keeps its debug lines. */
function recordingLog(): Log & { lines: string[] } {
  const lines: string[] = [];
  return { lines, info: () => {}, warn: () => {}, error: () => {}, debug: (m) => lines.push(m) };
}

/** The Home app's UDP port: counts the packets that arrive. */
async function homeApp(): Promise<{ socket: Socket; packets: () => number }> {
  const socket = createSocket('udp4');
  let packets = 0;
  socket.on('message', () => packets++);
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return { socket, packets: () => packets };
}

/** A START's video as an iPhone on the local network sends it (High 4.0, payload type 99, MTU 1378). */
const VIDEO = { codec: 0, profile: 2, level: 2, packetizationMode: 0, width: 320, height: 240, fps: 10, pt: 99, ssrc: 1, max_bit_rate: 802, rtcp_interval: 0.5, mtu: 1378 };

async function setup(t: { after: (fn: () => Promise<void> | void) => void }, audioCodecs: AudioCodecName[] = []) {
  const server = await startTestServer(t, { cameras: [{ name: 'Test Cam', source: 'testsrc', width: 320, height: 240, fps: 10 }] });
  const { config, hub } = server.runtime.cameras[0];
  const log = recordingLog();
  const delegate = new WebcamStreamingDelegate({ hap, camera: config, hub, snapshotter: new Snapshotter(hub), ffmpegPath: 'ffmpeg', audioCodecs, log, standbyTimeoutMs: 1_000 });
  const app = await homeApp();
  t.after(async () => {
    await delegate.stopAll();
    app.socket.close();
  });
  const source = () => ({ port: app.socket.address().port, srtpCryptoSuite: hap.SRTPCryptoSuites.AES_CM_128_HMAC_SHA1_80, srtp_key: randomBytes(16), srtp_salt: randomBytes(14) });
  const prepare = (sessionID: string) =>
    new Promise<void>((resolve, reject) => {
      const request: PrepareStreamRequest = { sessionID, sourceAddress: '127.0.0.1', targetAddress: '127.0.0.1', addressVersion: 'ipv4', video: source(), audio: source() };
      delegate.prepareStream(request, (error) => (error ? reject(error) : resolve()));
    });
  const request = (r: StreamingRequest) => new Promise<void>((resolve, reject) => delegate.handleStreamRequest(r, (error) => (error ? reject(error) : resolve())));
  const start = (sessionID: string, video: Partial<typeof VIDEO> = {}) =>
    request({
      sessionID,
      type: hap.StreamRequestTypes.START,
      video: { ...VIDEO, ...video },
      audio: { codec: hap.AudioStreamingCodecType.OPUS, channel: 1, bit_rate: 0, sample_rate: 16, packet_time: 20, pt: 110, ssrc: 2, max_bit_rate: 24, rtcp_interval: 5, comfort_pt: 13, comfortNoiseEnabled: false },
    });
  const stop = (sessionID: string) => request({ sessionID, type: hap.StreamRequestTypes.STOP });
  return { delegate, log, app, prepare, start, stop };
}

describe('standby encoder', () => {
  it('is spawned at SetupEndpoints, sends nothing before START, and serves a START that asks for its command', async (t) => {
    const { log, app, prepare, start, stop } = await setup(t);
    await prepare('a');
    await waitUntil('the standby encoder', async () => (await encoders()).length === 1);
    const [standby] = await encoders();
    assert.match(standby.args, /scale=320:240.*-r 10 .*-b:v 802k/, 'the largest size offered, at the camera rate, 802 kbit/s');
    await sleep(500);
    assert.equal(app.packets(), 0, 'nothing reaches the Home app before START');

    await start('a');
    assert.ok(log.lines.some((l) => /^Standby encoder: hit \(spawned \d+ ms before START\)\.$/.test(l)), log.lines.join('\n'));
    await waitUntil('SRTP packets', () => app.packets() > 5);
    assert.deepEqual((await encoders()).map((e) => e.pid), [standby.pid], 'the standby is the stream encoder');

    await stop('a');
    await waitUntil('the encoder to exit after STOP', () => !isAlive(standby.pid), 2_000);
  });

  it("is replaced when START asks for something else, and predicts the camera's previous START", async (t) => {
    const { log, app, prepare, start, stop } = await setup(t);
    await prepare('a');
    await waitUntil('the standby encoder', async () => (await encoders()).length === 1);
    const [standby] = await encoders();
    await start('a', { width: 160, height: 120, max_bit_rate: 300 });
    assert.ok(log.lines.includes('Standby encoder: miss (width 320 -> 160, height 240 -> 120, bitrate 802 -> 300).'), log.lines.join('\n'));
    await waitUntil('SRTP packets', () => app.packets() > 5);
    await waitUntil('the standby to exit', () => !isAlive(standby.pid), 2_000);
    const running = await encoders();
    assert.equal(running.length, 1);
    assert.match(running[0].args, /scale=160:120.*-b:v 300k/);
    await stop('a');

    await prepare('b');
    await waitUntil('the next standby encoder', async () => (await encoders()).length === 1);
    assert.match((await encoders())[0].args, /scale=160:120.*-b:v 300k/, 'the next standby expects what the last START asked');
    await start('b', { width: 160, height: 120, max_bit_rate: 300 });
    assert.match(log.lines.at(-1) ?? '', /^Standby encoder: hit/);
    await stop('b');
  });

  it('never outlives its session: timeout, a second SetupEndpoints, STOP without START, shutdown', async (t) => {
    const { delegate, log, prepare, stop } = await setup(t);
    const one = async () => {
      await waitUntil('one standby encoder', async () => (await encoders()).length === 1);
      return (await encoders())[0].pid;
    };
    await prepare('a');
    const timedOut = await one();
    await waitUntil('the standby to time out (1 s)', () => !isAlive(timedOut), 3_000);
    assert.ok(log.lines.some((l) => /unused after 1 s: stopped/.test(l)));

    await prepare('b');
    const first = await one();
    await prepare('b');
    await waitUntil('the first standby to be replaced', async () => !isAlive(first) && (await encoders()).length === 1);
    const second = (await encoders())[0].pid;
    await stop('b');
    await waitUntil('the standby to stop with its session', () => !isAlive(second), 2_000);

    await prepare('c');
    const last = await one();
    await delegate.stopAll();
    await waitUntil('the standby to stop at shutdown', () => !isAlive(last), 2_000);
    assert.deepEqual(await encoders(), []);
  });

  it('is not spawned for a camera with sound', async (t) => {
    const { prepare } = await setup(t, ['opus']);
    await prepare('a');
    await sleep(500);
    assert.deepEqual(await encoders(), []);
  });
});
