// Pure policy for HomeKit streams: which resolutions to offer for a capture, how a START or
// RECONFIGURE is kept inside that offer (size, rate, bitrate), how long a stream lives without the
// Home app's RTCP reports, the encoder ffmpeg command for one session (MJPEG frames from the
// FrameHub on stdin -> H.264 over SRTP), and the warm encoder's decisions: whether a camera keeps
// one, the START it prepares for, whether the real START is a hit, where it sends, and how long to
// wait before replacing one that exited. Nothing here spawns or opens anything.
import type { H264Level, H264Profile } from '../media/h264-args';
import { audioSourceArgs, h264VideoArgs, hubInputArgs } from '../media/h264-args';

/** HomeKit's usual resolutions, largest first: [width, height, fps]. */
export const HOMEKIT_RESOLUTIONS: ReadonlyArray<readonly [number, number, number]> = [
  [1920, 1080, 30],
  [1280, 720, 30],
  [1024, 768, 30],
  [640, 480, 30],
  [640, 360, 30],
  [480, 360, 30],
  [480, 270, 30],
  [320, 240, 30],
  [320, 240, 15], // Apple Watch
  [320, 180, 30],
  [320, 180, 15],
];

/** The resolutions to advertise: HomeKit's list capped at what the capture delivers (never none). */
export function supportedResolutions(capture: { width: number; height: number; fps: number }): [[number, number, number], ...Array<[number, number, number]>] {
  const seen = new Set<string>();
  const result: Array<[number, number, number]> = [];
  for (const [width, height, fps] of HOMEKIT_RESOLUTIONS) {
    if (width > capture.width || height > capture.height) continue;
    const capped = Math.min(fps, capture.fps);
    const key = `${width}x${height}@${capped}`;
    if (seen.has(key)) continue;
    seen.add(key);
    result.push([width, height, capped]);
  }
  const first = result.at(0);
  // A capture smaller than every entry still offers its own size.
  if (!first) return [[capture.width, capture.height, Math.min(30, capture.fps)]];
  return [first, ...result.slice(1)];
}

/** One advertised stream configuration: [width, height, fps]. */
export type Resolution = readonly [number, number, number];

/** The lowest video bitrate a stream is given, kbit/s. */
export const MIN_BITRATE_KBPS = 64;
/** The highest video bitrate any stream is given, kbit/s (plenty for 1080p30 H.264). */
export const MAX_BITRATE_KBPS = 8_000;

/**
 * The highest bitrate for a size and rate, kbit/s: 0.2 bit per pixel (generous for H.264 at these
 * sizes), never under 2000 (what the Home app asks on a good network always fits), never over
 * MAX_BITRATE_KBPS.
 */
export function maxBitrateKbps(width: number, height: number, fps: number): number {
  return Math.min(MAX_BITRATE_KBPS, Math.max(2_000, Math.round((width * height * fps * 0.2) / 1000)));
}

/** The payload type used when a request's is not one RTP can carry (HomeKit's usual). */
export const DEFAULT_PAYLOAD_TYPE = 99;

/** What a START or RECONFIGURE asks of the video that the clamp looks at. */
export interface RequestedVideo {
  width: number;
  height: number;
  fps: number;
  /** kbit/s */
  bitrate: number;
  payloadType: number;
}

/** A request kept inside the offer, and what had to change for that. */
export interface ClampedVideo extends RequestedVideo {
  /** What was changed, for the log ('10000x10000 -> 640x360'); empty when the request fitted. */
  changes: string[];
  /**
   * True when the size, rate or payload type was outside what was advertised (the Home app picks
   * from the offer, so this is a broken or hostile controller); false when only the bitrate was
   * brought into range, or nothing changed.
   */
  outsideOffer: boolean;
}

const positive = (value: number): boolean => Number.isFinite(value) && value > 0;
const area = ([width, height]: Resolution): number => width * height;

/**
 * Keeps a requested video inside `offered` (the configurations advertised, see
 * supportedResolutions, which never exceed the capture's own size and rate):
 * - the size becomes an advertised one: the same size when it was offered, else the largest
 *   offered that fits inside the request (10000x10000 -> the largest offered), else, for a
 *   request smaller than everything offered, the smallest offered;
 * - the frame rate is at most the highest advertised for that size; a lower rate is kept (the
 *   Home app lowers it on a weak link, and less is always within what the camera can do);
 * - the bitrate is brought into MIN_BITRATE_KBPS .. maxBitrateKbps(size, rate);
 * - a payload type RTP cannot carry (over 127) becomes DEFAULT_PAYLOAD_TYPE.
 */
export function clampVideo(requested: RequestedVideo, offered: readonly Resolution[]): ClampedVideo {
  if (offered.length === 0) throw new Error('no resolution offered');
  const changes: string[] = [];
  let outsideOffer = false;

  let size = offered.find(([w, h]) => w === requested.width && h === requested.height);
  if (!size) {
    const inside = offered.filter(([w, h]) => w <= requested.width && h <= requested.height);
    const pool = inside.length > 0 ? inside : offered;
    const pick = inside.length > 0 ? Math.max(...pool.map(area)) : Math.min(...pool.map(area));
    size = pool.find((entry) => area(entry) === pick);
    if (!size) throw new Error('no offered resolution has a size');
    changes.push(`${requested.width}x${requested.height} -> ${size[0]}x${size[1]}`);
    outsideOffer = true;
  }
  const [width, height] = size;
  const candidates = offered.filter(([w, h]) => w === width && h === height);
  const maxFps = Math.max(...candidates.map(([, , fps]) => fps));
  let fps = positive(requested.fps) ? Math.max(1, Math.round(requested.fps)) : maxFps;
  if (fps > maxFps) fps = maxFps;
  if (fps !== requested.fps) {
    changes.push(`${requested.fps} fps -> ${fps} fps`);
    outsideOffer = true;
  }

  const bitrate = Math.min(maxBitrateKbps(width, height, fps), Math.max(MIN_BITRATE_KBPS, positive(requested.bitrate) ? Math.round(requested.bitrate) : MIN_BITRATE_KBPS));
  if (bitrate !== requested.bitrate) changes.push(`${requested.bitrate} kbit/s -> ${bitrate} kbit/s`);

  const payloadType = Number.isInteger(requested.payloadType) && requested.payloadType >= 0 && requested.payloadType <= 127 ? requested.payloadType : DEFAULT_PAYLOAD_TYPE;
  if (payloadType !== requested.payloadType) {
    changes.push(`payload type ${requested.payloadType} -> ${payloadType}`);
    outsideOffer = true;
  }
  return { width, height, fps, bitrate, payloadType, changes, outsideOffer };
}

/** The log line for a clamped request: what was asked, and what is used. */
export function describeClamp(requested: RequestedVideo, clamped: ClampedVideo): string {
  const asked = `${requested.width}x${requested.height} at ${requested.fps} fps, ${requested.bitrate} kbit/s`;
  const used = `${clamped.width}x${clamped.height} at ${clamped.fps} fps, ${clamped.bitrate} kbit/s`;
  return clamped.outsideOffer
    ? `The Home app asked for ${asked}, which this camera does not offer (${clamped.changes.join(', ')}): streaming ${used}.`
    : `The Home app asked for ${asked} (${clamped.changes.join(', ')}): streaming ${used}.`;
}

/** How many of the Home app's RTCP intervals may pass without a report before a stream ends. */
export const RTCP_MISSED_REPORTS = 5;
/** The RTCP interval assumed when a request gives none (HAP-NodeJS's default for RECONFIGURE). */
export const DEFAULT_RTCP_INTERVAL_S = 0.5;
/** A stream never ends sooner than this after the last report: a lost packet or two, a busy Pi. */
export const RTCP_TIMEOUT_FLOOR_MS = 5_000;
/** Nor later than this (a request asking for a huge interval keeps no encoder for long). */
export const RTCP_TIMEOUT_CEILING_MS = 30_000;
/** Before the first report: the encoder may still be loading and the first keyframe on its way. */
export const RTCP_FIRST_REPORT_MS = 10_000;

/**
 * How long a stream lives without a report from the Home app: RTCP_MISSED_REPORTS of the interval
 * it asked for (START's rtcp_interval, seconds), kept between the floor and the ceiling.
 */
export function rtcpTimeoutMs(intervalSeconds: number | undefined): number {
  const interval = intervalSeconds !== undefined && positive(intervalSeconds) ? intervalSeconds : DEFAULT_RTCP_INTERVAL_S;
  return Math.min(RTCP_TIMEOUT_CEILING_MS, Math.max(RTCP_TIMEOUT_FLOOR_MS, Math.round(interval * RTCP_MISSED_REPORTS * 1000)));
}

/** True for a datagram that is RTCP (or SRTCP: its first 8 bytes are clear): version 2, packet type 192..223. */
export function isRtcpPacket(packet: Buffer): boolean {
  return packet.length >= 8 && packet.readUInt8(0) >> 6 === 2 && packet.readUInt8(1) >= 192 && packet.readUInt8(1) <= 223;
}

export type H264ProfileName = H264Profile;
export type H264LevelName = H264Level;

/** HAP's profile and level numbers (H264Profile, H264Level: 0, 1, 2) as ffmpeg names. */
export function h264Names(profile: number, level: number): { profile: H264ProfileName; level: H264LevelName } {
  return {
    profile: (['baseline', 'main', 'high'] as const)[profile] ?? 'main',
    level: (['3.1', '3.2', '4.0'] as const)[level] ?? '3.1',
  };
}

/** What a START asks of the video, as the encoder takes it: everything but where it goes. */
export interface VideoChoice {
  width: number;
  height: number;
  /** Already capped at the capture's rate. */
  fps: number;
  /** kbit/s */
  bitrate: number;
  profile: H264ProfileName;
  level: H264LevelName;
  payloadType: number;
  mtu: number;
}

/** The video fields of a HAP START (HAP-NodeJS's VideoInfo) that shape the encoder. */
export interface StartVideo {
  width: number;
  height: number;
  fps: number;
  max_bit_rate: number;
  profile: number;
  level: number;
  pt: number;
  mtu: number;
}

/** A START's video request as the encoder takes it: HAP numbers as names, the rate capped. */
export function videoChoiceOf(video: StartVideo, captureFps: number): VideoChoice {
  const { profile, level } = h264Names(video.profile, video.level);
  return {
    width: video.width,
    height: video.height,
    fps: Math.min(video.fps, captureFps),
    bitrate: video.max_bit_rate,
    profile,
    level,
    payloadType: video.pt,
    mtu: video.mtu,
  };
}

/**
 * The START to expect next: this camera's previous one (as clamped) when there was one,
 * else what the Home app usually asks on a local network (802 kbit/s, H.264 High 4.0, payload
 * type 99) at the largest size offered, and HAP-NodeJS's default MTU for the address family.
 * Either is inside the offer, so a START asking for it is clamped to itself and can hit.
 */
export function predictVideoChoice(capture: { width: number; height: number; fps: number }, addressVersion: 'ipv4' | 'ipv6', previous?: VideoChoice): VideoChoice {
  if (previous) return previous;
  const [[width, height, fps]] = supportedResolutions(capture);
  return { width, height, fps, bitrate: 802, profile: 'high', level: '4.0', payloadType: 99, mtu: addressVersion === 'ipv6' ? 1228 : 1378 };
}

/** True when two sound requests make the same encoder output. */
export function sameAudio(a: AudioRequest | undefined, b: AudioRequest | undefined): boolean {
  if (!a || !b) return a === b;
  return (Object.keys(a) as Array<keyof AudioRequest>).every((key) => {
    const x = a[key];
    const y = b[key];
    return Buffer.isBuffer(x) && Buffer.isBuffer(y) ? x.equals(y) : x === y;
  });
}

/** True when two START video requests make the same encoder. */
export function sameVideoChoice(a: VideoChoice, b: VideoChoice): boolean {
  return (Object.keys(a) as Array<keyof VideoChoice>).every((key) => a[key] === b[key]);
}

export type WarmVerdict = { hit: true } | { hit: false; reason: string };

/**
 * Whether a warm encoder, started with `warm.args` for a predicted START, can serve the real one:
 * only when the real START's command, built for the same destination (the warm encoder's relay,
 * key and SSRC), is exactly the same. A miss names what differed.
 */
export function warmVerdict(warm: { args: readonly string[]; choice: VideoChoice }, actual: { args: readonly string[]; choice: VideoChoice }): WarmVerdict {
  const same = warm.args.length === actual.args.length && warm.args.every((arg, i) => arg === actual.args[i]);
  if (same) return { hit: true };
  const fields = Object.keys(actual.choice) as Array<keyof VideoChoice>;
  const differ = fields.filter((key) => warm.choice[key] !== actual.choice[key]).map((key) => `${key} ${warm.choice[key]} -> ${actual.choice[key]}`);
  return { hit: false, reason: differ.length > 0 ? differ.join(', ') : 'the command differs' };
}

/**
 * Whether a camera keeps a warm encoder: when the config allows it (`homekit.warmEncoder`) and its
 * streams are silent. A stream with sound needs the Home app's audio port in its command, which
 * only SetupEndpoints brings, so it is started at START as before.
 */
export function wantsWarmEncoder(homekit: { warmEncoder: boolean }, audioCodecs: readonly AudioCodecName[]): boolean {
  return homekit.warmEncoder && audioCodecs.length === 0;
}

/** Where a warm encoder sends: its relay on loopback (the Home app's address is not known yet). */
export function relayTarget(relayPort: number): Pick<EncoderRequest, 'targetAddress' | 'targetPort'> {
  return { targetAddress: '127.0.0.1', targetPort: relayPort };
}

/** An SRTP master key (16 bytes) and salt (14 bytes) as SetupEndpoints carries them, from one buffer. */
export function splitKeyAndSalt(keyAndSalt: Buffer): { key: Buffer; salt: Buffer } {
  if (keyAndSalt.length !== 30) throw new Error(`an SRTP master key and salt take 30 bytes, not ${keyAndSalt.length}`);
  return { key: keyAndSalt.subarray(0, 16), salt: keyAndSalt.subarray(16) };
}

/**
 * How long after a START the next warm encoder is started. Loading ffmpeg takes ~50 ms of CPU;
 * started at once, it competed with the stream's first frame (first packet p50 29 ms against 16
 * ms with a 300 ms wait, on two busy cores), which is out after ~20 ms.
 */
export const WARM_REFILL_DELAY_MS = 200;

/** A warm encoder that lived at least this long before exiting was not failing to start. */
export const WARM_STABLE_MS = 60_000;
/** After this many failed warm encoders in a row, the log says so at warning level. */
export const WARM_FAILURES_BEFORE_WARNING = 3;

/** Failed warm encoders in a row, counting one more that exited by itself after `livedMs`. */
export function warmFailuresAfterExit(failuresBefore: number, livedMs: number): number {
  return livedMs >= WARM_STABLE_MS ? 1 : failuresBefore + 1;
}

/** The wait before replacing a warm encoder after failures in a row: 1, 2, 4 ... 60 s (util/backoff.ts). */
export const WARM_RETRY_BASE_MS = 1_000;
export const WARM_RETRY_MAX_MS = 60_000;

export interface EncoderRequest extends VideoChoice {
  ssrc: number;
  /** SRTP master key and salt, concatenated. */
  srtpKeyAndSalt: Buffer;
  targetAddress: string;
  targetPort: number;
}

export type AudioCodecName = 'opus' | 'aac-eld';

/** The sound half of a stream: OPUS (libopus, Debian's ffmpeg has it) or AAC-ELD (libfdk_aac). */
export interface AudioRequest {
  codec: AudioCodecName;
  /** An ALSA device, or `sine` for a test tone. */
  source: string;
  /** kHz, as HomeKit asks: 16 or 24. */
  sampleRate: number;
  /** kbit/s */
  bitrate: number;
  channels: number;
  /** Milliseconds of sound per packet (HomeKit: 20, 30, 40 or 60). */
  packetTime: number;
  payloadType: number;
  ssrc: number;
  srtpKeyAndSalt: Buffer;
  targetPort: number;
}

/** libopus takes 2.5 to 60 ms frames; HomeKit's 30 ms is not one of them, 20 is closest. */
export function opusFrameDuration(packetTime: number): number {
  return [10, 20, 40, 60].includes(packetTime) ? packetTime : 20;
}


export interface EncoderConfig {
  /** `libx264` (default) or a hardware encoder such as `h264_v4l2m2m` (Raspberry Pi 4). */
  encoder: string;
  /** Seconds between keyframes (HomeKit wants one every few seconds; default 2). */
  keyframeSeconds?: number;
}

/** ffmpeg's RTP packet size from the MTU HomeKit asks for (1378 on IPv4, 1228 on IPv6). */
export function packetSize(mtu: number): number {
  return Math.max(188, Math.min(1378, mtu || 1378));
}

export function srtpUrl(request: Pick<EncoderRequest, 'targetAddress' | 'targetPort' | 'mtu'>): string {
  const host = request.targetAddress.includes(':') ? `[${request.targetAddress}]` : request.targetAddress;
  return `srtp://${host}:${request.targetPort}?rtcpport=${request.targetPort}&pkt_size=${packetSize(request.mtu)}`;
}

/** The encoder command line after the binary: video, and sound when `audio` is given. */
export function buildEncoderArgs(request: EncoderRequest, config: EncoderConfig, audio?: AudioRequest): string[] {
  const keyframes = Math.max(1, Math.round(request.fps * (config.keyframeSeconds ?? 2)));
  const video = { ...request, bitrateKbps: request.bitrate, encoder: config.encoder };
  return [
    '-hide_banner',
    '-loglevel', 'error',
    ...hubInputArgs(),
    ...(audio ? audioSourceArgs(audio.source) : []),
    '-map', '0:v:0',
    '-an', '-sn', '-dn',
    // ultrafast whatever the profile: a live stream's first picture must not wait (the Home app
    // plays the Constrained Baseline it makes under any profile it asks for).
    ...h264VideoArgs(video, keyframes, { preset: 'ultrafast', exportPrft: false }),
    '-payload_type', String(request.payloadType),
    '-ssrc', String(request.ssrc | 0),
    '-f', 'rtp',
    '-srtp_out_suite', 'AES_CM_128_HMAC_SHA1_80',
    '-srtp_out_params', request.srtpKeyAndSalt.toString('base64'),
    srtpUrl(request),
    ...(audio ? buildAudioOutputArgs(audio, request.targetAddress) : []),
  ];
}

/** The second output of the encoder: the sound over SRTP to HomeKit's audio port. */
function buildAudioOutputArgs(audio: AudioRequest, targetAddress: string): string[] {
  const codec =
    audio.codec === 'opus'
      ? ['-c:a', 'libopus', '-application', 'lowdelay', '-frame_duration', String(opusFrameDuration(audio.packetTime))]
      : ['-c:a', 'libfdk_aac', '-profile:a', 'aac_eld', '-flags', '+global_header'];
  return [
    '-map', '1:a:0',
    '-vn', '-sn', '-dn',
    ...codec,
    '-ar', String(audio.sampleRate * 1000),
    '-ac', String(audio.channels),
    '-b:a', `${audio.bitrate}k`,
    '-payload_type', String(audio.payloadType),
    '-ssrc', String(audio.ssrc | 0),
    '-f', 'rtp',
    '-srtp_out_suite', 'AES_CM_128_HMAC_SHA1_80',
    '-srtp_out_params', audio.srtpKeyAndSalt.toString('base64'),
    srtpUrl({ targetAddress, targetPort: audio.targetPort, mtu: 188 }),
  ];
}
