// HomeKit Secure Video end to end: a real Homebridge (child process, the built plugin from dist/)
// publishes one `testsrc` camera (1280x720 at 15 fps, motion on, recording offered, the web server
// on) and the test plays the home hub with test/hds-client.ts: pairs, reads the recording
// configurations (205/206/207), selects 640x360 High (209), turns recording on, opens the HomeKit
// Data Stream, waits for the camera's own motion sensor and records ~10 s over
// `ipcamera.recording`. The clip must decode as H.264 of the selected size, start with the
// prebuffer (several seconds of media arrive at once), and follow HomeKit's rules (moof + mdat
// packets, each on a key frame, none longer than the fragment length), while a web MJPEG viewer
// keeps its frame rate and one capture ffmpeg serves everything. Then the Home app's switches:
// camera off (no stream, no snapshot, no recording, no encoder; all back when on), recording off
// (the encoder goes), both remembered across a Homebridge restart, and no ffmpeg left when
// Homebridge stops in the middle of a recording. Runs under Homebridge 1.x on this Node, or 2.x
// on Node 22 with WEBCAM_TEST_HOMEBRIDGE=2 (see test/helpers.ts homebridgeCommand).
// HKSV_TEST_LOG=FILE keeps the Homebridge log.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:dgram';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import type { PairingData } from 'hap-controller';
import { encode, writeFloat32LE, writeUInt16, writeUInt32 } from 'hap-nodejs/dist/lib/util/tlv';
import { decode } from 'hap-nodejs/dist/lib/util/tlv';

import { basic, execFileAsync, freeTcpPort, homebridgeCommand, isAlive, MjpegClient, nth, probeSize, sleep, waitForExit, waitUntil, writeUsers } from './helpers';
import { bindUdp, hapUuid } from './hap-udp';
import type { RecordingSelection } from './hds-client';
import { H264ProfileId, HapStatusError, HdsReason, HdsRequestError, HKSV, HomeHub, inspectRecording } from './hds-client';

const ROOT = join(__dirname, '..');
const HOMEBRIDGE = homebridgeCommand();
const PIN = '031-45-154';
const CAMERA = 'Driveway';
const WIDTH = 1280;
const HEIGHT = 720;
const FPS = 15;
/** What the hub selects: smaller than the capture, so the selection visibly reaches the encoder. */
const SELECTED = { width: 640, height: 360 };
/** What must not appear in Homebridge's log. */
const LOG_ERRORS = /Unhandled|TypeError|ReferenceError|RangeError|H\.264 stage: (the encoder ended|unreadable|could not start)|Recording stream \d+ failed/;
/** HAP's NOT_ALLOWED_IN_CURRENT_STATE. */
const NOT_ALLOWED_IN_CURRENT_STATE = -70412;
/** Every ffmpeg this Homebridge starts inherits it: how /proc tells ours from anyone else's. */
const MARKER_NAME = 'WEBCAM_HKSV_TEST';
const MARKER_VALUE = `${process.pid}-${randomBytes(4).toString('hex')}`;
const MARKER = `${MARKER_NAME}=${MARKER_VALUE}`;

const RTP = {
  setupEndpoints: hapUuid('118'),
  selected: hapUuid('117'),
};

// ---------------------------------------------------------------------------------------------
// ffmpeg processes, from /proc

interface FfmpegProcess {
  pid: number;
  ppid: number;
  args: string;
}

/** The processes of ffmpeg carrying this run's marker in their environment (children of Homebridge or orphans). */
function ourFfmpegs(): FfmpegProcess[] {
  const found: FfmpegProcess[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').filter(Boolean);
      if (!/(^|\/)ffmpeg$/.test(argv[0] ?? '')) continue;
      if (!readFileSync(`/proc/${entry}/environ`, 'utf8').split('\0').includes(MARKER)) continue;
      // stat: "pid (comm) state ppid ..."; comm may hold spaces, so read after the last ')'.
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      found.push({ pid: Number(entry), ppid, args: argv.join(' ') });
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return found;
}

/** Bytes a process has written so far (its pipe output: the capture writes nothing else). */
function writtenBytes(pid: number): number {
  return Number(/^wchar:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/io`, 'utf8'))?.[1] ?? NaN);
}

interface Ffmpegs {
  /** The camera's capture (reads the lavfi testsrc). */
  capture: number[];
  /** The H.264 stage's encoder (JPEG frames on stdin, fragmented MP4 on stdout). */
  stage: number[];
  /** Live-stream encoders (SRTP out). */
  live: number[];
  all: number[];
}

function classify(processes: FfmpegProcess[]): Ffmpegs {
  const result: Ffmpegs = { capture: [], stage: [], live: [], all: [] };
  for (const { pid, args } of processes) {
    result.all.push(pid);
    if (/ -f lavfi /.test(args) && /testsrc=/.test(args)) result.capture.push(pid);
    else if (/ -i pipe:0 /.test(args) && / -f mp4 /.test(args) && / pipe:1$/.test(args)) result.stage.push(pid);
    else if (/ srtp:\/\//.test(args)) result.live.push(pid);
  }
  return result;
}

// ---------------------------------------------------------------------------------------------
// Homebridge

/** A Homebridge child process on `storage`, loading the plugin from this repository's dist/. */
class Homebridge {
  readonly child: ChildProcess;
  output = '';

  constructor(storage: string, config: Record<string, unknown>) {
    writeFileSync(join(storage, 'config.json'), JSON.stringify(config));
    this.child = spawn(HOMEBRIDGE.node, [HOMEBRIDGE.homebridge, '-D', '-Q', '-U', storage, '-P', ROOT], { env: { ...process.env, FORCE_COLOR: '0', [MARKER_NAME]: MARKER_VALUE } });
    this.child.stdout!.on('data', (d: Buffer) => (this.output += d.toString()));
    this.child.stderr!.on('data', (d: Buffer) => (this.output += d.toString()));
  }

  /** The first match of `pattern` in the output after `from` (an earlier `output.length`). */
  async waitFor(pattern: RegExp, from = 0, timeoutMs = 30_000): Promise<RegExpExecArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const match = pattern.exec(this.output.slice(from));
      if (match) return match;
      if (Date.now() > deadline || this.child.exitCode !== null) throw new Error(`no ${pattern} in Homebridge output:\n${this.output.slice(-6000)}`);
      await sleep(50);
    }
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill(signal);
      await waitForExit(this.child, 20_000);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The Home app's side of a live stream, as far as this test needs it

const PAYLOAD_TYPE = 99;

/** SetupEndpoints for a new session (our UDP port, a key); answers the session id. Throws HapStatusError when refused. */
async function setupEndpoints(hub: HomeHub, port: number): Promise<Buffer> {
  const sessionId = randomBytes(16);
  const address = encode(1, 0, 2, '127.0.0.1', 3, writeUInt16(port), 4, writeUInt16(port));
  const srtp = encode(1, 0, 2, randomBytes(16), 3, randomBytes(14));
  await hub.write([{ service: HKSV.service.rtp, characteristic: RTP.setupEndpoints, value: encode(1, sessionId, 3, address, 4, srtp, 5, srtp).toString('base64') }]);
  const answer = decode(Buffer.from(String(await hub.read(HKSV.service.rtp, RTP.setupEndpoints)), 'base64'));
  assert.deepEqual(answer[1], sessionId, 'SetupEndpoints answers for our session');
  assert.equal(answer[2]?.[0], 0, 'SetupEndpoints status SUCCESS');
  return sessionId;
}

/** SelectedRTPStreamConfiguration: START (640x360 Main, 600 kbit/s) or END for a session. */
async function selectStream(hub: HomeHub, sessionId: Buffer, command: 'start' | 'end'): Promise<void> {
  const session = encode(1, sessionId, 2, command === 'start' ? 1 : 0);
  if (command === 'end') {
    await hub.write([{ service: HKSV.service.rtp, characteristic: RTP.selected, value: encode(1, session).toString('base64') }]);
    return;
  }
  const video = encode(
    1, 0,
    2, encode(1, 1, 2, 0, 3, 0),
    3, encode(1, writeUInt16(640), 2, writeUInt16(360), 3, 15),
    4, encode(1, PAYLOAD_TYPE, 2, writeUInt32(randomBytes(4).readUInt32LE(0)), 3, writeUInt16(600), 4, writeFloat32LE(0.5), 5, writeUInt16(1378)),
  );
  const audio = encode(
    1, 3,
    2, encode(1, 1, 2, 0, 3, 1, 4, 20),
    3, encode(1, 110, 2, writeUInt32(randomBytes(4).readUInt32LE(0)), 3, writeUInt16(24), 4, writeFloat32LE(5), 6, 13),
    4, 0,
  );
  await hub.write([{ service: HKSV.service.rtp, characteristic: RTP.selected, value: encode(1, session, 2, video, 3, audio).toString('base64') }]);
}

/** True for HAP's "not allowed in the current state", as a characteristic write or a resource request answers it. */
function notAllowed(error: unknown): boolean {
  if (error instanceof HapStatusError) return error.status === NOT_ALLOWED_IN_CURRENT_STATE;
  const body = (error as { body?: { status?: unknown } } | undefined)?.body;
  return Number(body?.status) === NOT_ALLOWED_IN_CURRENT_STATE;
}

const refusedRecording = (error: unknown) => error instanceof HdsRequestError && error.reason === HdsReason.NOT_ALLOWED;

const ffprobe = async (file: string) => {
  const { stdout } = await execFileAsync('ffprobe', ['-v', 'error', '-select_streams', 'v:0', '-count_frames', '-show_entries', 'stream=codec_name,profile,width,height,nb_read_frames', '-of', 'json', file]);
  const [stream] = (JSON.parse(stdout) as { streams: Array<{ codec_name: string; profile: string; width: number; height: number; nb_read_frames: string }> }).streams;
  assert.ok(stream, `no video stream in ${file}`);
  return stream;
};

// ---------------------------------------------------------------------------------------------

describe(`HomeKit Secure Video under Homebridge ${HOMEBRIDGE.version}`, { skip: existsSync(join(ROOT, 'dist', 'index.js')) ? false : 'run `npm run build` first' }, () => {
  let dir = '';
  let config: Record<string, unknown> = {};
  let hb: Homebridge | undefined;
  let hub: HomeHub | undefined;
  let accessoryPort = 0;
  let webUrl = '';
  let selected: RecordingSelection;
  /** Every ffmpeg of ours seen during the test. */
  const seen = new Set<number>();
  const log: string[] = [];
  const cleanups: Array<() => void> = [];

  const processes = (): Ffmpegs => {
    const found = ourFfmpegs().filter((p) => p.ppid === hb?.child.pid);
    for (const p of found) seen.add(p.pid);
    return classify(found);
  };
  const homebridge = () => {
    assert.ok(hb);
    return hb;
  };
  const homeHub = () => {
    assert.ok(hub);
    return hub;
  };

  const start = async (): Promise<void> => {
    hb = new Homebridge(dir, config);
    const running = await hb.waitFor(new RegExp(`\\] ${CAMERA}( [0-9A-F]{4})? is running on port (\\d+)`), 0, 60_000);
    assert.equal(Number(running[2]), accessoryPort, 'the camera took the port from the "ports" range');
  };
  const stop = async (signal: NodeJS.Signals = 'SIGTERM'): Promise<void> => {
    if (!hb) return;
    await hb.stop(signal);
    log.push(hb.output);
    assert.doesNotMatch(hb.output, LOG_ERRORS, 'no error in the Homebridge log');
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'webcam-hksv-'));
    const [bridgePort, webPort] = [await freeTcpPort(), await freeTcpPort()];
    accessoryPort = await freeTcpPort();
    webUrl = `http://127.0.0.1:${webPort}`;
    config = {
      bridge: { name: 'Webcam HKSV Test', username: '0E:AA:BB:CC:DD:E5', port: bridgePort, pin: PIN, advertiser: 'ciao', bind: ['lo'] },
      // The external camera accessory takes the first port of this range (also after a restart).
      ports: { start: accessoryPort, end: accessoryPort },
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
              motion: { enabled: true },
              // No warm live-stream encoder: the only encoder the recording needs is the stage's.
              homekit: { unbridge: true, warmEncoder: false, recording: { enabled: true } },
            },
          ],
          web: { host: '127.0.0.1', port: webPort },
        },
      ],
    };
    mkdirSync(join(dir, 'webcam-server'), { recursive: true });
    await writeUsers(join(dir, 'webcam-server', 'users'), { alice: 'wonderland' });
    await start();
    hub = await HomeHub.pair(accessoryPort, PIN);
  });

  after(async () => {
    for (const cleanup of cleanups) cleanup();
    await hub?.close().catch(() => {});
    await hb?.stop('SIGKILL').catch(() => {});
    if (hb && !log.includes(hb.output)) log.push(hb.output);
    for (const { pid } of ourFfmpegs()) seen.add(pid);
    for (const pid of seen) if (isAlive(pid)) process.kill(pid, 'SIGKILL');
    if (process.env.HKSV_TEST_LOG) appendFileSync(process.env.HKSV_TEST_LOG, log.join('\n--- restart ---\n'));
    rmSync(dir, { recursive: true, force: true });
  });

  it('records a motion clip that starts with the prebuffer, as H.264 of the selected size, while a web viewer watches, from one capture', async (t) => {
    const h = homeHub();
    const supported = await h.readRecordingConfiguration();
    assert.equal(supported.prebufferLengthMs, 4000);
    assert.deepEqual(supported.containers, [{ type: 0, fragmentLengthMs: 4000 }], 'fragmented MP4, 4 s fragments');
    assert.equal(supported.eventTriggerMask & 1, 1, 'motion triggers recordings');
    assert.equal(supported.video.length, 1);
    const [video] = supported.video;
    assert.ok(video);
    assert.deepEqual(video.profiles, [0, 1, 2]);
    const sizes = video.resolutions.map((r) => `${r.width}x${r.height}@${r.fps}`);
    assert.ok(sizes.includes(`${WIDTH}x${HEIGHT}@${FPS}`) && sizes.includes(`${SELECTED.width}x${SELECTED.height}@15`), sizes.join(' '));
    assert.ok(video.resolutions.every((r) => r.width <= WIDTH && r.height <= HEIGHT && r.fps <= FPS), `nothing beyond the capture: ${sizes.join(' ')}`);

    assert.deepEqual(processes().stage, [], 'no H.264 encoder before recording is on');
    // A key frame every 2 s (the hub may ask for them more often than the 4 s fragment length):
    // packets are then 2 s GOPs, and the prebuffer check below can tell 4 s of prebuffer from a
    // recording that merely starts at a key frame shortly before the request.
    selected = await h.selectRecordingConfiguration({ ...SELECTED, fps: 15, profile: H264ProfileId.HIGH, bitrateKbps: 1000, iFrameIntervalMs: 2000 });
    const fragmentLengthMs = selected.container.fragmentLengthMs;

    const viewer = new MjpegClient(`${webUrl}/cameras/${CAMERA.toLowerCase()}/stream.mjpg`, basic('alice', 'wonderland'));
    viewer.keepBodies = 2;
    cleanups.push(() => viewer.close());
    await viewer.open();
    assert.equal(viewer.status, 200);
    await viewer.waitForParts(5, 20_000);

    const mark = homebridge().output.length;
    const activeAt = Date.now();
    await h.setRecordingActive(true);
    const dataStream = await h.openDataStream();
    assert.deepEqual(dataStream.log, ['> request control.hello', '< response control.hello']);
    await homebridge().waitFor(new RegExp(`H\\.264 stage running: ${SELECTED.width}x${SELECTED.height} at 15 fps, 1000 kbit/s`), mark, 30_000);
    const runningAt = Date.now();
    // The moving test pattern is motion; the sensor may already say so.
    await h.waitForMotion(true, 30_000);
    // The ring then holds more than the 4 s prebuffer. Meanwhile: the viewer's share of the
    // capture's frames before the recording, the baseline of this machine's load right now.
    const capturePid = nth(processes().capture, 0, 'the captures');
    const baselineFrom = viewer.parts.length;
    viewer.keepBodies = Infinity;
    const baseline: Array<{ at: number; bytes: number }> = [];
    do {
      baseline.push({ at: Date.now(), bytes: writtenBytes(capturePid) });
      await sleep(200);
    } while (Date.now() < Math.max(activeAt + 5_000, runningAt + 6_000) || baseline.length < 20);
    const baselineParts = viewer.parts.slice(baselineFrom);
    const before = processes();
    assert.equal(before.capture.length, 1, 'one capture ffmpeg');
    assert.equal(before.stage.length, 1, 'one H.264 stage encoder');
    assert.deepEqual(before.all.sort(), [...before.capture, ...before.stage].sort(), 'and no other ffmpeg');

    // What the capture writes to its pipe (JPEG bytes, which the web passes on unchanged), sampled
    // through the recording, against what the viewer receives: its share of the capture's frames.
    viewer.keepBodies = Infinity;
    const firstPart = viewer.parts.length;
    const captured: Array<{ at: number; bytes: number }> = [];
    const capture = nth(before.capture, 0, 'the captures');
    const sample = () => captured.push({ at: Date.now(), bytes: writtenBytes(capture) });
    sample();
    const openedAt = Date.now();
    const stream = await h.openRecording({ reason: 'motion' });
    assert.equal(stream.dataStream, dataStream, 'on the HomeKit Data Stream opened before');
    const fragments = () => stream.packets.filter((p) => p.type === 'mediaFragment').length;
    await waitUntil(
      '~10 s of recording and 3 fragments',
      () => {
        sample();
        return stream.ended !== undefined || (Date.now() - openedAt >= 10_000 && fragments() >= 3);
      },
      40_000,
    );
    assert.equal(stream.ended, undefined, `the recording went on until the hub closed it (${JSON.stringify(stream.ended)})`);
    const during = processes();
    sample();
    const watched = viewer.parts.slice(firstPart);
    stream.close(HdsReason.NORMAL);
    viewer.close();
    await homebridge().waitFor(new RegExp(`Recording stream ${stream.streamId} ended after \\d+ fragment`), mark, 10_000);

    assert.deepEqual(during.capture, before.capture, 'the same one capture throughout');
    assert.deepEqual(during.stage, before.stage, 'the same stage encoder: the recording reads the running one');
    assert.deepEqual(during.all.sort(), [...during.capture, ...during.stage].sort(), 'no other ffmpeg during the recording');
    // The viewer's share in its best 3 s of the recording, against its best 3 s just before it: on
    // a machine loaded by others a viewer misses frames now and then, recording or not (the web
    // sends the newest frame once the socket drains), and the recording's encoder is one more load
    // on a loaded machine; a recording that held the web back would keep it low throughout, or
    // stop it (the longest gap between the viewer's frames).
    const [start, end] = [nth(captured, 0, 'the samples'), nth(captured, captured.length - 1, 'the samples')];
    const share = (parts: typeof watched, from: { at: number; bytes: number }, to: { at: number; bytes: number }) =>
      parts.filter((part) => part.at > from.at && part.at <= to.at).reduce((sum, part) => sum + part.body.length, 0) / Math.max(1, to.bytes - from.bytes);
    const bestShare = (parts: typeof watched, samples: Array<{ at: number; bytes: number }>) => {
      let best = 0;
      for (const [i, from] of samples.entries()) {
        const to = samples.slice(i).find((c) => c.at - from.at >= 3_000);
        if (to) best = Math.max(best, share(parts, from, to));
      }
      return best;
    };
    const best = bestShare(watched, captured);
    const beforeBest = bestShare(baselineParts, baseline);
    t.diagnostic(
      `web viewer during the recording: ${((watched.length * 1000) / (end.at - start.at)).toFixed(1)} fps, ${(share(watched, start, end) * 100).toFixed(0)} % of the capture's frames (best 3 s: ${(best * 100).toFixed(0)} %, before the recording ${(beforeBest * 100).toFixed(0)} %; camera ${FPS} fps)`,
    );
    assert.ok(
      best >= Math.min(0.5, beforeBest * 0.5),
      `the web viewer kept getting the capture's frames during the recording: at best ${(best * 100).toFixed(0)} % over 3 s, against ${(beforeBest * 100).toFixed(0)} % just before`,
    );
    const longestGap = Math.max(...watched.slice(1).map((part, i) => part.at - nth(watched, i).at));
    // A loaded machine pauses a viewer for a second or two; a recording holding the web back stops it for the recording's ~10 s.
    assert.ok(longestGap < 5_000, `no stop in the web viewer's frames during the recording (longest gap ${longestGap} ms)`);

    // What HomeKit requires of the packets, and what they hold.
    const inspection = inspectRecording(stream.packets, { fragmentLengthMs });
    assert.deepEqual(inspection.problems, [], 'moof + mdat packets, each on a key frame, none longer than the fragment length');
    assert.ok(inspection.fragments.length >= 3, `>= 3 fragments (${inspection.fragments.length})`);
    assert.deepEqual([inspection.init?.video?.width, inspection.init?.video?.height], [SELECTED.width, SELECTED.height]);
    for (const [i, a] of inspection.fragments.entries()) {
      const b = inspection.fragments[i + 1];
      if (!b) break;
      assert.ok(Math.abs(a.startMs + a.durationMs - b.startMs) <= 1000 / FPS, `fragment ${b.sequence} follows ${a.sequence} without a gap (${a.startMs}+${a.durationMs} -> ${b.startMs})`);
    }

    // The prebuffer: the clip starts seconds before the request. Media delivered by a moment
    // after the open, less the time since the open, is how far back it started at least (nothing
    // arrives before it is filmed). Without a prebuffer the clip would start at the newest key
    // frame, less than one 2 s GOP back.
    assert.ok(inspection.fragments.every((f) => f.durationMs <= 2000 + 1), `GOPs of 2 s: ${inspection.fragments.map((f) => f.durationMs).join(', ')}`);
    const received = new Map(stream.packets.map((p) => [p.sequence, p.receivedAt - openedAt]));
    let media = 0;
    let lead = { ms: -Infinity, media: 0, at: 0 };
    for (const f of inspection.fragments) {
      media += f.durationMs;
      const at = received.get(f.sequence) ?? Infinity;
      if (media - at > lead.ms) lead = { ms: media - at, media, at };
    }
    const firstSecond = inspection.fragments.filter((f) => (received.get(f.sequence) ?? Infinity) <= 1_000).reduce((sum, f) => sum + f.durationMs, 0);
    t.diagnostic(`packets: ${inspection.fragments.map((f) => `${f.sequence}: ${f.durationMs} ms at +${received.get(f.sequence)} ms`).join(', ')}; ${firstSecond} ms of media within 1 s of the open`);
    assert.ok(lead.ms >= 3_000, `the clip starts >= 3 s before the request (the prebuffer): ${lead.media} ms of media by +${lead.at} ms`);

    const file = join(dir, 'recording.mp4');
    await stream.writeTo(file);
    const probed = await ffprobe(file);
    assert.deepEqual([probed.codec_name, probed.width, probed.height], ['h264', SELECTED.width, SELECTED.height], 'H.264 of the selected size');
    assert.equal(probed.profile, 'High', 'the selected profile');
    const frames = Number(probed.nb_read_frames);
    assert.ok(frames >= Math.floor((inspection.mediaDurationMs / 1000) * 15 * 0.9), `${frames} frames decoded for ${inspection.mediaDurationMs} ms of media`);
  });

  it('camera off in the Home app: no live stream, no snapshot, no recording, no encoder; back on, all three return', async () => {
    const h = homeHub();
    const { aid } = h.camera;
    const [stage] = processes().stage;
    assert.ok(stage, 'the stage runs while recording is on');
    const udp: Socket = await bindUdp(0);
    cleanups.push(() => udp.close());
    let rtpPackets = 0;
    udp.on('message', (packet) => {
      const pt = packet[1] ?? 0;
      if (!(pt >= 200 && pt <= 204)) rtpPackets++;
    });
    const udpPort = udp.address().port;

    // The camera switch alone (HomeKitCameraActive): recording and streaming stay switched on.
    await h.write([{ service: HKSV.service.operatingMode, characteristic: HKSV.characteristic.homeKitCameraActive, value: 0 }]);
    assert.equal(await h.read(HKSV.service.recording, HKSV.characteristic.active), 1, 'recording Active stays on');
    await assert.rejects(setupEndpoints(h, udpPort), notAllowed, 'SetupEndpoints refused');
    await assert.rejects(selectStream(h, randomBytes(16), 'start'), notAllowed, 'START refused');
    await assert.rejects(h.openRecording(), refusedRecording, 'a recording refused with NOT_ALLOWED');
    // HAP-NodeJS itself answers a snapshot request while the camera is off with -70412; the Home
    // app then shows its own camera-off picture (the plugin is never asked for an image).
    await assert.rejects(h.client.getImage(640, 360, aid), notAllowed, 'snapshot refused');
    await waitUntil('the stage encoder to stop', () => !isAlive(stage) && processes().stage.length === 0, 15_000);
    assert.equal(processes().capture.length, 1, 'the capture goes on (motion, web)');

    // The Home app's "Off": everything 0. Still nothing.
    await h.setCameraMode('off');
    await assert.rejects(h.openRecording(), refusedRecording);
    await assert.rejects(h.client.getImage(640, 360, aid), notAllowed);
    assert.deepEqual(processes().stage, []);

    // Back on ("Stream & Allow Recording"), the hub selecting what the Home app does: a key frame
    // every fragment (4 s), so packets are as long as HomeKit allows.
    selected = await h.selectRecordingConfiguration({ ...SELECTED, fps: 15, profile: H264ProfileId.HIGH, bitrateKbps: 1000 });
    assert.equal(selected.video.iFrameIntervalMs, selected.container.fragmentLengthMs);
    const mark = homebridge().output.length;
    await h.setCameraMode('record');
    const image = await h.client.getImage(640, 360, aid);
    const snapshot = join(dir, 'snapshot.jpg');
    writeFileSync(snapshot, image);
    assert.deepEqual(await probeSize(snapshot), [640, 360], 'a snapshot again');

    const sessionId = await setupEndpoints(h, udpPort);
    await selectStream(h, sessionId, 'start');
    try {
      await waitUntil('SRTP packets of the live stream', () => rtpPackets >= 10, 20_000);
      assert.equal(processes().live.length, 1, 'one live-stream encoder');
    } finally {
      await selectStream(h, sessionId, 'end');
    }
    await waitUntil('the live encoder to end', () => processes().live.length === 0, 10_000);

    await waitUntil('the stage encoder to return', () => processes().stage.length === 1, 15_000);
    await homebridge().waitFor(/H\.264 stage running/, mark, 30_000);
    const stream = await h.openRecording();
    await stream.collect(2);
    stream.close();
    const inspection = inspectRecording(stream.packets, { fragmentLengthMs: selected.container.fragmentLengthMs });
    assert.deepEqual(inspection.problems, [], 'moof + mdat packets, each on a key frame, none longer than the fragment length');
    assert.deepEqual([inspection.init?.video?.width, inspection.init?.video?.height], [SELECTED.width, SELECTED.height], 'a recording again');
    assert.ok(inspection.fragments.some((f) => f.durationMs > 2000), `4 s GOPs now: ${inspection.fragments.map((f) => f.durationMs).join(', ')}`);
  });

  it('recording off in the Home app stops the H.264 encoder; back on, it returns', async () => {
    const h = homeHub();
    await waitUntil('one stage encoder', () => processes().stage.length === 1, 10_000);
    const [stage] = processes().stage;
    assert.ok(stage !== undefined, 'the stage encoder');
    const capture = processes().capture;
    await h.setRecordingActive(false);
    await assert.rejects(h.openRecording(), refusedRecording, 'a recording refused while recording is off');
    await waitUntil('the stage encoder to stop', () => !isAlive(stage) && processes().stage.length === 0, 15_000);
    assert.deepEqual(processes().capture, capture, 'the capture goes on');
    await h.setRecordingActive(true);
    await waitUntil('a stage encoder again', () => processes().stage.length === 1, 15_000);
    assert.notEqual(processes().stage[0], stage);
  });

  it('remembers recording Active, the selected configuration and the camera switch across a Homebridge restart', async () => {
    let h = homeHub();
    // The camera off (HomeKitCameraActive 0: not its default) with recording on.
    await h.write([{ service: HKSV.service.operatingMode, characteristic: HKSV.characteristic.homeKitCameraActive, value: 0 }]);
    const pairing: PairingData = h.pairing;
    await h.close();
    hub = undefined;
    const before = [...seen];
    await stop('SIGTERM');
    await waitUntil('every ffmpeg to end with Homebridge', () => before.every((pid) => !isAlive(pid)), 10_000);

    await start();
    hub = h = await HomeHub.connect(accessoryPort, pairing);
    assert.equal(await h.read(HKSV.service.recording, HKSV.characteristic.active), 1, 'recording Active remembered');
    assert.deepEqual(await h.readSelectedRecordingConfiguration(), selected, 'the selected configuration remembered');
    assert.equal(await h.read(HKSV.service.operatingMode, HKSV.characteristic.homeKitCameraActive), 0, 'the camera switch remembered');
    await assert.rejects(h.openRecording(), refusedRecording, 'the camera stays off');

    // Camera off: the capture runs (motion, web) but no encoder, from the start on.
    await waitUntil('the capture', () => processes().capture.length === 1, 20_000);
    const deadline = Date.now() + 3_000;
    while (Date.now() < deadline) {
      assert.deepEqual(processes().stage, [], 'no H.264 encoder while the camera is off');
      await sleep(100);
    }
    assert.doesNotMatch(homebridge().output, /H\.264 stage running/);

    // On again: recording works with what was remembered, nothing selected anew.
    const mark = homebridge().output.length;
    await h.write([{ service: HKSV.service.operatingMode, characteristic: HKSV.characteristic.homeKitCameraActive, value: 1 }]);
    await homebridge().waitFor(new RegExp(`H\\.264 stage running: ${SELECTED.width}x${SELECTED.height}`), mark, 30_000);
    assert.equal(processes().stage.length, 1);
  });

  it('leaves no ffmpeg behind when Homebridge stops in the middle of a recording', async () => {
    const h = homeHub();
    const stream = await h.openRecording();
    await stream.collect(1);
    const running = processes();
    assert.equal(running.capture.length, 1);
    assert.equal(running.stage.length, 1);
    await stop('SIGTERM');
    const ended = await stream.waitEnded(10_000);
    assert.ok(ended.by === 'connection' || ended.by === 'accessory' || ended.by === 'error', `the recording ended with Homebridge (${JSON.stringify(ended)})`);
    await waitUntil('every ffmpeg seen to end', () => [...seen].every((pid) => !isAlive(pid)), 10_000);
    assert.deepEqual(ourFfmpegs(), [], 'no ffmpeg of this Homebridge left anywhere (orphans included)');
  });
});
