// The warm encoder through the real streaming delegate, HAP-NodeJS's types and a real ffmpeg on a
// testsrc hub, with no Homebridge. A silent camera with `homekit.warmEncoder` keeps one encoder
// started ahead of any session (without it, the default, one is started at SetupEndpoints: a
// standby, and none runs while nobody watches);
// SetupEndpoints answers with its SRTP key and SSRC (not the Home app's); nothing reaches the
// Home app before START; a START asking for its command is served by that very process through
// the relay, from the port SetupEndpoints announced (a hit); another START is served by a new
// encoder with the answered key (a miss); a new warm encoder follows every START, predicting it;
// a reconfigure keeps the key and SSRC; nothing leaks (processes, UDP sockets) after STOP, an
// abandoned SetupEndpoints, an encoder that dies, or shutdown; a failing ffmpeg is retried with a
// warning; cameras with sound keep the old path (the Home app's key, spawned at START). The Home app
// stand-in authenticates and decrypts every packet (bench/homekit-srtp.ts) with the answered key.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import type { Socket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';

import * as hap from 'hap-nodejs';
import type { PrepareStreamRequest, PrepareStreamResponse, StreamingRequest } from 'homebridge';

import { isRtcp, SrtpDecryptor } from '../bench/homekit-srtp';
import type { AudioCodecName } from '../src/homekit/stream-policy';
import { WebcamStreamingDelegate } from '../src/homekit/streaming-delegate';
import type { Log } from '../src/log';
import { Snapshotter } from '../src/media/snapshot';
import { execFileAsync, isAlive, nth, sleep, startTestServer, waitUntil } from './helpers';

interface Encoder {
  pid: number;
  args: string[];
  /** -srtp_out_params: the SRTP key and salt, base64. */
  key: string;
  ssrc: number;
  /** The srtp:// URL it sends to. */
  url: string;
}

/** This process's HomeKit encoders (ffmpeg reading frames on stdin), with their command lines. */
async function encoders(): Promise<Encoder[]> {
  const { stdout } = await execFileAsync('ps', ['-e', '-o', 'pid=,ppid=,comm=']);
  const found: Encoder[] = [];
  for (const line of stdout.split('\n')) {
    const [, pid, ppid, comm] = /^\s*(\d+)\s+(\d+)\s+(\S+)/.exec(line) ?? [];
    if (pid === undefined || Number(ppid) !== process.pid || comm !== 'ffmpeg') continue;
    let args: string[];
    try {
      args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').slice(1, -1);
    } catch {
      continue; // gone meanwhile
    }
    if (!args.includes('pipe:0')) continue;
    const after = (flag: string) => args[args.indexOf(flag) + 1] ?? '';
    found.push({ pid: Number(pid), args, key: after('-srtp_out_params'), ssrc: Number(after('-ssrc')) >>> 0, url: args.find((a) => a.startsWith('srtp://')) ?? '' });
  }
  return found;
}

/** Waits for exactly `count` encoders and answers them. */
async function waitForEncoders(what: string, count: number, check: (found: Encoder[]) => boolean = () => true): Promise<Encoder[]> {
  let found: Encoder[] = [];
  await waitUntil(what, async () => {
    found = await encoders();
    return found.length === count && check(found);
  });
  return found;
}

/** Waits for exactly one encoder (passing `check`) and answers it. */
async function waitForEncoder(what: string, check: (encoder: Encoder) => boolean = () => true): Promise<Encoder> {
  const [encoder] = await waitForEncoders(what, 1, ([e]) => e !== undefined && check(e));
  assert.ok(encoder);
  return encoder;
}

/** UDP sockets open in this process. */
const udpSockets = () => process.getActiveResourcesInfo().filter((name) => name === 'UDPWrap').length;

/** A log that keeps its lines: debug in `lines`, info in `infos`, warnings and errors in `warnings`. */
function recordingLog(): Log & { lines: string[]; infos: string[]; warnings: string[] } {
  const lines: string[] = [];
  const infos: string[] = [];
  const warnings: string[] = [];
  return { lines, infos, warnings, info: (m) => infos.push(m), warn: (m) => warnings.push(m), error: (m) => warnings.push(m), debug: (m) => lines.push(m) };
}

/**
 * The Home app's video port: every packet is authenticated and decrypted with the key
 * SetupEndpoints answered, as the Home app does; anything else is counted as bad.
 */
class HomeApp {
  readonly socket: Socket = createSocket('udp4');
  /** Its audio port: sound packets are counted, nothing more. */
  readonly audioSocket: Socket = createSocket('udp4');
  audioPackets = 0;
  /** RTP packets that authenticated, by SSRC and by the port they came from. */
  packets = 0;
  readonly ssrcs = new Set<number>();
  readonly fromPorts = new Set<number>();
  rtcp = 0;
  /** Packets that arrived before a key was known, or failed authentication. */
  bad = 0;
  private decryptor?: SrtpDecryptor;

  async open(): Promise<void> {
    this.socket.on('message', (packet, from) => {
      this.fromPorts.add(from.port);
      if (isRtcp(packet)) {
        this.rtcp++;
        return;
      }
      const rtp = this.decryptor?.decrypt(packet);
      if (!rtp || rtp.payloadType !== 99) {
        this.bad++;
        return;
      }
      this.packets++;
      this.ssrcs.add(rtp.ssrc);
    });
    this.audioSocket.on('message', () => this.audioPackets++);
    await new Promise<void>((resolve) => this.socket.bind(0, '127.0.0.1', resolve));
    await new Promise<void>((resolve) => this.audioSocket.bind(0, '127.0.0.1', resolve));
  }

  close(): void {
    for (const timer of this.reporters.values()) clearInterval(timer);
    this.reporters.clear();
    this.socket.close();
    this.audioSocket.close();
  }

  private readonly reporters = new Map<string, NodeJS.Timeout>();

  /** Sends a receiver report to `port` every 0.5 s for session `id`, until stopReporting(id). */
  report(id: string, port: number): void {
    this.stopReporting(id);
    const rr = Buffer.from([0x80, 0xc9, 0, 1, 0, 0, 0, 7]);
    const timer = setInterval(() => this.socket.send(rr, port, '127.0.0.1'), 500);
    timer.unref();
    this.reporters.set(id, timer);
  }

  stopReporting(id: string): void {
    clearInterval(this.reporters.get(id));
    this.reporters.delete(id);
  }

  /** Decrypt with this key from now on (a new SRTP context: a new encoder restarts its sequence). */
  useKey(key: Buffer, salt: Buffer): void {
    this.decryptor = new SrtpDecryptor(Buffer.concat([key, salt]));
  }

  get badTags(): number {
    return this.decryptor?.badTags ?? 0;
  }

  reset(): void {
    this.packets = 0;
    this.rtcp = 0;
    this.bad = 0;
    this.ssrcs.clear();
    this.fromPorts.clear();
  }
}

/** A START's video as an iPhone on the local network sends it (High 4.0, payload type 99, MTU 1378). */
const VIDEO = {
  codec: hap.VideoCodecType.H264,
  profile: hap.H264Profile.HIGH,
  level: hap.H264Level.LEVEL4_0,
  packetizationMode: hap.VideoCodecPacketizationMode.NON_INTERLEAVED,
  width: 320,
  height: 240,
  fps: 10,
  pt: 99,
  ssrc: 1,
  max_bit_rate: 802,
  rtcp_interval: 0.5,
  mtu: 1378,
};

interface SetupOptions {
  audioCodecs?: AudioCodecName[];
  camera?: Record<string, unknown>;
  ffmpegPath?: string;
}

async function setup(t: { after: (fn: () => Promise<void> | void) => void }, options: SetupOptions = {}) {
  const server = await startTestServer(t, {
    cameras: [{ name: 'Test Cam', source: 'testsrc', width: 320, height: 240, fps: 10, homekit: { warmEncoder: true }, ...options.camera }],
  });
  const { config, hub } = server.camera();
  const socketsBefore = udpSockets();
  const log = recordingLog();
  const app = new HomeApp();
  await app.open();
  const delegate = new WebcamStreamingDelegate({
    hap,
    camera: config,
    hub,
    snapshotter: new Snapshotter(hub),
    ffmpegPath: options.ffmpegPath ?? 'ffmpeg',
    audioCodecs: options.audioCodecs ?? [],
    log,
    warmRetryMs: 50,
  });
  delegate.start();
  let stopped = false;
  const shutdown = async () => {
    if (stopped) return;
    stopped = true;
    await delegate.stopAll();
    app.close();
  };
  t.after(shutdown);
  /** SetupEndpoints as the Home app writes it: its address, ports and an SRTP key of its own. */
  const prepare = async (sessionID: string) => {
    const source = (socket: Socket) => ({ port: socket.address().port, srtpCryptoSuite: hap.SRTPCryptoSuites.AES_CM_128_HMAC_SHA1_80, srtp_key: randomBytes(16), srtp_salt: randomBytes(14) });
    const request: PrepareStreamRequest = { sessionID, sourceAddress: '127.0.0.1', targetAddress: '127.0.0.1', addressVersion: 'ipv4', video: source(app.socket), audio: source(app.audioSocket) };
    const prepared = await new Promise<{ offered: PrepareStreamRequest; answer: Answer }>((resolve, reject) => {
      delegate.prepareStream(request, (error, response) => (error || !response ? reject(error ?? new Error('no answer')) : resolve({ offered: request, answer: answerOf(response) })));
    });
    // As the Home app does while it watches: a receiver report to the accessory's port every 0.5 s.
    app.report(sessionID, prepared.answer.port);
    return prepared;
  };
  const request = (r: StreamingRequest) => new Promise<void>((resolve, reject) => delegate.handleStreamRequest(r, (error) => (error ? reject(error) : resolve())));
  const start = (sessionID: string, video: Partial<typeof VIDEO> = {}) =>
    request({
      sessionID,
      type: hap.StreamRequestTypes.START,
      video: { ...VIDEO, ...video },
      audio: { codec: hap.AudioStreamingCodecType.OPUS, channel: 1, bit_rate: hap.AudioBitrate.VARIABLE, sample_rate: hap.AudioStreamingSamplerate.KHZ_16, packet_time: 20, pt: 110, ssrc: 2, max_bit_rate: 24, rtcp_interval: 5, comfort_pt: 13, comfortNoiseEnabled: false },
    });
  const reconfigure = (sessionID: string, video: { width: number; height: number; fps: number; max_bit_rate: number }) =>
    request({ sessionID, type: hap.StreamRequestTypes.RECONFIGURE, video: { ...video, rtcp_interval: 0.5 } });
  const stop = (sessionID: string) => {
    app.stopReporting(sessionID);
    return request({ sessionID, type: hap.StreamRequestTypes.STOP });
  };
  return { delegate, hub, log, app, prepare, start, reconfigure, stop, shutdown, socketsBefore };
}

/** The video half of the SetupEndpoints answer: what the Home app decrypts with. */
interface Answer {
  key: Buffer;
  salt: Buffer;
  ssrc: number;
  /** The accessory's video port (where RTCP goes, and relayed RTP comes from). */
  port: number;
}

function answerOf(response: PrepareStreamResponse): Answer {
  const video = response.video;
  assert.ok('srtp_key' in video && video.srtp_key && video.srtp_salt, 'the answer has an SRTP key and salt');
  assert.equal(video.srtp_key.length, 16);
  assert.equal(video.srtp_salt.length, 14);
  return { key: video.srtp_key, salt: video.srtp_salt, ssrc: video.ssrc >>> 0, port: video.port };
}

const keyOf = (answer: Answer) => Buffer.concat([answer.key, answer.salt]).toString('base64');
const offeredKeyOf = (offered: PrepareStreamRequest) => Buffer.concat([offered.video.srtp_key, offered.video.srtp_salt]).toString('base64');

describe('warm encoder', () => {
  it("is answered in SetupEndpoints, sends nothing before START, and a START asking for its command is served by that very process", async (t) => {
    const { log, app, prepare, start, stop } = await setup(t);
    const warm = await waitForEncoder('the warm encoder');
    assert.match(warm.args.join(' '), /scale=320:240.*-r 10 .*-b:v 802k/, 'the largest size offered, at the camera rate, 802 kbit/s');
    assert.match(warm.url, /^srtp:\/\/127\.0\.0\.1:\d+\?rtcpport=\d+&pkt_size=1378$/, 'it sends to its relay on loopback');

    const { offered, answer } = await prepare('a');
    assert.equal(keyOf(answer), warm.key, "SetupEndpoints answers with the warm encoder's key and salt");
    assert.notEqual(keyOf(answer), offeredKeyOf(offered), "not with the Home app's");
    assert.equal(answer.ssrc, warm.ssrc, "and with the warm encoder's SSRC");
    app.useKey(answer.key, answer.salt);
    await sleep(500);
    assert.equal(app.packets + app.bad + app.rtcp, 0, 'nothing reaches the Home app before START');
    assert.deepEqual((await encoders()).map((e) => e.pid), [warm.pid], 'and nothing else was started');

    await start('a');
    assert.ok(log.lines.some((l) => /^Warm encoder: hit \(started \d+ ms before START\)\.$/.test(l)), log.lines.join('\n'));
    await waitUntil('SRTP packets', () => app.packets > 10);
    assert.equal(app.bad + app.badTags, 0, 'every packet authenticates with the answered key');
    assert.deepEqual([...app.ssrcs], [warm.ssrc], 'RTP carries the answered SSRC');
    assert.deepEqual([...app.fromPorts], [answer.port], 'from the port SetupEndpoints announced');

    const running = await waitForEncoders('the stream encoder and a new warm encoder', 2);
    assert.ok(running.some((e) => e.pid === warm.pid), 'the warm encoder is the stream encoder');
    const next = running.find((e) => e.pid !== warm.pid)!;
    assert.notEqual(next.key, warm.key, 'the next warm encoder has a key of its own');
    assert.notEqual(next.ssrc, warm.ssrc);

    await stop('a');
    await waitUntil('the stream encoder to exit after STOP', () => !isAlive(warm.pid), 2_000);
    assert.deepEqual((await encoders()).map((e) => e.pid), [next.pid], 'the new warm encoder stays');
  });

  it('serves a START asking for something else with the answered key, and predicts it for the next session', async (t) => {
    const { log, app, prepare, start, stop } = await setup(t);
    const warm = await waitForEncoder('the warm encoder');
    const { answer } = await prepare('a');
    app.useKey(answer.key, answer.salt);
    await start('a', { width: 320, height: 180, max_bit_rate: 300 });
    assert.ok(log.lines.includes('Warm encoder: miss (height 240 -> 180, bitrate 802 -> 300).'), log.lines.join('\n'));
    await waitUntil('SRTP packets', () => app.packets > 10);
    assert.equal(app.bad + app.badTags, 0, 'every packet authenticates with the answered key');
    assert.deepEqual([...app.ssrcs], [answer.ssrc], 'RTP carries the answered SSRC');
    await waitUntil('the warm encoder to exit', () => !isAlive(warm.pid), 2_000);

    const running = await waitForEncoders('the stream encoder and a new warm encoder', 2, (found) => found.some((e) => e.url.includes(`:${app.socket.address().port}?`)));
    const streaming = running.find((e) => e.url.includes(`:${app.socket.address().port}?`))!;
    assert.match(streaming.args.join(' '), /scale=320:180.*-b:v 300k/);
    assert.equal(streaming.key, keyOf(answer), 'a new encoder with the answered key');
    assert.equal(streaming.ssrc, answer.ssrc, 'and SSRC, sending to the Home app directly');
    const next = running.find((e) => e !== streaming)!;
    assert.match(next.args.join(' '), /scale=320:180.*-b:v 300k/, 'the next warm encoder expects what the last START asked');
    await stop('a');
    await waitUntil('the stream encoder to exit', () => !isAlive(streaming.pid), 2_000);

    const second = await prepare('b');
    assert.equal(keyOf(second.answer), next.key);
    app.reset();
    app.useKey(second.answer.key, second.answer.salt);
    await start('b', { width: 320, height: 180, max_bit_rate: 300 });
    assert.match(log.lines.at(-1) ?? '', /^Warm encoder: hit/);
    await waitUntil('SRTP packets', () => app.packets > 5);
    assert.equal(app.bad + app.badTags, 0);
    await stop('b');
  });

  it('keeps the answered key and SSRC when the Home app reconfigures an adopted stream', async (t) => {
    const { app, prepare, start, reconfigure, stop } = await setup(t);
    const warm = await waitForEncoder('the warm encoder');
    const { answer } = await prepare('a');
    app.useKey(answer.key, answer.salt);
    await start('a');
    await waitUntil('SRTP packets', () => app.packets > 10);
    await waitForEncoders('the next warm encoder', 2);

    await reconfigure('a', { width: 320, height: 180, fps: 5, max_bit_rate: 200 });
    assert.equal(isAlive(warm.pid), false, 'the adopted encoder is replaced');
    app.reset();
    app.useKey(answer.key, answer.salt);
    await waitUntil('packets from the new encoder', () => app.packets > 10);
    assert.equal(app.bad + app.badTags, 0, 'still the answered key');
    assert.deepEqual([...app.ssrcs], [answer.ssrc], 'still the answered SSRC');
    const reconfigured = (await encoders()).find((e) => /scale=320:180/.test(e.args.join(' ')));
    assert.ok(reconfigured, 'an encoder for the new size');
    assert.equal(reconfigured.key, keyOf(answer));
    await stop('a');
    await waitUntil('the encoder to exit', () => !isAlive(reconfigured.pid), 2_000);
  });

  it('leaks nothing: an abandoned SetupEndpoints, a repeated one, an encoder that dies, shutdown', async (t) => {
    const { log, prepare, start, stop, shutdown, socketsBefore } = await setup(t);
    const first = await waitForEncoder('the warm encoder');
    const idleSockets = udpSockets();
    assert.equal(idleSockets, socketsBefore + 3, "the Home app's two sockets and the warm encoder's relay");

    // Prepared, never started: its key went to a controller that did not use it; a new one.
    await prepare('a');
    await stop('a');
    await waitUntil('the abandoned warm encoder to exit', () => !isAlive(first.pid), 2_000);
    const second = await waitForEncoder('a new warm encoder', (e) => e.pid !== first.pid);
    assert.notEqual(second.key, first.key);
    await waitUntil('the sockets of the abandoned session to close', () => udpSockets() === idleSockets);

    // SetupEndpoints twice for one session: the second keeps the warm encoder of the first.
    const once = await prepare('b');
    const twice = await prepare('b');
    assert.equal(keyOf(once.answer), second.key);
    assert.equal(keyOf(twice.answer), second.key, 'the same warm encoder, the same key');
    await start('b');
    await waitForEncoders('the stream encoder and a new warm encoder', 2);
    await stop('b');
    await waitUntil('the stream encoder to exit', () => !isAlive(second.pid), 2_000);
    const third = await waitForEncoder('the warm encoder');
    await waitUntil('the sessions sockets to close', () => udpSockets() === idleSockets);

    // A warm encoder that dies is replaced.
    process.kill(third.pid, 'SIGKILL');
    const fourth = await waitForEncoder('a replacement', (e) => e.pid !== third.pid);
    assert.ok(log.lines.some((l) => /^Warm encoder exited \(SIGKILL\); the next one starts in 0\.1 s\.$/.test(l)), log.lines.join('\n'));
    assert.equal(udpSockets(), idleSockets, "the dead encoder's relay closed, the new one's open");

    await shutdown();
    await waitUntil('the warm encoder to stop at shutdown', () => !isAlive(fourth.pid), 2_000);
    assert.deepEqual(await encoders(), []);
    assert.equal(udpSockets(), socketsBefore, 'every UDP socket closed: the relays, the sessions\' and the Home app\'s');
    await sleep(300);
    assert.deepEqual(await encoders(), [], 'and no new one after shutdown');
  });

  it('starts a stopped capture at SetupEndpoints, and lets it go when the stream has it or never comes', async (t) => {
    const { hub, prepare, start, stop } = await setup(t);
    assert.equal(hub.consumerCount, 0);
    assert.equal(hub.state, 'idle');
    await prepare('a');
    assert.equal(hub.consumerCount, 1, 'SetupEndpoints holds the capture');
    assert.notEqual(hub.state, 'idle', 'and starts it');
    await stop('a');
    assert.equal(hub.consumerCount, 0, 'an abandoned SetupEndpoints lets go');
    await prepare('b');
    await start('b');
    assert.equal(hub.consumerCount, 1, "only the stream's own subscription is left");
    await stop('b');
    assert.equal(hub.consumerCount, 0);
  });

  it('retries an ffmpeg that keeps failing, with a warning, and streams the old way meanwhile', async (t) => {
    const { log, prepare } = await setup(t, { ffmpegPath: '/bin/false' });
    await waitUntil('three failures', () => log.warnings.length > 0, 3_000);
    assert.match(nth(log.warnings, 0, 'the warnings'), /^Warm encoder exited \(code 1\); the next one starts in 0\.2 s\. ffmpeg failed 3 times in a row: until one stays up, live streams start their encoder when they begin \(slower\)\./);
    const { offered, answer } = await prepare('a');
    assert.equal(keyOf(answer), offeredKeyOf(offered), "no warm encoder: the Home app's key, as before");
  });

  it("is not kept for a camera with sound, whose stream uses the Home app's key as before", async (t) => {
    const { app, prepare, start, stop } = await setup(t, { audioCodecs: ['opus'], camera: { audio: { enabled: true, source: 'sine' } } });
    await sleep(500);
    assert.deepEqual(await encoders(), [], 'no warm encoder');
    const { offered, answer } = await prepare('a');
    assert.equal(keyOf(answer), offeredKeyOf(offered), "SetupEndpoints answers with the Home app's own key");
    app.useKey(offered.video.srtp_key, offered.video.srtp_salt);
    await start('a');
    await waitUntil('SRTP packets', () => app.packets > 10);
    assert.equal(app.bad + app.badTags, 0);
    assert.deepEqual([...app.ssrcs], [answer.ssrc]);
    const encoder = await waitForEncoder('the stream encoder');
    assert.ok(encoder.args.includes('libopus'), 'with sound');
    await waitUntil('sound packets', () => app.audioPackets > 5);
    await stop('a');
    await waitUntil('the encoder to exit', () => !isAlive(encoder.pid), 2_000);
    assert.deepEqual(await encoders(), [], 'and no warm encoder after it');
  });

  it('is not kept with homekit.warmEncoder false: a standby started at SetupEndpoints serves the START, and nothing runs while nobody watches', async (t) => {
    const { log, app, prepare, start, stop, socketsBefore } = await setup(t, { camera: { homekit: { warmEncoder: false } } });
    const idleSockets = socketsBefore + 2;
    await sleep(500);
    assert.deepEqual(await encoders(), [], 'no encoder while nobody watches');
    assert.equal(udpSockets(), idleSockets, "the Home app's two sockets, no relay");

    const { offered, answer } = await prepare('a');
    const standby = await waitForEncoder('the standby encoder');
    assert.match(standby.args.join(' '), /scale=320:240.*-r 10 .*-b:v 802k/, 'for the Home app\'s usual START: the largest size offered, 802 kbit/s');
    assert.equal(keyOf(answer), standby.key, "SetupEndpoints answers with the standby's key and salt");
    assert.notEqual(keyOf(answer), offeredKeyOf(offered));
    assert.equal(answer.ssrc, standby.ssrc);
    app.useKey(answer.key, answer.salt);
    await sleep(300);
    assert.equal(app.packets + app.bad + app.rtcp, 0, 'nothing reaches the Home app before START');

    await start('a');
    assert.ok(log.lines.some((l) => /^Standby encoder: hit \(started \d+ ms before START\)\.$/.test(l)), log.lines.join('\n'));
    await waitUntil('SRTP packets', () => app.packets > 10);
    assert.equal(app.bad + app.badTags, 0, 'every packet authenticates with the answered key');
    assert.deepEqual([...app.ssrcs], [standby.ssrc]);
    assert.deepEqual([...app.fromPorts], [answer.port], 'from the port SetupEndpoints announced');
    await sleep(500);
    assert.deepEqual((await encoders()).map((e) => e.pid), [standby.pid], 'the standby is the stream encoder, and no other is started');
    await stop('a');
    await waitUntil('the stream encoder to exit after STOP', () => !isAlive(standby.pid), 2_000);
    await sleep(300);
    assert.deepEqual(await encoders(), [], 'none left after the stream');

    // Abandoned: prepared, never started.
    await prepare('b');
    const abandoned = await waitForEncoder('a standby for the next session');
    await stop('b');
    await waitUntil('the abandoned standby to exit', () => !isAlive(abandoned.pid), 2_000);
    await waitUntil('every socket of the session and the relay to close', () => udpSockets() === idleSockets);

    // Another START: served by a new encoder with the answered key; the next standby expects it.
    const third = await prepare('c');
    app.reset();
    app.useKey(third.answer.key, third.answer.salt);
    await start('c', { width: 320, height: 180, max_bit_rate: 300 });
    assert.ok(log.lines.includes('Standby encoder: miss (height 240 -> 180, bitrate 802 -> 300).'), log.lines.join('\n'));
    await waitUntil('SRTP packets', () => app.packets > 5);
    assert.equal(app.bad + app.badTags, 0);
    await stop('c');
    await waitUntil('no encoder', async () => (await encoders()).length === 0, 2_000);
    await prepare('d');
    const predicted = await waitForEncoder('the next standby');
    assert.match(predicted.args.join(' '), /scale=320:180.*-b:v 300k/, 'started for what the last START asked');
    await stop('d');
    await waitUntil('the standby to exit', () => !isAlive(predicted.pid), 2_000);
  });
});

describe('streaming delegate: requests kept inside the offer and in step with HAP', () => {
  it('clamps a START beyond the offer to it, says so, and such a START still hits the warm encoder', async (t) => {
    const { log, app, prepare, start, reconfigure, stop } = await setup(t);
    const warm = await waitForEncoder('the warm encoder');
    const { answer } = await prepare('a');
    app.useKey(answer.key, answer.salt);
    // A 320x240 camera at 10 fps asked for 1920x1080 at 30 fps: streamed at 320x240, 10 fps,
    // which is what the warm encoder was started for.
    await start('a', { width: 1920, height: 1080, fps: 30 });
    assert.ok(
      log.warnings.some((w) => w === 'The Home app asked for 1920x1080 at 30 fps, 802 kbit/s, which this camera does not offer (1920x1080 -> 320x240, 30 fps -> 10 fps): streaming 320x240 at 10 fps, 802 kbit/s.'),
      log.warnings.join('\n'),
    );
    assert.ok(log.lines.some((l) => /^Warm encoder: hit/.test(l)), log.lines.join('\n'));
    await waitUntil('SRTP packets', () => app.packets > 10);
    assert.equal(app.bad + app.badTags, 0);
    const running = await waitForEncoders('the stream encoder and a new warm encoder', 2);
    assert.ok(running.some((e) => e.pid === warm.pid), 'the warm encoder serves the stream');
    for (const e of running) assert.match(e.args.join(' '), /scale=320:240.*-r 10 /, 'no encoder beyond the offer, the next warm one included');

    // A RECONFIGURE beyond the offer lands on the same configuration: the encoder is kept.
    await reconfigure('a', { width: 10_000, height: 10_000, fps: 60, max_bit_rate: 802 });
    assert.ok(isAlive(warm.pid), 'the same encoder goes on');
    await stop('a');
    await waitUntil('the stream encoder to exit after STOP', () => !isAlive(warm.pid), 2_000);
  });

  it('answers a repeated START as a reconfigure: the same one keeps the encoder, another replaces it, STOP ends it', async (t) => {
    const { log, app, prepare, start, stop } = await setup(t, { camera: { homekit: { warmEncoder: false } } });
    const { answer } = await prepare('a');
    app.useKey(answer.key, answer.salt);
    await start('a');
    await waitUntil('SRTP packets', () => app.packets > 10);
    const first = await waitForEncoder('the stream encoder');

    await start('a');
    assert.ok(log.infos.includes('HomeKit sent START for a stream already running: it is reconfigured, not started twice.'), log.infos.join('\n'));
    await sleep(300);
    assert.deepEqual((await encoders()).map((e) => e.pid), [first.pid], 'the same START again: the same encoder, and only it');

    await start('a', { width: 320, height: 180, max_bit_rate: 300 });
    await waitUntil('the first encoder to be replaced', () => !isAlive(first.pid), 2_000);
    const second = await waitForEncoder('one encoder');
    assert.match(second.args.join(' '), /scale=320:180.*-b:v 300k/);
    assert.equal(second.key, keyOf(answer), 'the answered key');
    assert.equal(second.ssrc, answer.ssrc, 'and SSRC');
    app.reset();
    app.useKey(answer.key, answer.salt);
    await waitUntil('packets from the new encoder', () => app.packets > 10);
    assert.equal(app.bad + app.badTags, 0);

    await stop('a');
    await waitUntil('the encoder to exit after STOP', () => !isAlive(second.pid), 2_000);
    assert.deepEqual(await encoders(), []);
  });

  it('ends its side of a session whose START failed (HAP forgets it without a STOP): nothing left running or open', async (t) => {
    const { prepare, start, socketsBefore } = await setup(t, { ffmpegPath: '/no/such/ffmpeg', camera: { homekit: { warmEncoder: false } } });
    const idle = udpSockets();
    assert.equal(idle, socketsBefore + 2, "the Home app's two sockets");
    await prepare('a');
    // The standby could not start (no such ffmpeg): its relay closes with it.
    await waitUntil('only the session port open', () => udpSockets() === idle + 1);
    await assert.rejects(start('a'), /ENOENT/);
    await waitUntil('the session port to close', () => udpSockets() === idle);
    // HAP has forgotten the session; so have we: a START for it again is refused, not half-served.
    await assert.rejects(start('a'), /unknown stream session/);
  });
});
