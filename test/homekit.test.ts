// HomeKit end to end: a real Homebridge (child process, the built plugin from dist/) publishes a
// `testsrc` camera as an external accessory; hap-controller plays the Home app over 127.0.0.1:
// pairs with the PIN, lists the services, fetches snapshots, sets up and starts live streams with
// the same TLVs the Home app writes, and an ffmpeg receiver holding the SRTP key decodes what
// arrives; while it watches it sends SRTCP receiver reports back, as the Home app does. Along the
// way: one capture ffmpeg for everything, encoders that end with their sessions and with
// Homebridge, a START beyond the offer clamped to it, a repeated START answered as a reconfigure
// (END still accepted), a viewer that stops reporting losing its stream after a few RTCP
// intervals, and a motion sensor that follows the moving test pattern. As the
// Home app does, the receivers decrypt with the key the accessory answers in SetupEndpoints: ours
// for the camera with sound, its own for a silent one. A second suite puts a silent camera on the
// bridge: no ffmpeg at all while nobody watches, a snapshot from an idle capture, a stream served
// by the encoder started at SetupEndpoints (with its own key and SSRC), none left after it, one
// for a set-up never started gone with Homebridge, and the cached accessory kept when a restart
// cannot find ffmpeg. HOMEKIT_TEST_LOG=FILE keeps the
// first Homebridge's log.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:dgram';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { HttpClient } from 'hap-controller';
import { decode, encode, writeFloat32LE, writeUInt16, writeUInt32 } from 'hap-nodejs/dist/lib/util/tlv';

import { basic, execFileAsync, freeTcpPort, homebridgeCommand, isAlive, MjpegClient, nth, probeSize, sleep, waitForExit, waitUntil, writeUsers } from './helpers';
import { bindUdp, freeUdpPair, hapUuid, SrtcpSender, udpBound } from './hap-udp';

const ROOT = join(__dirname, '..');
const HOMEBRIDGE = homebridgeCommand();
const PIN = '031-45-154';
const CAMERA = 'Porch';
const WIDTH = 640;
const HEIGHT = 360;
const FPS = 15;
const COOLDOWN_S = 2;
const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };

/** HAP's short type ("110") as the full UUID. */
const SERVICE = { info: hapUuid('3E'), rtp: hapUuid('110'), motion: hapUuid('85') };
const CHAR = {
  firmware: hapUuid('52'),
  selected: hapUuid('117'),
  setupEndpoints: hapUuid('118'),
  streamingStatus: hapUuid('120'),
  motionDetected: hapUuid('22'),
};

// ---------------------------------------------------------------------------------------------
// Ports, processes


interface FfmpegProcesses {
  /** The camera's capture (reads the lavfi testsrc). */
  capture: number[];
  /** HomeKit stream encoders (read JPEG frames on stdin). */
  encoders: number[];
  all: number[];
}

/** The ffmpeg children of `ppid`, told apart by their command line. */
async function ffmpegChildren(ppid: number): Promise<FfmpegProcesses> {
  const { stdout } = await execFileAsync('ps', ['-e', '-o', 'pid=,ppid=,args=']);
  const result: FfmpegProcesses = { capture: [], encoders: [], all: [] };
  for (const line of stdout.split('\n')) {
    const [, pidText, ppidText, args = ''] = /^\s*(\d+)\s+(\d+)\s+(.*)$/.exec(line) ?? [];
    if (Number(ppidText) !== ppid || !/^(\S*\/)?ffmpeg(\s|$)/.test(args)) continue;
    const pid = Number(pidText);
    result.all.push(pid);
    if (/-f lavfi/.test(args) && /testsrc/.test(args)) result.capture.push(pid);
    if (/-i pipe:0/.test(args)) result.encoders.push(pid);
  }
  return result;
}

/** A process's command line, its arguments joined by spaces ('' once it has gone). */
function commandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
  } catch {
    return '';
  }
}


// ---------------------------------------------------------------------------------------------
// The Home app's side of a live stream

/** Writes characteristics; a per-characteristic HAP error status becomes an exception. */
async function write(client: HttpClient, id: string, value: string): Promise<void> {
  const answer = (await client.setCharacteristics({ [id]: value })) as { characteristics?: Array<{ status?: number }> };
  for (const c of answer.characteristics ?? []) {
    if (c.status !== undefined && c.status !== 0) throw new Error(`writing ${id} failed with HAP status ${c.status}`);
  }
}

async function read(client: HttpClient, id: string): Promise<unknown> {
  const { characteristics } = await client.getCharacteristics([id]);
  return nth(characteristics, 0, `the characteristics read for ${id}`).value;
}

/** Item `type` of a decoded TLV; a missing one fails the test. */
function tlvItem(tlv: Record<number, Buffer | undefined>, type: number): Buffer {
  const value = tlv[type];
  assert.ok(value, `TLV item ${type} missing`);
  return value;
}

/** A characteristic holding a TLV, read and decoded. */
async function readTlv(client: HttpClient, id: string): Promise<Record<number, Buffer | undefined>> {
  return decode(Buffer.from(String(await read(client, id)), 'base64'));
}

/** aid.iid of the characteristics of one CameraRTPStreamManagement service. */
interface RtpService {
  setupEndpoints: string;
  selected: string;
  status: string;
}

interface StreamRequest {
  width: number;
  height: number;
  fps: number;
  /** HAP's H.264 profile id: 0 baseline, 1 main, 2 high. */
  profile: number;
  /** HAP's H.264 level id: 0 3.1 (default), 1 3.2, 2 4.0. */
  level?: number;
  bitrate: number;
  /**
   * Whose video key the accessory answers with: `offered` (the one we offered: a camera with
   * sound, whose encoder starts at START) or `own` (a key of its own: a silent camera's warm
   * encoder). Either way we decrypt with the key answered, as the Home app does.
   */
  videoKey: 'offered' | 'own';
  /** Seconds between our RTCP reports, as START announces it (the Home app: 0.5). */
  rtcpInterval?: number;
}

/**
 * What the receiver may see for each requested HAP profile: the requested one or a subset of it
 * (x264's ultrafast preset uses no CABAC or B-frames and so signals Constrained Baseline).
 */
const PROFILES = [/Video: h264 \(Constrained Baseline\)/, /Video: h264 \((Constrained Baseline|Main)\)/, /Video: h264 \((Constrained Baseline|Main|High)\)/];

const MTU = 1378;
const PAYLOAD_TYPE = 99;
const AUDIO_PAYLOAD_TYPE = 110;

/**
 * One live stream as the Home app runs it: a UDP port of ours where the accessory sends SRTP,
 * whose packets are counted, checked and passed on to an ffmpeg receiver that decodes them with
 * the key and SSRC the accessory answered in SetupEndpoints. From START on, it sends receiver
 * reports (SRTCP, with the key it offered) back to the port the accessory announced, every
 * `rtcpInterval` seconds, as the Home app does while it watches, until `stopRtcp()`.
 */
class LiveStream {
  readonly sessionId = randomBytes(16);
  /** The keys we offer in SetupEndpoints. */
  private readonly offered = { key: randomBytes(16), salt: randomBytes(14), audioKey: randomBytes(16), audioSalt: randomBytes(14) };
  /** The keys the accessory answered: what it encrypts with, and what we decrypt with. */
  answered = { video: Buffer.alloc(0), audio: Buffer.alloc(0) };
  /** Sound packets that arrived at our audio port, and what an OPUS receiver made of them. */
  readonly audio = { packets: 0, payloadTypes: new Set<number>(), ssrcs: new Set<number>() };
  private audioSocket?: Socket;
  private audioReceiver?: ChildProcess;
  private audioLog = '';
  private audioExit?: Promise<number | null>;
  /** What arrived at our port: RTP packets by payload type and SSRC, RTCP counted apart. */
  readonly rtp = { packets: 0, maxSize: 0, payloadTypes: new Set<number>(), ssrcs: new Set<number>(), fromPorts: new Set<number>(), rtcp: 0 };
  firstPacketAt = 0;
  startWrittenAt = 0;
  /** The highest RTP sequence number seen (what our receiver reports tell). */
  private highestSeq = 0;
  private rtcpSender?: SrtcpSender;
  private rtcpTimer?: NodeJS.Timeout;
  /** Receiver reports sent. */
  rtcpSent = 0;
  private ended = false;
  accessory = { address: '', port: 0, ssrc: 0 };
  private socket?: Socket;
  private receiver?: ChildProcess;
  private receiverLog = '';
  private receiverExit?: Promise<number | null>;
  private readonly frameFile: string;

  constructor(
    private readonly client: HttpClient,
    private readonly service: RtpService,
    readonly request: StreamRequest,
    private readonly dir: string,
  ) {
    this.frameFile = join(dir, `frame-${this.sessionId.toString('hex')}.jpg`);
  }

  /**
   * SetupEndpoints (our ports and keys), then the receivers with the keys the accessory answered
   * (before START, so the first keyframe is not missed), then START.
   */
  async start(): Promise<void> {
    const receiverPort = await freeUdpPair();
    this.socket = await bindUdp(0);
    this.socket.on('message', (packet, from) => {
      if (!this.firstPacketAt) this.firstPacketAt = Date.now();
      this.rtp.fromPorts.add(from.port);
      const pt = packet.readUInt8(1);
      if (pt >= 200 && pt <= 204) this.rtp.rtcp++;
      else {
        this.rtp.packets++;
        this.rtp.maxSize = Math.max(this.rtp.maxSize, packet.length);
        this.rtp.payloadTypes.add(pt & 0x7f);
        this.rtp.ssrcs.add(packet.readUInt32BE(8));
        this.highestSeq = packet.readUInt16BE(2);
      }
      this.socket?.send(packet, receiverPort, '127.0.0.1');
    });
    // Sound goes to a port of its own, passed on to an OPUS receiver holding the audio key.
    const audioReceiverPort = await freeUdpPair();
    this.audioSocket = await bindUdp(0);
    this.audioSocket.on('message', (packet) => {
      const pt = packet.readUInt8(1) & 0x7f;
      if (pt >= 72 && pt <= 76) return; // RTCP
      this.audio.packets++;
      this.audio.payloadTypes.add(pt);
      this.audio.ssrcs.add(packet.readUInt32BE(8));
      this.audioSocket?.send(packet, audioReceiverPort, '127.0.0.1');
    });

    // SetupEndpoints: where we listen and the keys we offer; the answer: the accessory's port,
    // SSRC and the keys it encrypts with.
    const { port } = this.socket.address();
    const { key, salt, audioKey, audioSalt } = this.offered;
    const controllerAddress = encode(1, 0, 2, '127.0.0.1', 3, writeUInt16(port), 4, writeUInt16(this.audioSocket.address().port));
    const videoSrtp = encode(1, 0, 2, key, 3, salt);
    const audioSrtp = encode(1, 0, 2, audioKey, 3, audioSalt);
    await write(this.client, this.service.setupEndpoints, encode(1, this.sessionId, 3, controllerAddress, 4, videoSrtp, 5, audioSrtp).toString('base64'));

    const response = await readTlv(this.client, this.service.setupEndpoints);
    assert.deepEqual(response[1], this.sessionId, 'SetupEndpoints answers for our session');
    assert.equal(response[2]?.[0], 0, 'SetupEndpoints status SUCCESS');
    const address = decode(tlvItem(response, 3));
    this.accessory = { address: tlvItem(address, 2).toString(), port: tlvItem(address, 3).readUInt16LE(0), ssrc: tlvItem(response, 6).readUInt32LE(0) };
    assert.equal(this.accessory.address, '127.0.0.1');
    assert.ok(this.accessory.port > 0, 'the accessory names its RTCP port');
    const videoAnswer = decode(tlvItem(response, 4));
    const audioAnswer = decode(tlvItem(response, 5));
    assert.equal(videoAnswer[1]?.[0], 0, 'AES_CM_128_HMAC_SHA1_80 for the video');
    const [videoKey, videoSalt] = [tlvItem(videoAnswer, 2), tlvItem(videoAnswer, 3)];
    assert.deepEqual([videoKey.length, videoSalt.length], [16, 14], 'a 16-byte master key and a 14-byte salt');
    this.answered = { video: Buffer.concat([videoKey, videoSalt]), audio: Buffer.concat([tlvItem(audioAnswer, 2), tlvItem(audioAnswer, 3)]) };
    if (this.request.videoKey === 'offered') assert.deepEqual(this.answered.video, Buffer.concat([key, salt]), 'the accessory encrypts the video with the key we offered');
    else assert.notDeepEqual(this.answered.video.subarray(0, 16), key, 'the accessory encrypts the video with a key of its own');
    assert.deepEqual(this.answered.audio, Buffer.concat([audioKey, audioSalt]), 'and the sound with the key we offered');

    const sdp = join(this.dir, `${this.sessionId.toString('hex')}.sdp`);
    writeFileSync(
      sdp,
      [
        'v=0',
        'o=- 0 0 IN IP4 127.0.0.1',
        's=HomeKit test receiver',
        'c=IN IP4 127.0.0.1',
        't=0 0',
        `m=video ${receiverPort} RTP/SAVP ${PAYLOAD_TYPE}`,
        `a=rtpmap:${PAYLOAD_TYPE} H264/90000`,
        `a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:${this.answered.video.toString('base64')}`,
        '',
      ].join('\n'),
    );
    const receiver = spawn('ffmpeg', [
      '-hide_banner', '-loglevel', 'info', '-nostdin',
      '-protocol_whitelist', 'file,udp,rtp,crypto',
      '-i', sdp,
      '-frames:v', '10', '-update', '1', '-y', this.frameFile,
    ]);
    this.receiver = receiver;
    receiver.stderr.on('data', (d: Buffer) => (this.receiverLog += d.toString()));
    this.receiverExit = waitForExit(receiver, 20_000).catch(() => null);
    await waitUntil('the ffmpeg receiver to bind its port', () => udpBound(receiverPort) || receiver.exitCode !== null);
    assert.equal(receiver.exitCode, null, `the receiver ffmpeg failed:\n${this.receiverLog}`);

    const audioSdp = join(this.dir, `${this.sessionId.toString('hex')}-audio.sdp`);
    writeFileSync(
      audioSdp,
      [
        'v=0',
        'o=- 0 0 IN IP4 127.0.0.1',
        's=HomeKit test sound receiver',
        'c=IN IP4 127.0.0.1',
        't=0 0',
        `m=audio ${audioReceiverPort} RTP/SAVP ${AUDIO_PAYLOAD_TYPE}`,
        `a=rtpmap:${AUDIO_PAYLOAD_TYPE} opus/48000/2`,
        `a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:${this.answered.audio.toString('base64')}`,
        '',
      ].join('\n'),
    );
    const audioReceiver = spawn('ffmpeg', ['-hide_banner', '-loglevel', 'info', '-nostdin', '-protocol_whitelist', 'file,udp,rtp,crypto', '-i', audioSdp, '-t', '1', '-f', 'null', '-']);
    this.audioReceiver = audioReceiver;
    audioReceiver.stderr.on('data', (d: Buffer) => (this.audioLog += d.toString()));
    this.audioExit = waitForExit(audioReceiver, 20_000).catch(() => null);
    await waitUntil('the OPUS receiver to bind its port', () => udpBound(audioReceiverPort) || audioReceiver.exitCode !== null);

    this.startWrittenAt = Date.now();
    await this.writeStart(this.request);
    // Our receiver reports, from the port we receive on, as long as we watch.
    this.rtcpSender = new SrtcpSender(Buffer.concat([key, salt]), randomBytes(4).readUInt32BE(0));
    this.sendRtcp();
    this.rtcpTimer = setInterval(() => this.sendRtcp(), (this.request.rtcpInterval ?? 0.5) * 1000);
  }

  /** SelectedRTPStreamConfiguration START, with the video (and audio) parameters the Home app sends. */
  async writeStart(request: Omit<StreamRequest, 'videoKey'>): Promise<void> {
    const { width, height, fps, profile, level = 0, bitrate, rtcpInterval = 0.5 } = request;
    const video = encode(
      1, 0, // H.264
      2, encode(1, profile, 2, level, 3, 0 /* non-interleaved */),
      3, encode(1, writeUInt16(width), 2, writeUInt16(height), 3, fps),
      4, encode(1, PAYLOAD_TYPE, 2, writeUInt32(randomBytes(4).readUInt32LE(0)), 3, writeUInt16(bitrate), 4, writeFloat32LE(rtcpInterval), 5, writeUInt16(MTU)),
    );
    const audio = encode(
      1, 3, // OPUS
      2, encode(1, 1, 2, 0, 3, 1 /* 16 kHz */, 4, 20),
      3, encode(1, AUDIO_PAYLOAD_TYPE, 2, writeUInt32(randomBytes(4).readUInt32LE(0)), 3, writeUInt16(24), 4, writeFloat32LE(5), 6, 13),
      4, 0,
    );
    await write(this.client, this.service.selected, encode(1, encode(1, this.sessionId, 2, 1 /* START */), 2, video, 3, audio).toString('base64'));
  }

  private sendRtcp(): void {
    if (!this.rtcpSender || !this.socket) return;
    const report = this.rtcpSender.receiverReport(this.rtp.packets > 0 ? { ssrc: this.accessory.ssrc, highestSeq: this.highestSeq } : undefined);
    try {
      this.socket.send(report, this.accessory.port, this.accessory.address);
      this.rtcpSent++;
    } catch {
      // closed
    }
  }

  /** The viewer vanishes: no more receiver reports (and no END). */
  stopRtcp(): void {
    clearInterval(this.rtcpTimer);
    this.rtcpTimer = undefined;
  }

  /** Our UDP port, where the accessory's encoder sends. */
  get port(): number {
    return this.socket?.address().port ?? 0;
  }

  /** Waits for the receiver to decode its frames; answers what it decoded. */
  async decoded(): Promise<{ width: number; height: number; log: string }> {
    const code = await this.receiverExit;
    assert.equal(code, 0, `the receiver decoded no stream (exit ${code}):\n${this.receiverLog.slice(-2000)}`);
    assert.match(this.receiverLog, /Video: h264/, 'the receiver decoded H.264');
    const [width, height] = await probeSize(this.frameFile);
    return { width, height, log: this.receiverLog };
  }

  /** Waits for the OPUS receiver (one second of sound); answers its log. */
  async soundDecoded(): Promise<string> {
    const code = await this.audioExit;
    assert.equal(code, 0, `the OPUS receiver decoded no sound (exit ${code}):\n${this.audioLog.slice(-2000)}`);
    return this.audioLog;
  }

  /** SelectedRTPStreamConfiguration RECONFIGURE: the Home app asks for another size, rate and bitrate. */
  async reconfigure(width: number, height: number, fps: number, bitrate: number): Promise<void> {
    const video = encode(
      3, encode(1, writeUInt16(width), 2, writeUInt16(height), 3, fps),
      4, encode(3, writeUInt16(bitrate), 4, writeFloat32LE(0.5)),
    );
    await write(this.client, this.service.selected, encode(1, encode(1, this.sessionId, 2, 4 /* RECONFIGURE */), 2, video).toString('base64'));
  }

  /** SelectedRTPStreamConfiguration END. */
  async end(): Promise<void> {
    this.ended = true;
    this.stopRtcp();
    await write(this.client, this.service.selected, encode(1, encode(1, this.sessionId, 2, 0 /* END */)).toString('base64'));
  }

  /** END unless the test already did (after a failure, so the next subtest finds the service free). */
  async endQuietly(): Promise<void> {
    if (!this.ended && this.startWrittenAt) await this.end().catch(() => {});
    this.close();
  }

  close(): void {
    this.stopRtcp();
    this.receiver?.kill('SIGKILL');
    this.audioReceiver?.kill('SIGKILL');
    try {
      this.audioSocket?.close();
    } catch {
      // already closed
    }
    try {
      this.socket?.close();
    } catch {
      // already closed
    }
  }
}

/** SetupEndpoints alone (no START follows): a session prepared and abandoned. */
async function setupEndpointsOnly(client: HttpClient, setupEndpoints: string): Promise<void> {
  const address = encode(1, 0, 2, '127.0.0.1', 3, writeUInt16(9), 4, writeUInt16(9));
  const srtp = encode(1, 0, 2, randomBytes(16), 3, randomBytes(14));
  await write(client, setupEndpoints, encode(1, randomBytes(16), 3, address, 4, srtp, 5, srtp).toString('base64'));
}

// ---------------------------------------------------------------------------------------------
// Homebridge

/** A Homebridge child process on `storage`, loading the plugin from this repository's dist/. */
class Homebridge {
  readonly child: ChildProcess;
  output = '';

  constructor(storage: string, config: Record<string, unknown>, env: Record<string, string> = {}) {
    writeFileSync(join(storage, 'config.json'), JSON.stringify(config));
    this.child = spawn(HOMEBRIDGE.node, [HOMEBRIDGE.homebridge, '-D', '-Q', '-U', storage, '-P', ROOT], { env: { ...process.env, FORCE_COLOR: '0', ...env } });
    this.child.stdout!.on('data', (d: Buffer) => (this.output += d.toString()));
    this.child.stderr!.on('data', (d: Buffer) => (this.output += d.toString()));
  }

  async waitFor(pattern: RegExp, timeoutMs = 20_000): Promise<RegExpExecArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const match = pattern.exec(this.output);
      if (match) return match;
      if (Date.now() > deadline || this.child.exitCode !== null) throw new Error(`no ${pattern} in Homebridge output:\n${this.output}`);
      await sleep(50);
    }
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill(signal);
      await waitForExit(this.child, 15_000);
    }
  }
}

const bridgeConfig = (username: string, port: number) => ({ name: `Webcam Test ${username.slice(-2)}`, username, port, pin: PIN, advertiser: 'ciao', bind: ['lo'] });

describe(`HomeKit camera under Homebridge ${HOMEBRIDGE.version}`, { skip: existsSync(join(ROOT, 'dist', 'index.js')) ? false : 'run `npm run build` first' }, () => {
  let dir = '';
  // Set by before(); after() runs also when before() failed before setting them.
  let hb: Homebridge | undefined;
  let client: HttpClient | undefined;
  let accessoryPort = 0;
  let webUrl = '';
  let aid = 1;
  const rtpServices: RtpService[] = [];
  let motionId = '';
  const motionEvents: Array<{ value: boolean; at: number }> = [];
  /** Every ffmpeg Homebridge ran during the test (checked after it stops). */
  const seen = new Set<number>();
  const streams: LiveStream[] = [];
  const viewers: MjpegClient[] = [];

  const homebridge = (): Homebridge => {
    assert.ok(hb, 'Homebridge started in before()');
    return hb;
  };
  const hap = (): HttpClient => {
    assert.ok(client, 'the client paired in before()');
    return client;
  };
  /** The CameraRTPStreamManagement service `i` the first subtest found. */
  const rtpService = (i: number): RtpService => nth(rtpServices, i, 'the stream services');
  const processes = async (): Promise<FfmpegProcesses> => {
    const found = await ffmpegChildren(homebridge().child.pid!);
    for (const pid of found.all) seen.add(pid);
    return found;
  };
  /** A stream of the camera with sound: its encoder starts at START, with the key we offer. */
  const stream = (t: { after: (fn: () => Promise<void>) => void }, service: RtpService, request: Omit<StreamRequest, 'videoKey'>): LiveStream => {
    const s = new LiveStream(hap(), service, { ...request, videoKey: 'offered' }, dir);
    streams.push(s);
    t.after(() => s.endQuietly());
    return s;
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'webcam-homekit-'));
    const [bridgePort, cameraPort, webPort] = [await freeTcpPort(), await freeTcpPort(), await freeTcpPort()];
    webUrl = `http://127.0.0.1:${webPort}`;
    const config = {
      bridge: bridgeConfig('0E:AA:BB:CC:DD:E1', bridgePort),
      // The external camera accessory takes the first port of this range.
      ports: { start: cameraPort, end: cameraPort },
      platforms: [
        {
          platform: 'WebcamServer',
          name: 'Webcam Server',
          cameras: [
            {
              name: CAMERA,
              source: 'testsrc',
              width: WIDTH,
              height: HEIGHT,
              fps: FPS,
              motion: { enabled: true, cooldownSeconds: COOLDOWN_S },
              homekit: { unbridge: true, maxStreams: 2 },
              // A test tone stands in for the webcam's microphone, as testsrc does for its picture.
              audio: { enabled: true, source: 'sine' },
            },
          ],
          web: { host: '127.0.0.1', port: webPort },
        },
      ],
    };
    mkdirSync(join(dir, 'webcam-server'), { recursive: true });
    await writeUsers(join(dir, 'webcam-server', 'users'), { alice: 'wonderland' });
    hb = new Homebridge(dir, config);

    // Homebridge appends identifying material to an external accessory's name ("Porch F360").
    const running = await hb.waitFor(new RegExp(`\\] ${CAMERA}( [0-9A-F]{4})? is running on port (\\d+)`));
    accessoryPort = Number(running[2]);
    assert.equal(accessoryPort, cameraPort, 'the camera took the port from the "ports" range');

    client = new HttpClient('webcam-test', '127.0.0.1', accessoryPort, undefined, { usePersistentConnections: true });
    await client.pairSetup(PIN);
  });

  after(async () => {
    for (const s of streams) s.close();
    for (const v of viewers) v.close();
    await client?.close().catch(() => {});
    await hb?.stop('SIGKILL').catch(() => {});
    for (const pid of seen) if (isAlive(pid)) process.kill(pid, 'SIGKILL');
    if (process.env.HOMEKIT_TEST_LOG) writeFileSync(process.env.HOMEKIT_TEST_LOG, hb?.output ?? '');
    rmSync(dir, { recursive: true, force: true });
  });

  it('lists a camera with two stream services, a motion sensor and the package version', async () => {
    const { accessories } = await hap().getAccessories();
    assert.equal(accessories.length, 1, 'an unbridged camera is an accessory of its own');
    const accessory = nth(accessories, 0, 'the accessories');
    aid = accessory.aid;
    const services = accessory.services.map((s) => ({ ...s, type: hapUuid(s.type) }));
    const find = (service: string, characteristic: string) =>
      services.filter((s) => s.type === service).map((s) => s.characteristics.find((c) => hapUuid(c.type ?? '') === characteristic));

    const rtp = services.filter((s) => s.type === SERVICE.rtp);
    assert.equal(rtp.length, 2, 'CameraRTPStreamManagement once per allowed stream (maxStreams 2)');
    for (const s of rtp) {
      const iid = (type: string) => `${aid}.${s.characteristics.find((c) => hapUuid(c.type ?? '') === type)!.iid}`;
      rtpServices.push({ setupEndpoints: iid(CHAR.setupEndpoints), selected: iid(CHAR.selected), status: iid(CHAR.streamingStatus) });
    }

    const detected = find(SERVICE.motion, CHAR.motionDetected);
    assert.equal(detected.length, 1, 'one MotionSensor service');
    assert.ok([true, false, 0, 1].includes(detected[0]?.value as number), `MotionDetected reads as a boolean (${String(detected[0]?.value)})`);
    motionId = `${aid}.${detected[0]!.iid}`;
    // Motion events from now on: the last subtest reads them.
    hap().on('event', (event: { characteristics: Array<{ aid: number; iid: number; value: unknown }> }) => {
      for (const c of event.characteristics) {
        if (`${c.aid}.${c.iid}` === motionId) motionEvents.push({ value: c.value === true || c.value === 1, at: Date.now() });
      }
    });
    await hap().subscribeCharacteristics([motionId]);

    const [firmware] = find(SERVICE.info, CHAR.firmware);
    assert.equal(firmware?.value, version, 'FirmwareRevision is the package version');
  });

  it('answers snapshots as JPEGs of exactly the requested size', async (t) => {
    for (const [width, height] of [
      [WIDTH, HEIGHT],
      [320, 240],
    ] as const) {
      const started = Date.now();
      const image = await hap().getImage(width, height, aid);
      const took = Date.now() - started;
      // How fast is bench:homekit's to measure; a test on a shared machine only reports it.
      t.diagnostic(`snapshot ${width}x${height} in ${took} ms`);
      assert.equal(image.subarray(0, 2).toString('hex'), 'ffd8', 'a JPEG');
      const file = join(dir, `snapshot-${width}x${height}.jpg`);
      writeFileSync(file, image);
      assert.deepEqual(await probeSize(file), [width, height]);
    }
  });

  it('streams H.264 over SRTP that a receiver holding the key decodes, and END stops the encoder', async (t) => {
    const before = await processes();
    assert.equal(before.encoders.length, 0, 'no encoder before a stream');
    const s = stream(t, rtpService(0), { width: WIDTH, height: HEIGHT, fps: FPS, profile: 1, bitrate: 800 });
    await s.start();
    const streaming = await processes();
    assert.equal(streaming.encoders.length, 1, 'one encoder for the session');
    assert.equal(streaming.capture.length, 1, 'the encoder does not open the camera');
    assert.deepEqual(streaming.capture, before.capture, 'the capture that ran before the stream (motion) serves it');

    const decoded = await s.decoded();
    assert.deepEqual([decoded.width, decoded.height], [WIDTH, HEIGHT], 'frames of the requested size');
    assert.match(decoded.log, nth(PROFILES, 1), 'a profile a Main decoder plays');
    assert.deepEqual([...s.rtp.ssrcs], [s.accessory.ssrc], 'RTP carries the SSRC announced in SetupEndpoints');
    assert.deepEqual([...s.rtp.payloadTypes], [PAYLOAD_TYPE], 'RTP carries the payload type asked for');
    assert.ok(s.rtp.maxSize <= MTU, `packets fit the MTU (largest ${s.rtp.maxSize})`);
    const sound = await s.soundDecoded();
    assert.match(sound, /Audio: opus, 48000 Hz/, 'the sound is OPUS a receiver holding the key decodes');
    assert.deepEqual([...s.audio.payloadTypes], [AUDIO_PAYLOAD_TYPE], 'sound carries the payload type asked for');
    assert.equal(s.audio.ssrcs.size, 1);
    assert.ok(s.audio.packets >= 20, `sound packets arrived (${s.audio.packets})`);
    const firstPacket = s.firstPacketAt - s.startWrittenAt;
    // Reported, not asserted: stream-start time is bench:homekit's figure. The order is asserted.
    t.diagnostic(`first SRTP packet ${firstPacket} ms after START was written`);
    assert.ok(firstPacket >= 0, `the first packet came after START was written (${firstPacket} ms)`);

    const status = await readTlv(hap(), rtpService(0).status);
    assert.equal(status[1]?.[0], 1, 'StreamingStatus IN_USE while streaming');

    await s.end();
    const encoder = nth(streaming.encoders, 0, 'the encoders');
    await waitUntil('the encoder to exit after END', () => !isAlive(encoder), 2_000);
    assert.equal((await processes()).encoders.length, 0, 'no encoder left after END');
    const after = await readTlv(hap(), rtpService(0).status);
    assert.equal(after[1]?.[0], 0, 'StreamingStatus AVAILABLE again');
    const packets = s.rtp.packets;
    await sleep(300);
    assert.equal(s.rtp.packets, packets, 'no packet after END');
  });

  it('runs two sessions and a web viewer on one capture', async (t) => {
    const viewer = new MjpegClient(`${webUrl}/cameras/porch/stream.mjpg`, basic('alice', 'wonderland'));
    viewers.push(viewer);
    await viewer.open();
    assert.equal(viewer.status, 200);
    const a = stream(t, rtpService(0), { width: WIDTH, height: HEIGHT, fps: FPS, profile: 0, bitrate: 600 });
    const b = stream(t, rtpService(1), { width: 320, height: 240, fps: FPS, profile: 2, bitrate: 300 });
    await a.start();
    await b.start();
    await viewer.waitForParts(5);

    const running = await processes();
    assert.equal(running.capture.length, 1, 'exactly one capture ffmpeg');
    assert.equal(running.encoders.length, 2, 'one encoder per session');
    assert.equal(running.all.length, 3, 'nothing else');

    const [da, db] = await Promise.all([a.decoded(), b.decoded()]);
    assert.deepEqual([da.width, da.height], [WIDTH, HEIGHT]);
    assert.deepEqual([db.width, db.height], [320, 240]);
    assert.match(da.log, nth(PROFILES, 0), 'a profile a Baseline decoder plays');
    assert.match(db.log, nth(PROFILES, 2), 'a profile a High decoder plays');
    assert.notEqual(a.accessory.ssrc, b.accessory.ssrc, 'each session its own SSRC');
    // The web viewer keeps getting frames while both streams run.
    await viewer.waitForParts(viewer.count + 3, 15_000);
    assert.deepEqual((await processes()).capture, running.capture, 'still the same one capture');

    await a.end();
    await b.end();
    await waitUntil('both encoders to exit', () => running.encoders.every((pid) => !isAlive(pid)), 2_000);
    viewer.close();
  });

  it('replaces the encoder when the Home app reconfigures the stream, keeping the session', async (t) => {
    const s = stream(t, rtpService(0), { width: WIDTH, height: HEIGHT, fps: FPS, profile: 1, bitrate: 800 });
    await s.start();
    await waitUntil('packets', () => s.rtp.packets > 20);
    const [first] = (await processes()).encoders;
    assert.ok(first !== undefined, 'the encoder');
    const argsOf = async (pid: number) => (await execFileAsync('ps', ['-o', 'args=', '-p', String(pid)])).stdout;
    assert.match(await argsOf(first), /scale=640:360/);

    await s.reconfigure(320, 180, 10, 200);
    await waitUntil('a new encoder', async () => {
      const { encoders } = await processes();
      return encoders.length === 1 && encoders[0] !== first;
    });
    const [second] = (await processes()).encoders;
    assert.ok(second !== undefined, 'the new encoder');
    assert.match(await argsOf(second), /scale=320:180.*-r 10 .*-b:v 200k/);
    assert.equal(isAlive(first), false, 'the old encoder is gone');
    const packets = s.rtp.packets;
    await waitUntil('packets from the new encoder', () => s.rtp.packets > packets + 10);
    assert.deepEqual([...s.rtp.ssrcs], [s.accessory.ssrc], 'the same SSRC throughout');
    await s.end();
    await waitUntil('the encoder to exit after END', () => !isAlive(second), 2_000);
  });

  /** The encoder sending to `s` (its srtp:// URL names our port), once there is exactly one. */
  const encoderOf = async (s: LiveStream): Promise<number> => {
    let found: number[] = [];
    await waitUntil(`one encoder for the stream to port ${s.port}`, async () => {
      found = (await processes()).encoders.filter((pid) => commandLine(pid).includes(`srtp://127.0.0.1:${s.port}?`));
      return found.length === 1;
    });
    return nth(found, 0, 'the encoders');
  };
  const streamingStatus = async (service: RtpService) => (await readTlv(hap(), service.status))[1]?.[0];

  it('clamps a START asking for 10000x10000 to the largest size offered, and says so', async (t) => {
    const s = stream(t, rtpService(0), { width: 10_000, height: 10_000, fps: 120, profile: 2, level: 2, bitrate: 65_535 });
    await s.start();
    const encoder = await encoderOf(s);
    const args = commandLine(encoder);
    assert.match(args, /scale=640:360:/, 'the encoder runs at the capture size, the largest offered');
    assert.match(args, / -r 15 /, 'at the capture rate');
    const bitrate = Number(/ -b:v (\d+)k /.exec(args)?.[1]);
    assert.ok(bitrate >= 64 && bitrate <= 2_000, `at a sane bitrate (${bitrate} kbit/s)`);
    const rss = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${encoder}/status`, 'utf8'))?.[1];
    t.diagnostic(`encoder RSS ${Math.round(Number(rss) / 1024)} MB`);
    const decoded = await s.decoded();
    assert.deepEqual([decoded.width, decoded.height], [WIDTH, HEIGHT], 'the stream decodes at that size');
    assert.match(homebridge().output, /asked for 10000x10000 at 120 fps, 65535 kbit\/s[^\n]*: streaming 640x360 at 15 fps, \d+ kbit\/s/, 'the log says what was asked and what is used');
    await s.end();
    await waitUntil('the encoder to exit after END', () => !isAlive(encoder), 2_000);
  });

  it('answers a repeated START for a running session as a reconfigure; END still stops its one encoder', async (t) => {
    const s = stream(t, rtpService(0), { width: WIDTH, height: HEIGHT, fps: FPS, profile: 1, bitrate: 800 });
    await s.start();
    await waitUntil('packets', () => s.rtp.packets > 10);
    const first = await encoderOf(s);

    // The same START again: accepted, and the running encoder goes on.
    await s.writeStart(s.request);
    await sleep(300);
    assert.deepEqual((await processes()).encoders, [first], 'one encoder, the same one');

    // A START asking for something else: accepted, and the encoder replaced, not added to.
    await s.writeStart({ ...s.request, width: 320, height: 240, bitrate: 300 });
    await waitUntil('the first encoder to be replaced', () => !isAlive(first), 3_000);
    const second = await encoderOf(s);
    assert.match(commandLine(second), /scale=320:240:/);
    assert.deepEqual((await processes()).encoders, [second], 'exactly one encoder for the session');
    const packets = s.rtp.packets;
    await waitUntil('packets from the new encoder', () => s.rtp.packets > packets + 10);
    assert.deepEqual([...s.rtp.ssrcs], [s.accessory.ssrc], 'the same SSRC throughout');
    assert.equal(await streamingStatus(rtpService(0)), 1, 'StreamingStatus still IN_USE');

    // HAP still knows the session: END is accepted, and stops the encoder.
    await s.end();
    await waitUntil('the encoder to exit after END', () => !isAlive(second), 2_000);
    assert.deepEqual((await processes()).encoders, [], 'no encoder left');
    assert.equal(await streamingStatus(rtpService(0)), 0, 'StreamingStatus AVAILABLE again');
  });

  it('ends a stream whose viewer stops sending RTCP after a few intervals, and keeps one whose viewer goes on', async (t) => {
    const staying = stream(t, rtpService(1), { width: 320, height: 240, fps: FPS, profile: 1, bitrate: 300 });
    await staying.start();
    const vanishing = stream(t, rtpService(0), { width: WIDTH, height: HEIGHT, fps: FPS, profile: 1, bitrate: 600 });
    await vanishing.start();
    await waitUntil('both streams flowing, both viewers reporting', () => staying.rtp.packets > 10 && vanishing.rtp.packets > 10 && vanishing.rtcpSent > 2);
    const [stayingEncoder, vanishingEncoder] = [await encoderOf(staying), await encoderOf(vanishing)];
    const outputBefore = homebridge().output.length;

    // The viewer vanishes: no more reports, no END.
    vanishing.stopRtcp();
    const silentAt = Date.now();
    await waitUntil('the encoder of the vanished viewer to end', () => !isAlive(vanishingEncoder), 20_000);
    t.diagnostic(`the encoder ended ${Date.now() - silentAt} ms after the last receiver report`);
    assert.match(homebridge().output.slice(outputBefore), /Stream ended: no RTCP from the Home app for [\d.]+ s/);
    await waitUntil('HAP to have the service free again', async () => (await streamingStatus(rtpService(0))) === 0, 2_000);

    // The other one, started before it, lives on past that point: its viewer still reports.
    assert.ok(isAlive(stayingEncoder), 'the stream whose viewer reports goes on');
    const packets = staying.rtp.packets;
    await waitUntil('more packets for the viewer that stayed', () => staying.rtp.packets > packets + 20);
    assert.ok(isAlive(stayingEncoder));
    assert.equal(await streamingStatus(rtpService(1)), 1, 'its StreamingStatus still IN_USE');
    await staying.end();
    await waitUntil('its encoder to exit after END', () => !isAlive(stayingEncoder), 2_000);
  });

  it('reports motion on the moving test pattern and clears it after the cooldown', async () => {
    // Continuous motion: true, false once the cooldown has passed, then true again.
    const cycle = () => {
      for (const [i, event] of motionEvents.entries()) {
        const next = motionEvents[i + 1];
        if (next && event.value && !next.value) return next.at - event.at;
      }
      return undefined;
    };
    await waitUntil('MotionDetected true then false', () => cycle() !== undefined, (COOLDOWN_S + 4) * 1000);
    const held = cycle()!;
    assert.ok(held >= COOLDOWN_S * 1000 - 300 && held <= COOLDOWN_S * 1000 + 1_000, `motion held ${held} ms for a ${COOLDOWN_S} s cooldown`);
  });

  it('leaves no ffmpeg behind when Homebridge stops, not even a running stream', async (t) => {
    const s = stream(t, rtpService(0), { width: 320, height: 240, fps: FPS, profile: 1, bitrate: 300 });
    await s.start();
    const running = await processes();
    assert.equal(running.encoders.length, 1);
    assert.equal(running.capture.length, 1);
    await homebridge().stop('SIGTERM');
    await waitUntil('every ffmpeg to end', () => [...seen].every((pid) => !isAlive(pid)), 3_000);
    assert.doesNotMatch(homebridge().output, /Could not start|Unhandled|TypeError|ReferenceError/, 'no error in the Homebridge log');
  });
});

describe(`bridged HomeKit camera under Homebridge ${HOMEBRIDGE.version}`, { skip: existsSync(join(ROOT, 'dist', 'index.js')) ? false : 'run `npm run build` first' }, () => {
  it('sits on the bridge, answers a snapshot from an idle capture, and stays cached when ffmpeg is missing', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'webcam-homekit-'));
    let hb: Homebridge | undefined;
    t.after(async () => {
      await hb?.stop('SIGKILL').catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    });
    const bridgePort = await freeTcpPort();
    const platform = {
      platform: 'WebcamServer',
      name: 'Webcam Server',
      // Motion off: nothing keeps the capture running, so the snapshot has to start it.
      cameras: [{ name: 'Garage', source: 'testsrc', width: 320, height: 240, fps: 10, motion: { enabled: false }, homekit: { unbridge: false } }],
      web: { enabled: false },
    };
    hb = new Homebridge(dir, { bridge: bridgeConfig('0E:AA:BB:CC:DD:E2', bridgePort), platforms: [platform] });
    await hb.waitFor(/\[Garage\] Added to the bridge/);
    await hb.waitFor(/is running on port/);
    // Nobody watches, motion is off: no ffmpeg at all (homekit.warmEncoder is off by default).
    await sleep(1_000);
    const idle = await ffmpegChildren(hb.child.pid!);
    assert.deepEqual(idle.all, [], 'no capture and no encoder while nothing consumes them');

    const client = new HttpClient('bridge', '127.0.0.1', bridgePort, undefined, { usePersistentConnections: true });
    t.after(() => client.close());
    await client.pairSetup(PIN);
    const camera = async () => {
      const { accessories } = await client.getAccessories();
      return accessories.find((a) => a.services.some((s) => hapUuid(s.type) === SERVICE.rtp));
    };
    const garage = await camera();
    assert.ok(garage && garage.aid !== 1, 'the camera is a bridged accessory');
    assert.equal(garage.services.filter((s) => hapUuid(s.type) === SERVICE.motion).length, 0, 'no motion sensor with motion off');

    const started = Date.now();
    const image = await client.getImage(320, 240, garage.aid);
    const file = join(dir, 'snapshot.jpg');
    writeFileSync(file, image);
    assert.deepEqual(await probeSize(file), [320, 240]);
    t.diagnostic(`snapshot from an idle capture in ${Date.now() - started} ms`);
    assert.equal((await ffmpegChildren(hb.child.pid!)).capture.length, 1, 'the snapshot started the capture');

    // SetupEndpoints starts an encoder (the largest size offered, 802 kbit/s, High 4.0) and
    // answers with its own key and SSRC; a START asking exactly that is served by it, through its
    // relay, from the port SetupEndpoints announced.
    const [rtp] = garage.services.filter((s) => hapUuid(s.type) === SERVICE.rtp);
    assert.ok(rtp, 'a stream service');
    const iid = (type: string) => `${garage.aid}.${rtp.characteristics.find((c) => hapUuid(c.type ?? '') === type)!.iid}`;
    const service = { setupEndpoints: iid(CHAR.setupEndpoints), selected: iid(CHAR.selected), status: iid(CHAR.streamingStatus) };
    const s = new LiveStream(client, service, { width: 320, height: 240, fps: 10, profile: 2, level: 2, bitrate: 802, videoKey: 'own' }, dir);
    t.after(() => s.endQuietly());
    await s.start();
    const hit = await hb.waitFor(/Standby encoder: hit \(started (\d+) ms before START\)/);
    const decoded = await s.decoded();
    assert.deepEqual([decoded.width, decoded.height], [320, 240]);
    assert.deepEqual([...s.rtp.ssrcs], [s.accessory.ssrc], 'RTP carries the SSRC announced in SetupEndpoints');
    assert.deepEqual([...s.rtp.payloadTypes], [PAYLOAD_TYPE]);
    assert.deepEqual([...s.rtp.fromPorts], [s.accessory.port], 'sent from the port SetupEndpoints announced');
    t.diagnostic(`encoder started ${hit[1]} ms before START; first SRTP packet ${s.firstPacketAt - s.startWrittenAt} ms after START`);
    const [streaming] = (await ffmpegChildren(hb.child.pid!)).encoders;
    assert.ok(streaming !== undefined, 'the stream encoder');
    await s.end();
    await waitUntil('the encoder to exit after END', () => !isAlive(streaming), 2_000);
    await sleep(500);
    assert.deepEqual((await ffmpegChildren(hb.child.pid!)).encoders, [], 'no encoder waits for the next stream');
    // A session prepared and never started holds an encoder; it ends with Homebridge.
    await setupEndpointsOnly(client, service.setupEndpoints);
    await waitUntil('the encoder of a set-up never started', async () => (await ffmpegChildren(hb!.child.pid!)).encoders.length === 1);
    const [next] = (await ffmpegChildren(hb.child.pid!)).encoders;
    assert.ok(next !== undefined, 'the encoder of the set-up');

    // Restart where no ffmpeg can be found (an empty PATH): the camera cannot run, but its cached
    // accessory (with the user's room and automations) must stay on the bridge.
    await client.close();
    await hb.stop();
    await waitUntil('the encoder of the set-up to end with Homebridge', () => !isAlive(next), 3_000);
    const emptyPath = join(dir, 'empty-path');
    mkdirSync(emptyPath);
    hb = new Homebridge(dir, { bridge: bridgeConfig('0E:AA:BB:CC:DD:E2', bridgePort), platforms: [platform] }, { PATH: emptyPath });
    await hb.waitFor(/Could not start: No usable ffmpeg found/);
    await hb.waitFor(/is running on port/);
    const again = new HttpClient('bridge', '127.0.0.1', bridgePort, client.getLongTermData()!, { usePersistentConnections: true });
    t.after(() => again.close());
    const { accessories } = await again.getAccessories();
    assert.ok(
      accessories.some((a) => a.aid === garage.aid),
      `the cached camera is still on the bridge:\n${hb.output.split('\n').filter((l) => /Garage|camera/.test(l)).join('\n')}`,
    );
    assert.doesNotMatch(hb.output, /Removed \d+ camera/);
  });
});
