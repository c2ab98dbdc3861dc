// The HomeKit benchmark's moving parts, adapted from test/homekit.test.ts (copied, not shared, so
// the test stays the test's): a Homebridge child process on loopback in its own process group
// (so every ffmpeg it starts can be ended with it), its process tree's CPU and RSS from /proc,
// and the Home app's side of a camera through hap-controller: snapshots, and live streams set up
// with the SetupEndpoints / SelectedRTPStreamConfiguration TLVs. A stream's SRTP arrives at a UDP
// port of ours, where each packet is timed, authenticated and decrypted with the key and SSRC the
// accessory answered in SetupEndpoints (as the Home app does: an accessory may answer with a key
// of its own), and followed to the first decodable frame (homekit-srtp.ts); optionally it is also
// passed on to an ffmpeg receiver that must decode it, as proof that what we time is a real stream.
import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:dgram';
import { accessSync, constants, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { delimiter, join, sep } from 'node:path';

import { HttpClient } from 'hap-controller';
import { decode, encode, writeFloat32LE, writeUInt16, writeUInt32 } from 'hap-nodejs/dist/lib/util/tlv';

import { bindUdp, freeUdpPair, hapUuid, udpBound } from '../test/hap-udp';
import { nowMs } from './corpus';

export { bindUdp, hapUuid };
import { FirstFrameTracker, isRtcp, SrtpDecryptor } from './homekit-srtp';

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export async function waitUntil(what: string, check: () => boolean | Promise<boolean>, timeoutMs: number, everyMs = 20): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

// ---- ports -----------------------------------------------------------------------------------

export function freeTcpPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

// ---- process trees ---------------------------------------------------------------------------

/** Clock ticks per second for /proc's CPU columns (100 on Linux x86 and ARM; getconf knows). */
const ticksPerSecond = ((): number => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8', timeout: 5_000 }).trim()) || 100;
  } catch {
    return 100;
  }
})();

interface ProcStat {
  pid: number;
  ppid: number;
  comm: string;
  state: string;
  /** utime + stime + cutime + cstime, in clock ticks: the process and its reaped children. */
  ticks: number;
  /** utime + stime: the process alone. */
  ownTicks: number;
}

function readStat(pid: number): ProcStat | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    // Fields after the command name start at field 3 (state): ppid is field 4, utime..cstime 14..17.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ownTicks = Number(fields[11]) + Number(fields[12]);
    const ticks = ownTicks + Number(fields[13]) + Number(fields[14]);
    return { pid, ppid: Number(fields[1]), comm, state: fields[0] ?? '', ticks, ownTicks };
  } catch {
    return undefined;
  }
}

/** `root` and all its descendants, as they are now. */
export function processTree(root: number): ProcStat[] {
  const all: ProcStat[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const stat = readStat(Number(name));
    if (stat) all.push(stat);
  }
  const byParent = new Map<number, ProcStat[]>();
  for (const stat of all) byParent.set(stat.ppid, [...(byParent.get(stat.ppid) ?? []), stat]);
  const rootStat = all.find((s) => s.pid === root);
  if (!rootStat) return [];
  const tree: ProcStat[] = [];
  const queue = [rootStat];
  while (queue.length) {
    const next = queue.shift()!;
    tree.push(next);
    queue.push(...(byParent.get(next.pid) ?? []));
  }
  return tree;
}

/**
 * CPU time of a process tree so far, in ms: every live member's own time plus what its reaped
 * children used, so a child that ends inside a window is still counted (it moves from "live"
 * to its parent's "reaped" column, and the sum stays put).
 */
export function treeCpuMs(root: number): number {
  return (processTree(root).reduce((sum, s) => sum + s.ticks, 0) * 1000) / ticksPerSecond;
}

/** What a process of a Homebridge tree does, from its command line. */
export function processRole(pid: number, comm: string): string {
  if (comm !== 'ffmpeg') return comm === 'node' || comm === 'homebridge' ? 'Homebridge (node)' : comm;
  let args: string;
  try {
    args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
  } catch {
    return 'ffmpeg';
  }
  if (/ -i pipe:0 /.test(args) && /srtp:\/\//.test(args)) return hasReadFrames(pid) ? 'ffmpeg: stream encoder fed frames on stdin' : 'ffmpeg: warm encoder (waiting for a stream)';
  if (/srtp:\/\//.test(args)) return 'ffmpeg: stream (source to SRTP)';
  if (/ -f mjpeg pipe:1/.test(args)) return 'ffmpeg: capture (source to MJPEG)';
  if (/ image2 /.test(args) || / -frames:v 1 /.test(args)) return 'ffmpeg: snapshot';
  return 'ffmpeg: other';
}

/**
 * Whether an encoder fed on stdin has started encoding: a warm encoder waiting for a stream is
 * one thread blocked reading its empty stdin; once frames arrive, ffmpeg opens the decoder and
 * libx264, which start threads of their own.
 */
function hasReadFrames(pid: number): boolean {
  try {
    const match = /^Threads:\s+(\d+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return !match || Number(match[1]) > 1;
  } catch {
    return true;
  }
}

/** Own CPU ticks and role of each member of a tree, by pid (for a per-role breakdown). */
export function treeMembers(root: number): Map<number, { role: string; ownTicks: number }> {
  return new Map(processTree(root).map((p) => [p.pid, { role: processRole(p.pid, p.comm), ownTicks: p.ownTicks }]));
}

/** CPU per role between two `treeMembers` readings, ms; what ended in between is not attributed. */
export function cpuByRole(before: ReturnType<typeof treeMembers>, after: ReturnType<typeof treeMembers>): Record<string, number> {
  const roles: Record<string, number> = {};
  for (const [pid, end] of after) {
    const start = before.get(pid)?.ownTicks ?? 0;
    roles[end.role] = (roles[end.role] ?? 0) + ((end.ownTicks - start) * 1000) / ticksPerSecond;
  }
  return roles;
}

/** RSS per role of a tree now, MiB. */
export function rssByRole(root: number): Record<string, number> {
  const roles: Record<string, number> = {};
  for (const p of processTree(root)) {
    try {
      const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${p.pid}/status`, 'utf8'));
      const role = processRole(p.pid, p.comm);
      if (match) roles[role] = (roles[role] ?? 0) + Number(match[1]) / 1024;
    } catch {
      // gone meanwhile
    }
  }
  return roles;
}

/** The tree's resident memory in MiB (summed VmRSS: pages shared between members count twice). */
export function treeRssMiB(root: number): number {
  let kb = 0;
  for (const { pid } of processTree(root)) {
    try {
      const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (match) kb += Number(match[1]);
    } catch {
      // gone meanwhile
    }
  }
  return kb / 1024;
}

/** Pids of the tree's ffmpeg processes. */
export function ffmpegPids(root: number): number[] {
  return processTree(root)
    .filter((s) => s.comm === 'ffmpeg')
    .map((s) => s.pid);
}

// ---- Homebridge ------------------------------------------------------------------------------

/**
 * The Node that runs Homebridge: BENCH_NODE, else the first `node` on PATH outside a node_modules
 * folder. (`npm run` puts node_modules/.bin first, and the repo's `node22` devDependency puts a
 * Node 22 there; Homebridge 1.11 is meant to run on the machine's Node 20.)
 */
export function homebridgeNode(): string {
  if (process.env.BENCH_NODE) return process.env.BENCH_NODE;
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir || dir.split(sep).includes('node_modules')) continue;
    const candidate = join(dir, 'node');
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return process.execPath;
}

/**
 * A Homebridge child process with its own storage folder and plugin path. It leads its own
 * process group, so `kill()` ends it and every ffmpeg it started, even ones it forgot.
 */
export class Homebridge {
  readonly child: ChildProcess;
  output = '';

  constructor(
    readonly label: string,
    node: string,
    homebridge: string,
    storage: string,
    pluginPath: string,
    config: Record<string, unknown>,
    debug = false,
  ) {
    writeFileSync(join(storage, 'config.json'), JSON.stringify(config, null, 2));
    this.child = spawn(node, [homebridge, ...(debug ? ['-D'] : []), '-Q', '-U', storage, '-P', pluginPath], {
      env: { ...process.env, FORCE_COLOR: '0' },
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child.stdout!.on('data', (d: Buffer) => (this.output += d.toString()));
    this.child.stderr!.on('data', (d: Buffer) => (this.output += d.toString()));
  }

  get pid(): number {
    return this.child.pid!;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  async waitFor(pattern: RegExp, timeoutMs = 30_000): Promise<RegExpExecArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const match = pattern.exec(this.output);
      if (match) return match;
      if (Date.now() > deadline || !this.running) throw new Error(`${this.label}: no ${pattern} in Homebridge output:\n${this.output.slice(-4000)}`);
      await sleep(50);
    }
  }

  /** The ports Homebridge published external accessories on, by accessory name. */
  externalPorts(): Map<string, number> {
    const ports = new Map<string, number>();
    for (const [, name, , port] of this.output.matchAll(/\] (.+?)( [0-9A-F]{4})? is running on port (\d+)/g)) {
      if (name !== undefined) ports.set(name, Number(port));
    }
    return ports;
  }

  /**
   * SIGTERM (Homebridge tears down and exits 5 s later), then SIGKILL to the whole process group.
   * Answers what outlived a clean shutdown: processes of its tree still running once it exited.
   */
  async stop(graceMs = 8_000): Promise<string[]> {
    const tree = processTree(this.pid);
    if (this.running) {
      const exited = new Promise((resolve) => this.child.once('exit', resolve));
      this.child.kill('SIGTERM');
      await Promise.race([exited, sleep(graceMs)]);
    }
    await sleep(300);
    const survivors = tree
      .filter((p) => p.pid !== this.pid)
      .map((p) => readStat(p.pid))
      .filter((p): p is ProcStat => p !== undefined && p.state !== 'Z')
      .map((p) => `${p.comm} (pid ${p.pid})`);
    if (this.running) survivors.unshift(`homebridge itself (pid ${this.pid}, not exited ${graceMs} ms after SIGTERM)`);
    this.killGroup();
    return survivors;
  }

  /** Synchronous last resort (process exit, signals). */
  killGroup(): void {
    try {
      process.kill(-this.pid, 'SIGKILL');
    } catch {
      // the group is gone
    }
  }
}

// ---- the Home app ----------------------------------------------------------------------------

/** HAP's short type ("110") as the full UUID. */
const SERVICE_RTP = hapUuid('110');
const CHAR = { selected: hapUuid('117'), setupEndpoints: hapUuid('118'), streamingStatus: hapUuid('120') };

/** aid.iid of the characteristics of one CameraRTPStreamManagement service. */
export interface RtpService {
  aid: number;
  setupEndpoints: string;
  selected: string;
  status: string;
}

/** "WxH" from a JPEG's start-of-frame segment, or undefined when it is not a JPEG. */
export function jpegSize(jpeg: Buffer): string | undefined {
  if (jpeg[0] !== 0xff || jpeg[1] !== 0xd8) return undefined;
  for (let at = 2; at + 9 < jpeg.length; ) {
    if (jpeg[at] !== 0xff) return undefined;
    const marker = jpeg.readUInt8(at + 1);
    if (marker === 0xff) {
      at++;
      continue;
    }
    // SOF0..SOF15, except DHT (C4), JPG (C8) and DAC (CC): height, then width.
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      return `${jpeg.readUInt16BE(at + 7)}x${jpeg.readUInt16BE(at + 5)}`;
    }
    at += 2 + jpeg.readUInt16BE(at + 2);
  }
  return undefined;
}

/** A paired controller for one (external) camera accessory. */
export class Camera {
  readonly client: HttpClient;
  aid = 1;
  rtp: RtpService[] = [];

  constructor(
    readonly port: number,
    private readonly pin: string,
    private readonly pairingName: string,
  ) {
    this.client = new HttpClient(pairingName, '127.0.0.1', port, undefined, { usePersistentConnections: true });
  }

  async pair(): Promise<void> {
    await this.client.pairSetup(this.pin);
    const { accessories } = await this.client.getAccessories();
    const camera = accessories.find((a) => a.services.some((s) => hapUuid(s.type) === SERVICE_RTP));
    if (!camera) throw new Error(`${this.pairingName}: no CameraRTPStreamManagement service on port ${this.port}`);
    this.aid = camera.aid;
    for (const s of camera.services.filter((x) => hapUuid(x.type) === SERVICE_RTP)) {
      const iid = (type: string): string => `${camera.aid}.${s.characteristics.find((c) => hapUuid(c.type ?? '') === type)!.iid}`;
      this.rtp.push({ aid: camera.aid, setupEndpoints: iid(CHAR.setupEndpoints), selected: iid(CHAR.selected), status: iid(CHAR.streamingStatus) });
    }
  }

  /** The first CameraRTPStreamManagement service (found by pair()). */
  get firstRtp(): RtpService {
    const [service] = this.rtp;
    if (!service) throw new Error(`${this.pairingName}: not paired, or no stream service`);
    return service;
  }

  /** One snapshot through HAP (POST /resource): the time it took, ms, and what came back. */
  async snapshot(width: number, height: number): Promise<{ ms: number; bytes: number; size?: string }> {
    const started = nowMs();
    const image = await this.client.getImage(width, height, this.aid);
    const ms = nowMs() - started;
    return { ms, bytes: image.length, size: jpegSize(image) };
  }

  async write(id: string, value: string): Promise<void> {
    const answer = (await this.client.setCharacteristics({ [id]: value })) as { characteristics?: Array<{ status?: number }> };
    for (const c of answer.characteristics ?? []) {
      if (c.status !== undefined && c.status !== 0) throw new Error(`writing ${id} failed with HAP status ${c.status}`);
    }
  }

  async read(id: string): Promise<unknown> {
    const [characteristic] = (await this.client.getCharacteristics([id])).characteristics;
    if (!characteristic) throw new Error(`reading ${id} answered no characteristic`);
    return characteristic.value;
  }

  async close(): Promise<void> {
    await this.client.close().catch(() => {});
  }
}

export interface StreamRequest {
  width: number;
  height: number;
  fps: number;
  /** HAP's H.264 profile id: 0 baseline, 1 main, 2 high. */
  profile: number;
  /** HAP's H.264 level id: 0 3.1, 1 3.2, 2 4.0. */
  level: number;
  /** kbit/s */
  bitrate: number;
  mtu: number;
  /** HAP's audio codec type: 2 AAC-ELD, 3 OPUS. */
  audioCodec: number;
}

const PAYLOAD_TYPE = 99;

/** Item `type` of a decoded TLV (`what` names it in the error when it is missing). */
function tlvItem(tlv: Record<number, Buffer | undefined>, type: number, what: string): Buffer {
  const value = tlv[type];
  if (!value) throw new Error(`${what} (TLV item ${type}) is missing`);
  return value;
}

/** What one live stream's start looked like, in ms after START was written. */
export interface StreamStart {
  /** The accessory's answer to the START write (HAP waits for the plugin's callback). */
  startAnsweredMs: number;
  /** First SRTP (RTP, authenticated) packet. */
  firstPacketMs?: number;
  /** Last packet of the first access unit a decoder starting cold can decode (SPS, PPS, IDR). */
  firstFrameMs?: number;
  /** The ffmpeg receiver's first decoded picture, when one ran. */
  receiverFrameMs?: number;
  /** Width x height the ffmpeg receiver decoded, when one ran. */
  receiverSize?: string;
  badTags: number;
  nalTypes: number[];
  /** SetupEndpoints answered with a video key of the accessory's own, not ours (ours: a warm encoder). */
  ownKey?: boolean;
}

/**
 * One live stream as the Home app runs it. Packets arrive at our UDP port; we time them, check
 * and decrypt them, and send an RTCP packet back every 500 ms (both plugins end a stream whose
 * viewer goes quiet).
 */
export class LiveStream {
  readonly sessionId = randomBytes(16);
  /** The video key and salt we offer in SetupEndpoints. */
  private readonly offeredKeyAndSalt = randomBytes(30);
  /** The video key and salt, and SSRC, the accessory answered: what its packets must carry. */
  private answer?: { keyAndSalt: Buffer; ssrc: number };
  private decryptor?: SrtpDecryptor;
  /** True when the accessory answered with a key of its own (ours: its warm encoder's). */
  ownKey = false;
  private readonly tracker = new FirstFrameTracker();
  private socket?: Socket;
  private rtcpTimer?: NodeJS.Timeout;
  private receiver?: ChildProcess;
  private receiverLog = '';
  private startWrittenAt = 0;
  private accessoryRtcpPort = 0;
  packets = 0;
  bytes = 0;
  /** Packets the receiving side could not handle (a bug of ours, not the plugin's). */
  readonly packetErrors: string[] = [];
  result?: StreamStart;
  private firstPacketAt = 0;
  private firstFrameAt = 0;
  private receiverFrameAt = 0;
  private ended = false;

  constructor(
    private readonly camera: Camera,
    private readonly service: RtpService,
    readonly request: StreamRequest,
    private readonly dir: string,
    private readonly withReceiver: boolean,
  ) {}

  /**
   * Sets up (and starts the receiver with the key answered), then writes START; resolves once
   * the accessory answered the START write.
   */
  async start(): Promise<void> {
    const receiverPort = this.withReceiver ? await freeUdpPair() : 0;
    this.socket = await bindUdp(0);
    this.socket.on('message', (packet) => {
      const at = nowMs();
      try {
        if (isRtcp(packet)) return;
        if (!this.decryptor || !this.answer) throw new Error('a packet arrived before SetupEndpoints was answered');
        const rtp = this.decryptor.decrypt(packet);
        if (!rtp || rtp.payloadType !== PAYLOAD_TYPE) return;
        if (rtp.ssrc !== this.answer.ssrc) throw new Error(`RTP with SSRC ${rtp.ssrc}, not the ${this.answer.ssrc} answered in SetupEndpoints`);
        this.packets++;
        this.bytes += packet.length;
        if (!this.firstPacketAt) this.firstPacketAt = at;
        if (this.tracker.push(rtp)) this.firstFrameAt = at;
        if (receiverPort) this.socket?.send(packet, receiverPort, '127.0.0.1');
      } catch (error) {
        this.packetErrors.push((error as Error).message);
      }
    });

    const { port } = this.socket.address();
    const controllerAddress = encode(1, 0, 2, '127.0.0.1', 3, writeUInt16(port), 4, writeUInt16(port + 2));
    const videoSrtp = encode(1, 0, 2, this.offeredKeyAndSalt.subarray(0, 16), 3, this.offeredKeyAndSalt.subarray(16));
    const audioSrtp = encode(1, 0, 2, randomBytes(16), 3, randomBytes(14));
    await this.camera.write(this.service.setupEndpoints, encode(1, this.sessionId, 3, controllerAddress, 4, videoSrtp, 5, audioSrtp).toString('base64'));
    const response = decode(Buffer.from(String(await this.camera.read(this.service.setupEndpoints)), 'base64'));
    if (!response[1]?.equals(this.sessionId) || response[2]?.[0] !== 0) throw new Error('SetupEndpoints was not accepted');
    const address = decode(tlvItem(response, 3, 'SetupEndpoints: the accessory address'));
    this.accessoryRtcpPort = tlvItem(address, 3, 'SetupEndpoints: the video RTP port').readUInt16LE(0);
    const videoAnswer = decode(tlvItem(response, 4, 'SetupEndpoints: the video SRTP parameters'));
    const [key, salt] = [videoAnswer[2], videoAnswer[3]];
    if (key?.length !== 16 || salt?.length !== 14) throw new Error('SetupEndpoints answered no 16-byte SRTP key and 14-byte salt for the video');
    this.answer = { keyAndSalt: Buffer.concat([key, salt]), ssrc: tlvItem(response, 6, 'SetupEndpoints: the video SSRC').readUInt32LE(0) };
    this.ownKey = !this.answer.keyAndSalt.equals(this.offeredKeyAndSalt);
    this.decryptor = new SrtpDecryptor(this.answer.keyAndSalt);
    if (receiverPort) await this.startReceiver(receiverPort, this.answer.keyAndSalt);

    const { width, height, fps, profile, level, bitrate, mtu, audioCodec } = this.request;
    const video = encode(
      1, 0, // H.264
      2, encode(1, profile, 2, level, 3, 0 /* non-interleaved */),
      3, encode(1, writeUInt16(width), 2, writeUInt16(height), 3, fps),
      4, encode(1, PAYLOAD_TYPE, 2, writeUInt32(randomBytes(4).readUInt32LE(0)), 3, writeUInt16(bitrate), 4, writeFloat32LE(0.5), 5, writeUInt16(mtu)),
    );
    const audio = encode(
      1, audioCodec,
      2, encode(1, 1, 2, 0, 3, 1 /* 16 kHz */, 4, 30),
      3, encode(1, 110, 2, writeUInt32(randomBytes(4).readUInt32LE(0)), 3, writeUInt16(24), 4, writeFloat32LE(5), 6, 13),
      4, 0,
    );
    // The Home app's receiver reports, every 500 ms from START on.
    const rtcp = Buffer.from([0x80, 0xc9, 0x00, 0x01, 0, 0, 0, 0]);
    this.rtcpTimer = setInterval(() => this.socket?.send(rtcp, this.accessoryRtcpPort, '127.0.0.1'), 500);
    this.startWrittenAt = nowMs();
    await this.camera.write(this.service.selected, encode(1, encode(1, this.sessionId, 2, 1 /* START */), 2, video, 3, audio).toString('base64'));
    const startAnsweredMs = nowMs() - this.startWrittenAt;
    this.result = { startAnsweredMs, badTags: 0, nalTypes: [] };
  }

  /** Waits for the first decodable frame (and the receiver's first picture), then fills `result`. */
  async started(timeoutMs = 10_000): Promise<StreamStart> {
    await waitUntil('the first decodable frame', () => this.firstFrameAt > 0, timeoutMs).catch(() => {});
    if (this.withReceiver) await waitUntil('the ffmpeg receiver to decode a frame', () => this.receiverFrameAt > 0 || this.receiver?.exitCode !== null, timeoutMs).catch(() => {});
    const since = (at: number): number | undefined => (at ? at - this.startWrittenAt : undefined);
    const result: StreamStart = {
      startAnsweredMs: this.result?.startAnsweredMs ?? NaN,
      firstPacketMs: since(this.firstPacketAt),
      firstFrameMs: since(this.firstFrameAt),
      receiverFrameMs: since(this.receiverFrameAt),
      receiverSize: /Video: h264[^\n]*?, (\d+x\d+)/.exec(this.receiverLog)?.[1],
      badTags: this.decryptor?.badTags ?? 0,
      nalTypes: this.tracker.seen.slice(0, 12),
      ownKey: this.ownKey,
    };
    this.result = result;
    if (this.packetErrors.length) throw new Error(`packet handling failed: ${this.packetErrors[0]}`);
    if (!this.firstFrameAt) throw new Error(`no decodable frame within ${timeoutMs} ms (packets ${this.packets}, bad tags ${result.badTags}, NAL types ${result.nalTypes.join(',')})`);
    if (this.withReceiver && !this.receiverFrameAt) throw new Error(`the ffmpeg receiver decoded nothing:\n${this.receiverLog.slice(-1500)}`);
    return result;
  }

  /** SelectedRTPStreamConfiguration END. */
  async end(): Promise<void> {
    if (this.ended || !this.startWrittenAt) return;
    this.ended = true;
    await this.camera.write(this.service.selected, encode(1, encode(1, this.sessionId, 2, 0 /* END */)).toString('base64'));
    this.close();
  }

  close(): void {
    clearInterval(this.rtcpTimer);
    this.receiver?.kill('SIGKILL');
    try {
      this.socket?.close();
    } catch {
      // already closed
    }
  }

  /** An ffmpeg on `port` that decodes what we pass on with `keyAndSalt`; its first picture on stdout is timed. */
  private async startReceiver(port: number, keyAndSalt: Buffer): Promise<void> {
    const sdp = join(this.dir, `${this.sessionId.toString('hex')}.sdp`);
    writeFileSync(
      sdp,
      [
        'v=0',
        'o=- 0 0 IN IP4 127.0.0.1',
        's=HomeKit benchmark receiver',
        'c=IN IP4 127.0.0.1',
        't=0 0',
        `m=video ${port} RTP/SAVP ${PAYLOAD_TYPE}`,
        `a=rtpmap:${PAYLOAD_TYPE} H264/90000`,
        `a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:${keyAndSalt.toString('base64')}`,
        '',
      ].join('\n'),
    );
    // A short probe; a tiny grey picture per decoded frame on stdout, the first one timed.
    // (Not `-fflags nobuffer`: it drops the probed packets, first IDR included, and the receiver
    // then waits for the next keyframe: 8 s with camera-ffmpeg, which sends one every 250 frames.)
    const receiver = spawn(
      'ffmpeg',
      [
        '-hide_banner', '-nostdin', '-loglevel', 'info',
        '-protocol_whitelist', 'file,udp,rtp,crypto',
        '-probesize', '32', '-analyzeduration', '0',
        '-i', sdp,
        '-vf', 'scale=16:16', '-pix_fmt', 'gray', '-f', 'rawvideo', 'pipe:1',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.receiver = receiver;
    receiver.stdout.on('data', () => {
      if (!this.receiverFrameAt) this.receiverFrameAt = nowMs();
    });
    receiver.stderr.on('data', (d: Buffer) => (this.receiverLog += d.toString()));
    await waitUntil('the ffmpeg receiver to bind its port', () => udpBound(port) || receiver.exitCode !== null, 5_000);
    if (receiver.exitCode !== null) throw new Error(`the receiver ffmpeg failed:\n${this.receiverLog}`);
  }
}

/** StreamingStatus of a service: 0 available, 1 in use, 2 unavailable. */
export async function streamingStatus(camera: Camera, service: RtpService): Promise<number> {
  const status = decode(Buffer.from(String(await camera.read(service.status)), 'base64'));
  const value = status[1]?.[0];
  if (value === undefined) throw new Error('StreamingStatus holds no status');
  return value;
}
