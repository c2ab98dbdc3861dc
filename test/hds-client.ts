// A HomeKit home hub for tests (HomeKit Secure Video): against a real HAP accessory on TCP it
// pairs with the PIN (hap-controller), reads and decodes the recording configurations the camera
// supports (205/206/207), selects one as the Home app does (209), switches the camera modes
// (Active, HomeKitCameraActive, snapshots; RecordingAudioActive by timed write), opens the
// HomeKit Data Stream (131 written with a write response; keys from the pair-verify secret of the
// HAP session that wrote it), says hello, opens `ipcamera.recording` streams, reassembles their
// chunks into fMP4 packets (init segment, then fragments), checks the protocol as it goes, and
// writes what it got to a file for ffprobe. HDS messages are encoded with HAP-NodeJS's own
// DataStreamParser; frames are ChaCha20-Poly1305 with node:crypto.
//
//   const hub = await HomeHub.pair(port, pin);
//   const supported = await hub.readRecordingConfiguration();
//   const selected = await hub.selectRecordingConfiguration({ width: 640, height: 360 });
//   await hub.setRecordingActive(true);
//   const stream = await hub.openRecording();
//   for await (const packet of stream) { ... }   // or: await stream.collect(3)
//   await stream.close();
//   await stream.writeTo(file);                    // ffprobe it
//   await hub.close();
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import type { Socket } from 'node:net';

import { HttpClient } from 'hap-controller';
import type { PairingData } from 'hap-controller';
import type HttpConnection from 'hap-controller/lib/transport/ip/http-connection';
import { DataStreamParser, DataStreamReader, DataStreamWriter, decodeWithLists, encode, Int64 } from 'hap-nodejs';

import { BoxSplitter, readFragment, readTracks } from '../src/media/fmp4';
import type { Box, TrackInfo } from '../src/media/fmp4';
import { hapUuid } from './hap-udp';

// ---------------------------------------------------------------------------------------------
// HAP types and numbers

/** The services and characteristics a home hub uses for HomeKit Secure Video, as full UUIDs. */
export const HKSV = {
  service: {
    info: hapUuid('3E'),
    rtp: hapUuid('110'),
    motion: hapUuid('85'),
    recording: hapUuid('204'),
    operatingMode: hapUuid('21A'),
    dataStream: hapUuid('129'),
  },
  characteristic: {
    name: hapUuid('23'),
    motionDetected: hapUuid('22'),
    /** On CameraRecordingManagement (recording on/off) and on CameraRTPStreamManagement (streaming on/off). */
    active: hapUuid('B0'),
    supportedCameraRecording: hapUuid('205'),
    supportedVideoRecording: hapUuid('206'),
    supportedAudioRecording: hapUuid('207'),
    selectedCameraRecording: hapUuid('209'),
    /** On CameraRecordingManagement; timed write only. */
    recordingAudioActive: hapUuid('226'),
    homeKitCameraActive: hapUuid('21B'),
    eventSnapshotsActive: hapUuid('223'),
    periodicSnapshotsActive: hapUuid('225'),
    supportedDataStreamTransport: hapUuid('130'),
    setupDataStreamTransport: hapUuid('131'),
  },
} as const;

/** HAP's codes in the recording TLVs. */
export const VideoCodec = { H264: 0, H265: 1 } as const;
export const H264ProfileId = { BASELINE: 0, MAIN: 1, HIGH: 2 } as const;
export const H264LevelId = { L3_1: 0, L3_2: 1, L4_0: 2 } as const;
export const AudioCodec = { AAC_LC: 0, AAC_ELD: 1 } as const;
/** Sample rate codes: 0 8 kHz, 1 16, 2 24, 3 32, 4 44.1, 5 48. */
export const SampleRate = { KHZ_8: 0, KHZ_16: 1, KHZ_24: 2, KHZ_32: 3, KHZ_44_1: 4, KHZ_48: 5 } as const;
export const EventTrigger = { MOTION: 1, DOORBELL: 2 } as const;
export const MediaContainer = { FRAGMENTED_MP4: 0 } as const;

/** HDS header status of a response. */
export const HdsStatus = { SUCCESS: 0, OUT_OF_MEMORY: 1, TIMEOUT: 2, HEADER_ERROR: 3, PAYLOAD_ERROR: 4, MISSING_PROTOCOL: 5, PROTOCOL_SPECIFIC_ERROR: 6 } as const;
/** `dataSend` reasons: in a `close` event, and in the message of a refused `open`. */
export const HdsReason = { NORMAL: 0, NOT_ALLOWED: 1, BUSY: 2, CANCELLED: 3, UNSUPPORTED: 4, UNEXPECTED_FAILURE: 5, TIMEOUT: 6, BAD_DATA: 7, PROTOCOL_ERROR: 8, INVALID_CONFIGURATION: 9 } as const;

// ---------------------------------------------------------------------------------------------
// Recording configurations (TLV8) as plain values

/** What CameraRecordingManagement offers (205, 206, 207 decoded). */
export interface SupportedRecording {
  prebufferLengthMs: number;
  /** Bit mask of EventTrigger values. */
  eventTriggerMask: number;
  containers: Array<{ type: number; fragmentLengthMs: number }>;
  video: Array<{ codec: number; profiles: number[]; levels: number[]; resolutions: Array<{ width: number; height: number; fps: number }> }>;
  audio: Array<{ codec: number; channels: number; bitrateModes: number[]; sampleRates: number[] }>;
}

/** One selected configuration (209), as the hub writes it. */
export interface RecordingSelection {
  prebufferLengthMs: number;
  eventTriggerMask: number;
  container: { type: number; fragmentLengthMs: number };
  video: { codec: number; profile: number; level: number; bitrateKbps: number; iFrameIntervalMs: number; width: number; height: number; fps: number };
  audio: { codec: number; channels: number; bitrateMode: number; sampleRate: number; maxBitrateKbps: number };
}

/** What a test may ask for; anything left out is chosen by `chooseRecordingConfiguration`. */
export interface RecordingWish {
  width?: number;
  height?: number;
  fps?: number;
  profile?: number;
  level?: number;
  bitrateKbps?: number;
  iFrameIntervalMs?: number;
  eventTriggerMask?: number;
  audioCodec?: number;
  sampleRate?: number;
  channels?: number;
  bitrateMode?: number;
  maxAudioBitrateKbps?: number;
}

type Tlv = Record<number, Buffer | Buffer[]>;

function entries(tlv: Tlv, type: number): Buffer[] {
  const value = tlv[type];
  return value === undefined ? [] : Array.isArray(value) ? value : [value];
}

function one(tlv: Tlv, type: number, what: string): Buffer {
  const [value] = entries(tlv, type);
  if (value === undefined) throw new Error(`recording TLV: ${what} (type ${type}) is missing`);
  return value;
}

/** The one-byte value of `type` (a codec, profile, frame rate, ...). */
function oneByte(tlv: Tlv, type: number, what: string): number {
  const [byte] = one(tlv, type, what);
  if (byte === undefined) throw new Error(`recording TLV: ${what} (type ${type}) is empty`);
  return byte;
}

/** The bytes of every entry of a TLV list of one-byte values (profiles, levels, sample rates, ...). */
const byteList = (tlv: Tlv, type: number): number[] => entries(tlv, type).flatMap((entry) => [...entry]);

/** A little-endian unsigned integer of 1 to 8 bytes (HAP TLV numbers). */
function uintLE(value: Buffer): number {
  return [...value.subarray(0, 8)].reduceRight((result, byte) => result * 256 + byte, 0);
}

const u32 = (value: number): Buffer => {
  const buffer = Buffer.alloc(4);
  buffer.writeUInt32LE(value >>> 0);
  return buffer;
};
const u16 = (value: number): Buffer => {
  const buffer = Buffer.alloc(2);
  buffer.writeUInt16LE(value);
  return buffer;
};

/** Decodes SupportedCameraRecordingConfiguration, SupportedVideo..., SupportedAudio... (base64 TLV8). */
export function decodeSupportedRecording(camera: string, video: string, audio: string): SupportedRecording {
  const c = decodeWithLists(Buffer.from(camera, 'base64'));
  const containers = entries(c, 3).map((entry) => {
    const container = decodeWithLists(entry);
    const parameters = decodeWithLists(one(container, 2, 'media container parameters'));
    return { type: oneByte(container, 1, 'media container type'), fragmentLengthMs: uintLE(one(parameters, 1, 'fragment length')) };
  });
  const v = decodeWithLists(Buffer.from(video, 'base64'));
  const videoCodecs = entries(v, 1).map((entry) => {
    const codec = decodeWithLists(entry);
    const parameters = decodeWithLists(one(codec, 2, 'video codec parameters'));
    return {
      codec: oneByte(codec, 1, 'video codec'),
      profiles: byteList(parameters, 1),
      levels: byteList(parameters, 2),
      resolutions: entries(codec, 3).map((attributes) => {
        const a = decodeWithLists(attributes);
        return { width: uintLE(one(a, 1, 'image width')), height: uintLE(one(a, 2, 'image height')), fps: oneByte(a, 3, 'frame rate') };
      }),
    };
  });
  const a = decodeWithLists(Buffer.from(audio, 'base64'));
  const audioCodecs = entries(a, 1).map((entry) => {
    const codec = decodeWithLists(entry);
    const parameters = decodeWithLists(one(codec, 2, 'audio codec parameters'));
    return { codec: oneByte(codec, 1, 'audio codec'), channels: oneByte(parameters, 1, 'channels'), bitrateModes: byteList(parameters, 2), sampleRates: byteList(parameters, 3) };
  });
  return {
    prebufferLengthMs: uintLE(one(c, 1, 'prebuffer length')),
    eventTriggerMask: uintLE(one(c, 2, 'event trigger options')),
    containers,
    video: videoCodecs,
    audio: audioCodecs,
  };
}

/**
 * A configuration from what the camera offers, the way a hub picks one: fragmented MP4, H.264,
 * the largest resolution (or the one asked for, which must be offered), the highest profile and
 * level, the I-frame interval equal to the fragment length, 2000 kbps, motion as the only
 * trigger (hubs do not enable doorbell triggers), AAC-LC at its highest sample rate, variable
 * bitrate, 64 kbps. Throws, naming what is offered, when a wish cannot be met.
 */
export function chooseRecordingConfiguration(supported: SupportedRecording, wish: RecordingWish = {}): RecordingSelection {
  const container = supported.containers.find((c) => c.type === MediaContainer.FRAGMENTED_MP4);
  if (!container) throw new Error(`the camera offers no fragmented MP4 container: ${JSON.stringify(supported.containers)}`);
  const video = supported.video.find((v) => v.codec === VideoCodec.H264);
  if (!video) throw new Error(`the camera offers no H.264: ${JSON.stringify(supported.video)}`);
  const resolutions = video.resolutions.filter(
    (r) => (wish.width === undefined || r.width === wish.width) && (wish.height === undefined || r.height === wish.height) && (wish.fps === undefined || r.fps === wish.fps),
  );
  const resolution = resolutions.sort((x, y) => y.width * y.height - x.width * x.height || y.fps - x.fps)[0];
  if (!resolution) throw new Error(`no offered resolution matches ${JSON.stringify(wish)}: ${JSON.stringify(video.resolutions)}`);
  const pick = (what: string, offered: number[], wanted: number | undefined): number => {
    const value = wanted ?? Math.max(...offered);
    if (!offered.includes(value)) throw new Error(`${what} ${value} is not offered: ${JSON.stringify(offered)}`);
    return value;
  };
  const audio = supported.audio.find((c) => c.codec === (wish.audioCodec ?? AudioCodec.AAC_LC)) ?? (wish.audioCodec === undefined ? supported.audio[0] : undefined);
  if (!audio) throw new Error(`audio codec ${wish.audioCodec} is not offered: ${JSON.stringify(supported.audio)}`);
  const motion = supported.eventTriggerMask & EventTrigger.MOTION;
  return {
    prebufferLengthMs: supported.prebufferLengthMs,
    eventTriggerMask: wish.eventTriggerMask ?? (motion || supported.eventTriggerMask),
    container: { type: container.type, fragmentLengthMs: container.fragmentLengthMs },
    video: {
      codec: video.codec,
      profile: pick('H.264 profile', video.profiles, wish.profile),
      level: pick('H.264 level', video.levels, wish.level),
      bitrateKbps: wish.bitrateKbps ?? 2000,
      iFrameIntervalMs: wish.iFrameIntervalMs ?? container.fragmentLengthMs,
      width: resolution.width,
      height: resolution.height,
      fps: resolution.fps,
    },
    audio: {
      codec: audio.codec,
      channels: wish.channels ?? audio.channels,
      bitrateMode: wish.bitrateMode ?? (audio.bitrateModes.includes(0) ? 0 : (audio.bitrateModes[0] ?? 0)),
      sampleRate: pick('audio sample rate', audio.sampleRates, wish.sampleRate),
      maxBitrateKbps: wish.maxAudioBitrateKbps ?? 64,
    },
  };
}

/** SelectedCameraRecordingConfiguration (209) as base64 TLV8, laid out as HAP-NodeJS parses it. */
export function encodeRecordingSelection(s: RecordingSelection): string {
  const triggers = Buffer.alloc(8);
  triggers.writeUInt32LE(s.eventTriggerMask >>> 0);
  const general = encode(
    1, u32(s.prebufferLengthMs),
    2, triggers,
    3, encode(1, s.container.type, 2, encode(1, u32(s.container.fragmentLengthMs))),
  );
  const video = encode(
    1, s.video.codec,
    2, encode(1, s.video.profile, 2, s.video.level, 3, u32(s.video.bitrateKbps), 4, u32(s.video.iFrameIntervalMs)),
    3, encode(1, u16(s.video.width), 2, u16(s.video.height), 3, s.video.fps),
  );
  const audio = encode(1, s.audio.codec, 2, encode(1, s.audio.channels, 2, s.audio.bitrateMode, 3, s.audio.sampleRate, 4, u32(s.audio.maxBitrateKbps)));
  return encode(1, general, 2, video, 3, audio).toString('base64');
}

/** The inverse of `encodeRecordingSelection` (a value read back from 209). */
export function decodeRecordingSelection(base64: string): RecordingSelection {
  const top = decodeWithLists(Buffer.from(base64, 'base64'));
  const general = decodeWithLists(one(top, 1, 'selected recording configuration'));
  const container = decodeWithLists(one(general, 3, 'media container configuration'));
  const containerParameters = decodeWithLists(one(container, 2, 'media container parameters'));
  const video = decodeWithLists(one(top, 2, 'selected video configuration'));
  const videoParameters = decodeWithLists(one(video, 2, 'video codec parameters'));
  const attributes = decodeWithLists(one(video, 3, 'video attributes'));
  const audio = decodeWithLists(one(top, 3, 'selected audio configuration'));
  const audioParameters = decodeWithLists(one(audio, 2, 'audio codec parameters'));
  return {
    prebufferLengthMs: uintLE(one(general, 1, 'prebuffer length')),
    eventTriggerMask: uintLE(one(general, 2, 'event trigger options')),
    container: { type: oneByte(container, 1, 'media container type'), fragmentLengthMs: uintLE(one(containerParameters, 1, 'fragment length')) },
    video: {
      codec: oneByte(video, 1, 'video codec'),
      profile: oneByte(videoParameters, 1, 'profile'),
      level: oneByte(videoParameters, 2, 'level'),
      bitrateKbps: uintLE(one(videoParameters, 3, 'bitrate')),
      iFrameIntervalMs: uintLE(one(videoParameters, 4, 'I-frame interval')),
      width: uintLE(one(attributes, 1, 'image width')),
      height: uintLE(one(attributes, 2, 'image height')),
      fps: oneByte(attributes, 3, 'frame rate'),
    },
    audio: {
      codec: oneByte(audio, 1, 'audio codec'),
      channels: oneByte(audioParameters, 1, 'channels'),
      bitrateMode: oneByte(audioParameters, 2, 'bitrate mode'),
      sampleRate: oneByte(audioParameters, 3, 'sample rate'),
      maxBitrateKbps: uintLE(one(audioParameters, 4, 'max audio bitrate')),
    },
  };
}

// ---------------------------------------------------------------------------------------------
// HomeKit Data Stream: frames and messages

/** A decoded HDS message. */
export interface HdsMessage {
  kind: 'event' | 'request' | 'response';
  protocol: string;
  topic: string;
  /** Requests and responses. */
  id?: number;
  /** Responses: the header status (HdsStatus). */
  status?: number;
  message: Record<string, unknown>;
}

/** A response whose status was not SUCCESS. */
export class HdsRequestError extends Error {
  constructor(
    readonly request: string,
    /** The header status (HdsStatus). */
    readonly status: number,
    /** The message's own `status` (a reason, HdsReason, for `dataSend`), when it has one. */
    readonly reason: number | undefined,
  ) {
    super(`HDS ${request} answered status ${status}${reason === undefined ? '' : ` (reason ${reason})`}`);
  }
}

/** Something the accessory sent that a hub would not accept. */
export class HdsProtocolViolation extends Error {}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value) && !Buffer.isBuffer(value);

function encodeDictionary(value: Record<string, unknown>): Buffer {
  const writer = new DataStreamWriter();
  DataStreamParser.encode(value, writer);
  return writer.getData();
}

function decodeDictionary(data: Buffer, what: string): Record<string, unknown> {
  const decoded = DataStreamParser.decode(new DataStreamReader(data)) as unknown;
  if (!isRecord(decoded)) throw new HdsProtocolViolation(`HDS ${what} is not a dictionary`);
  return decoded;
}

/** HDS payload: header length (1 byte), header dictionary, message dictionary. */
export function encodeHdsPayload(header: Record<string, unknown>, message: Record<string, unknown>): Buffer {
  const h = encodeDictionary(header);
  if (h.length > 255) throw new Error('HDS header longer than 255 bytes');
  return Buffer.concat([Buffer.from([h.length]), h, encodeDictionary(message)]);
}

export function decodeHdsPayload(payload: Buffer): HdsMessage {
  const headerLength = payload[0];
  if (headerLength === undefined) throw new HdsProtocolViolation('HDS payload is empty');
  const header = decodeDictionary(payload.subarray(1, 1 + headerLength), 'header');
  const message = decodeDictionary(payload.subarray(1 + headerLength), 'message');
  const protocol = String(header.protocol);
  const number = (value: unknown) => (typeof value === 'number' ? value : undefined);
  if (typeof header.event === 'string') return { kind: 'event', protocol, topic: header.event, message };
  if (typeof header.request === 'string') return { kind: 'request', protocol, topic: header.request, id: number(header.id), message };
  if (typeof header.response === 'string') return { kind: 'response', protocol, topic: header.response, id: number(header.id), status: number(header.status), message };
  throw new HdsProtocolViolation(`HDS header without event, request or response: ${JSON.stringify(header)}`);
}

/** One direction of HDS encryption: ChaCha20-Poly1305, nonce = 4 zero bytes + 64-bit LE counter. */
class HdsCipher {
  private counter = 0n;
  constructor(private readonly key: Buffer) {}

  private nonce(): Buffer {
    const nonce = Buffer.alloc(12);
    nonce.writeBigUInt64LE(this.counter++, 4);
    return nonce;
  }

  /** A whole frame: header (type 1, 24-bit length; the AAD), ciphertext, 16-byte tag. */
  seal(payload: Buffer): Buffer {
    const header = Buffer.from([1, (payload.length >> 16) & 0xff, (payload.length >> 8) & 0xff, payload.length & 0xff]);
    const cipher = createCipheriv('chacha20-poly1305', this.key, this.nonce(), { authTagLength: 16 });
    cipher.setAAD(header, { plaintextLength: payload.length });
    const ciphertext = Buffer.concat([cipher.update(payload), cipher.final()]);
    return Buffer.concat([header, ciphertext, cipher.getAuthTag()]);
  }

  open(header: Buffer, ciphertext: Buffer, tag: Buffer): Buffer {
    const decipher = createDecipheriv('chacha20-poly1305', this.key, this.nonce(), { authTagLength: 16 });
    decipher.setAAD(header, { plaintextLength: ciphertext.length });
    decipher.setAuthTag(tag);
    return Buffer.concat([decipher.update(ciphertext), decipher.final()]);
  }
}

/** The HDS keys of one session: HKDF-SHA512 of the pair-verify secret, salt = controller || accessory salt. */
export function hdsKeys(sharedSecret: Buffer, controllerSalt: Buffer, accessorySalt: Buffer): { write: Buffer; read: Buffer } {
  const salt = Buffer.concat([controllerSalt, accessorySalt]);
  const derive = (info: string) => Buffer.from(hkdfSync('sha512', sharedSecret, salt, info, 32));
  return { write: derive('HDS-Write-Encryption-Key'), read: derive('HDS-Read-Encryption-Key') };
}

/** Answers true when it handled the message (a request it will answer itself); anything else when not. */
type MessageListener = (message: HdsMessage) => unknown;

/** One HomeKit Data Stream connection from the hub's side, after `control`/`hello`. */
export class DataStream {
  private readonly writer: HdsCipher;
  private readonly reader: HdsCipher;
  private buffered: Buffer = Buffer.alloc(0);
  private nextRequestId = 1;
  private readonly pending = new Map<number, { resolve: (m: HdsMessage) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  private readonly listeners = new Set<MessageListener>();
  private readonly closeListeners = new Set<(error: Error | null) => void>();
  private closedWith?: Error | null;
  private readonly closedPromise: Promise<void>;
  /** protocol/topic/kind of every message, both ways, in order (`> ` sent, `< ` received). */
  readonly log: string[] = [];

  private constructor(
    private readonly socket: Socket,
    keys: { write: Buffer; read: Buffer },
  ) {
    this.writer = new HdsCipher(keys.write);
    this.reader = new HdsCipher(keys.read);
    this.closedPromise = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('data', (data: Buffer) => this.onData(data));
    socket.on('error', (error) => this.fail(error));
    socket.on('close', () => this.fail(null));
  }

  /** Connects, says hello, and resolves once the accessory has answered it. */
  static async open(host: string, port: number, keys: { write: Buffer; read: Buffer }, timeoutMs = 10_000): Promise<DataStream> {
    const socket = await new Promise<Socket>((resolve, reject) => {
      const s = connect({ host, port });
      const timer = setTimeout(() => {
        s.destroy();
        reject(new Error(`HDS: no TCP connection to ${host}:${port} within ${timeoutMs} ms`));
      }, timeoutMs);
      s.once('connect', () => {
        clearTimeout(timer);
        s.setNoDelay(true);
        resolve(s);
      });
      s.once('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
    });
    const stream = new DataStream(socket, keys);
    try {
      const hello = await stream.request('control', 'hello', {}, timeoutMs);
      if (hello.status !== HdsStatus.SUCCESS) throw new HdsRequestError('control.hello', hello.status ?? -1, undefined);
    } catch (error) {
      stream.socket.destroy();
      // HAP-NodeJS closes a connection whose first frame no prepared session's key decrypts.
      if (stream.isClosed && !(error instanceof HdsRequestError)) throw new Error(`HDS: the accessory closed the connection before answering hello (wrong keys, or more than 10 s after SetupDataStreamTransport?): ${(error as Error).message}`, { cause: error });
      throw error;
    }
    return stream;
  }

  get isClosed(): boolean {
    return this.closedWith !== undefined;
  }

  /** Sends a request; resolves with the response whatever its status (rejects on timeout or close). */
  request(protocol: string, topic: string, message: Record<string, unknown> = {}, timeoutMs = 10_000): Promise<HdsMessage> {
    const id = this.nextRequestId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`HDS ${protocol}.${topic}: no response within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      try {
        this.send({ protocol, request: topic, id: new Int64(id) }, message, `> request ${protocol}.${topic}`);
      } catch (error) {
        clearTimeout(timer);
        this.pending.delete(id);
        reject(error instanceof Error ? error : new Error(String(error)));
      }
    });
  }

  /** Sends an event (throws once the connection has closed). */
  event(protocol: string, topic: string, message: Record<string, unknown> = {}): void {
    this.send({ protocol, event: topic }, message, `> event ${protocol}.${topic}`);
  }

  /**
   * Every message the accessory sends (not the responses to our requests); returns the
   * unsubscribe. A request no listener handles is answered MISSING_PROTOCOL, as HAP-NodeJS does.
   */
  onMessage(listener: MessageListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Called once when the connection closes (`error` when it ended on one). */
  onClose(listener: (error: Error | null) => void): () => void {
    if (this.closedWith !== undefined) listener(this.closedWith);
    else this.closeListeners.add(listener);
    return () => this.closeListeners.delete(listener);
  }

  /** Ends the connection and waits until the socket has closed. */
  async close(timeoutMs = 5_000): Promise<void> {
    if (!this.socket.destroyed) this.socket.end();
    const timer = setTimeout(() => this.socket.destroy(), timeoutMs);
    await this.closedPromise;
    clearTimeout(timer);
  }

  /** Resolves when the connection has closed (by either side); rejects after `timeoutMs`. */
  async waitClosed(timeoutMs = 10_000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.closedPromise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`HDS connection still open after ${timeoutMs} ms`)), timeoutMs);
      }),
    ]).finally(() => clearTimeout(timer));
  }

  private send(header: Record<string, unknown>, message: Record<string, unknown>, what: string): void {
    if (this.closedWith !== undefined || this.socket.destroyed) throw new Error(`HDS connection closed; cannot send ${what.slice(2)}`);
    this.log.push(what);
    this.socket.write(this.writer.seal(encodeHdsPayload(header, message)));
  }

  private onData(data: Buffer): void {
    this.buffered = this.buffered.length === 0 ? data : Buffer.concat([this.buffered, data]);
    try {
      while (this.buffered.length >= 4) {
        const length = this.buffered.readUIntBE(1, 3);
        if (this.buffered.length < 4 + length + 16) break;
        const header = this.buffered.subarray(0, 4);
        const ciphertext = this.buffered.subarray(4, 4 + length);
        const tag = this.buffered.subarray(4 + length, 4 + length + 16);
        this.buffered = this.buffered.subarray(4 + length + 16);
        if (header[0] !== 1) throw new HdsProtocolViolation(`HDS frame of type ${header[0]} (expected 1)`);
        let payload: Buffer;
        try {
          payload = this.reader.open(header, ciphertext, tag);
        } catch {
          throw new HdsProtocolViolation('HDS frame failed authentication (wrong keys or nonce)');
        }
        this.dispatch(decodeHdsPayload(payload));
      }
    } catch (error) {
      this.socket.destroy();
      this.fail(error as Error);
    }
  }

  private dispatch(message: HdsMessage): void {
    this.log.push(`< ${message.kind} ${message.protocol}.${message.topic}`);
    if (message.kind === 'response') {
      const waiting = message.id === undefined ? undefined : this.pending.get(message.id);
      if (!waiting) return;
      this.pending.delete(message.id!);
      clearTimeout(waiting.timer);
      waiting.resolve(message);
      return;
    }
    let handled = false;
    for (const listener of [...this.listeners]) handled = listener(message) === true || handled;
    if (message.kind === 'request' && !handled && message.id !== undefined) {
      // Nobody here speaks that protocol: answer as HAP-NodeJS would.
      this.send({ protocol: message.protocol, response: message.topic, id: new Int64(message.id), status: new Int64(HdsStatus.MISSING_PROTOCOL) }, {}, `> response ${message.protocol}.${message.topic}`);
    }
  }

  private fail(error: Error | null): void {
    if (this.closedWith !== undefined) return;
    this.closedWith = error;
    for (const [id, waiting] of this.pending) {
      clearTimeout(waiting.timer);
      waiting.reject(error ?? new Error('HDS connection closed'));
      this.pending.delete(id);
    }
    for (const listener of [...this.closeListeners]) listener(error);
    this.closeListeners.clear();
  }
}

// ---------------------------------------------------------------------------------------------
// Recording streams: chunks to packets

/** One reassembled packet of a recording: the init segment or one fragment. */
export interface RecordingPacket {
  type: 'mediaInitialization' | 'mediaFragment';
  /** dataSequenceNumber: 1 for the init segment, then 2, 3, ... */
  sequence: number;
  data: Buffer;
  /** How many `data` chunks it arrived in. */
  chunks: number;
  /** The event carrying its last chunk said `endOfStream: true`. */
  endOfStream: boolean;
  /** Date.now() when its last chunk arrived. */
  receivedAt: number;
}

/**
 * Reassembles the `packets` of `dataSend`/`data` events into whole packets, checking what a hub
 * relies on: the init segment first (sequence 1, `mediaInitialization`), then fragments with
 * consecutive sequence numbers; chunks numbered from 1 and consecutive, `isLastDataChunk` on the
 * last, `dataTotalSize` (when given) equal to the reassembled size. Throws HdsProtocolViolation.
 */
export class PacketAssembler {
  private sequence = 0;
  private parts: Buffer[] = [];
  private nextChunk = 1;
  private totalSize?: number;
  private type?: string;

  /** Feeds one `dataSend`/`data` message; answers the packets it completed. */
  push(message: Record<string, unknown>, now = Date.now()): RecordingPacket[] {
    const packets = message.packets;
    if (!Array.isArray(packets) || packets.length === 0) throw new HdsProtocolViolation(`dataSend.data without packets: ${describe(message)}`);
    const done: RecordingPacket[] = [];
    packets.forEach((packet: unknown, index) => {
      if (!isRecord(packet) || !Buffer.isBuffer(packet.data) || !isRecord(packet.metadata)) throw new HdsProtocolViolation(`dataSend.data packet without data or metadata: ${describe(packet)}`);
      const meta = packet.metadata;
      const { dataType, dataSequenceNumber: sequence, dataChunkSequenceNumber: chunk, isLastDataChunk: last, dataTotalSize: total } = meta;
      if (dataType !== 'mediaInitialization' && dataType !== 'mediaFragment') throw new HdsProtocolViolation(`unknown dataType ${String(dataType)}`);
      if (typeof sequence !== 'number' || typeof chunk !== 'number' || typeof last !== 'boolean') throw new HdsProtocolViolation(`incomplete metadata: ${describe(meta)}`);
      if (chunk === 1) {
        if (this.parts.length > 0) throw new HdsProtocolViolation(`packet ${sequence} started while packet ${this.sequence} was incomplete`);
        if (sequence !== this.sequence + 1) throw new HdsProtocolViolation(`packet ${sequence} follows packet ${this.sequence}`);
        const expectedType = sequence === 1 ? 'mediaInitialization' : 'mediaFragment';
        if (dataType !== expectedType) throw new HdsProtocolViolation(`packet ${sequence} is ${dataType} (expected ${expectedType})`);
        this.sequence = sequence;
        this.type = dataType;
        this.nextChunk = 1;
        this.totalSize = typeof total === 'number' ? total : undefined;
      } else if (sequence !== this.sequence || dataType !== this.type) {
        throw new HdsProtocolViolation(`chunk ${chunk} of packet ${sequence} (${dataType}) while packet ${this.sequence} (${this.type}) was being received`);
      }
      if (chunk !== this.nextChunk) throw new HdsProtocolViolation(`chunk ${chunk} of packet ${sequence} (expected chunk ${this.nextChunk})`);
      this.parts.push(packet.data);
      this.nextChunk++;
      if (!last) return;
      const data = Buffer.concat(this.parts);
      this.parts = [];
      if (this.totalSize !== undefined && this.totalSize !== data.length) throw new HdsProtocolViolation(`packet ${sequence}: dataTotalSize ${this.totalSize}, received ${data.length} bytes`);
      const endOfStream = message.endOfStream === true && index === packets.length - 1;
      done.push({ type: dataType, sequence, data, chunks: chunk, endOfStream, receivedAt: now });
    });
    return done;
  }
}

function describe(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => (isRecord(v) && v.type === 'Buffer' && Array.isArray(v.data) ? `<${v.data.length} bytes>` : v));
}

/** How a recording stream ended. */
export interface RecordingEnd {
  /**
   * hub: we sent `close`; accessory: it sent `close` (or refused the open); endOfStream: its last
   * packet said so (acknowledged when `autoAck`); connection: HDS closed; error: a protocol
   * violation (we sent `close` with PROTOCOL_ERROR) or a socket error.
   */
  by: 'hub' | 'accessory' | 'endOfStream' | 'connection' | 'error';
  reason?: number;
  error?: Error;
}

export interface RecordingOptions {
  /** `reason` of the open request (HAP-NodeJS only logs it). Default 'motion'. */
  reason?: string;
  streamId?: number;
  /** Answer a packet marked endOfStream with `dataSend`/`ack`, as a hub does (default true). */
  autoAck?: boolean;
  /** Longest wait for the open response and, while iterating, for the next packet (default 30 s). */
  timeoutMs?: number;
}

/** One `ipcamera.recording` stream: iterate it for packets; `packets` keeps all of them. */
export class RecordingStream implements AsyncIterable<RecordingPacket> {
  readonly packets: RecordingPacket[] = [];
  /** `data` events that arrived after the stream had ended (in flight when we closed it). */
  lateEvents = 0;
  private _ended?: RecordingEnd;
  private readonly assembler = new PacketAssembler();
  private cursor = 0;
  private wake?: () => void;
  private readonly endWaiters: Array<() => void> = [];

  constructor(
    readonly dataStream: DataStream,
    readonly streamId: number,
    private readonly options: Required<Pick<RecordingOptions, 'autoAck' | 'timeoutMs'>>,
  ) {
    dataStream.onMessage((message) => this.onMessage(message));
    dataStream.onClose((error) => this.finish(error ? { by: 'error', error } : { by: 'connection' }));
  }

  get ended(): RecordingEnd | undefined {
    return this._ended;
  }

  /** Packets not yet handed out by any iterator or `collect`, as they arrive; ends with the stream. */
  async *[Symbol.asyncIterator](): AsyncIterator<RecordingPacket> {
    for (;;) {
      const packet = this.packets[this.cursor];
      if (packet) {
        this.cursor++;
        yield packet;
        continue;
      }
      if (this._ended) {
        if (this._ended.error) throw this._ended.error;
        return;
      }
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          this.wake = undefined;
          reject(new Error(`recording stream ${this.streamId}: no packet within ${this.options.timeoutMs} ms (${this.packets.length} so far)`));
        }, this.options.timeoutMs);
        this.wake = () => {
          clearTimeout(timer);
          this.wake = undefined;
          resolve();
        };
      });
    }
  }

  /**
   * Waits until `fragments` media fragments (after the init segment) have arrived and answers all
   * packets so far. Throws if the stream ends before.
   */
  async collect(fragments: number): Promise<RecordingPacket[]> {
    let count = this.packets.slice(0, this.cursor).filter((p) => p.type === 'mediaFragment').length;
    if (count < fragments) {
      for await (const packet of this) {
        if (packet.type === 'mediaFragment') count++;
        if (count >= fragments) break;
      }
    }
    if (count < fragments) throw new Error(`recording stream ${this.streamId} ended (${JSON.stringify(this._ended)}) after ${count} of ${fragments} fragments`);
    return this.packets.slice();
  }

  /** Closes the stream as the hub does (`dataSend`/`close` with `reason`). */
  close(reason: number = HdsReason.NORMAL): void {
    if (this._ended) return;
    if (!this.dataStream.isClosed) this.dataStream.event('dataSend', 'close', { streamId: this.streamId, reason });
    this.finish({ by: 'hub', reason });
  }

  /** Sends `dataSend`/`ack` (HAP-NodeJS ends the stream on any ack). */
  ack(): void {
    this.dataStream.event('dataSend', 'ack', { streamId: this.streamId, endOfStream: true });
  }

  /** Resolves once the stream has ended (any way); rejects after `timeoutMs`. */
  async waitEnded(timeoutMs = 10_000): Promise<RecordingEnd> {
    if (!this._ended) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise<void>((resolve) => this.endWaiters.push(resolve)),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`recording stream ${this.streamId} still open after ${timeoutMs} ms`)), timeoutMs);
        }),
      ]).finally(() => clearTimeout(timer));
    }
    return this._ended!;
  }

  /** All packets so far, in order: a fragmented MP4 file. */
  fmp4(): Buffer {
    return Buffer.concat(this.packets.map((p) => p.data));
  }

  /** Writes `fmp4()` to `file` (for ffprobe). */
  async writeTo(file: string): Promise<void> {
    await writeFile(file, this.fmp4());
  }

  private onMessage(message: HdsMessage): void {
    if (message.protocol !== 'dataSend' || message.kind !== 'event' || message.message.streamId !== this.streamId) return;
    if (this._ended) {
      if (message.topic === 'data') this.lateEvents++;
      return;
    }
    if (message.topic === 'close') {
      this.finish({ by: 'accessory', reason: typeof message.message.reason === 'number' ? message.message.reason : undefined });
    } else if (message.topic === 'data') {
      let packets: RecordingPacket[];
      try {
        packets = this.assembler.push(message.message);
      } catch (error) {
        // As a hub would: refuse the rest of the stream.
        if (!this.dataStream.isClosed) this.dataStream.event('dataSend', 'close', { streamId: this.streamId, reason: HdsReason.PROTOCOL_ERROR });
        this.finish({ by: 'error', error: error as Error });
        return;
      }
      this.packets.push(...packets);
      if (packets.some((p) => p.endOfStream)) {
        if (this.options.autoAck && !this.dataStream.isClosed) this.ack();
        this.finish({ by: 'endOfStream' });
      }
      this.wake?.();
    }
  }

  /** Marks the stream ended (harness-internal: `close()` is how a test ends a stream). */
  finish(end: RecordingEnd): void {
    if (this._ended) return;
    this._ended = end;
    this.wake?.();
    for (const resolve of this.endWaiters.splice(0)) resolve();
  }
}

// ---------------------------------------------------------------------------------------------
// What a recording holds

export interface RecordingInspection {
  init?: { boxes: string[]; tracks: TrackInfo[]; video?: TrackInfo };
  fragments: Array<{ sequence: number; boxes: string[]; bytes: number; key: boolean; startMs: number; durationMs: number; samples: number }>;
  /** Sum of the fragments' video durations. */
  mediaDurationMs: number;
  /** What a hub would object to: init not ftyp+moov first, a fragment not moof+mdat, not starting on a key frame, longer than the fragment length. */
  problems: string[];
}

/** The top-level boxes of a packet; throws when bytes are left over. */
function boxesOf(data: Buffer): Box[] {
  const boxes = new BoxSplitter().push(data);
  const used = boxes.reduce((sum, box) => sum + box.data.length, 0);
  if (used !== data.length) throw new Error(`${data.length - used} bytes after the last complete box`);
  return boxes;
}

/** Reads each packet's boxes and the fragments' video (key frame, media time, duration). */
export function inspectRecording(packets: RecordingPacket[], options: { fragmentLengthMs?: number } = {}): RecordingInspection {
  const result: RecordingInspection = { fragments: [], mediaDurationMs: 0, problems: [] };
  const [first, ...rest] = packets;
  if (!first || first.type !== 'mediaInitialization') {
    result.problems.push('the first packet is not the media initialization');
    return result;
  }
  let initBoxes: Box[];
  try {
    initBoxes = boxesOf(first.data);
  } catch (error) {
    result.problems.push(`init segment: ${(error as Error).message}`);
    return result;
  }
  const moov = initBoxes.find((b) => b.type === 'moov');
  const tracks = moov ? readTracks(moov) : [];
  const video = tracks.find((t) => t.handler === 'vide');
  result.init = { boxes: initBoxes.map((b) => b.type), tracks, video };
  if (result.init.boxes.join(',') !== 'ftyp,moov') result.problems.push(`init segment holds ${result.init.boxes.join(', ')} (expected ftyp, moov)`);
  if (!video) result.problems.push('the init segment has no video track');
  for (const packet of rest) {
    let boxes: Box[];
    try {
      boxes = boxesOf(packet.data);
    } catch (error) {
      result.problems.push(`fragment ${packet.sequence}: ${(error as Error).message}`);
      continue;
    }
    const types = boxes.map((b) => b.type);
    const moof = boxes.find((b) => b.type === 'moof');
    const info = moof && video ? readFragment(moof, video) : undefined;
    const fragment = { sequence: packet.sequence, boxes: types, bytes: packet.data.length, key: info?.key ?? false, startMs: info?.startMs ?? 0, durationMs: info?.durationMs ?? 0, samples: info?.samples ?? 0 };
    result.fragments.push(fragment);
    result.mediaDurationMs += fragment.durationMs;
    if (types.join(',') !== 'moof,mdat') result.problems.push(`fragment ${packet.sequence} holds ${types.join(', ')} (expected moof, mdat)`);
    if (!fragment.key) result.problems.push(`fragment ${packet.sequence} does not start on a key frame`);
    if (options.fragmentLengthMs !== undefined && fragment.durationMs > options.fragmentLengthMs) {
      result.problems.push(`fragment ${packet.sequence} lasts ${fragment.durationMs} ms (fragment length ${options.fragmentLengthMs} ms)`);
    }
  }
  return result;
}

// ---------------------------------------------------------------------------------------------
// The hub

type SessionKeys = { AccessoryToControllerKey: Buffer; ControllerToAccessoryKey: Buffer };
const SHARED_SECRET = Symbol('pair-verify shared secret');

/** What the harness uses of hap-controller beyond its typed API. */
interface HttpClientInternals {
  pairingProtocol: { pairVerify: { sharedSecret: Buffer | null }; getSessionKeys(): SessionKeys };
  _pairVerify(connection: HttpConnection): Promise<SessionKeys>;
  getDefaultVerifiedConnection(): Promise<HttpConnection>;
}

interface CharacteristicRef {
  iid: number;
  perms: string[];
}

/** The iids of one camera accessory, by service and characteristic type. */
interface CameraDatabase {
  aid: number;
  name: string;
  /** service type -> characteristic type -> iid, for the first service of each type... */
  services: Map<string, Map<string, CharacteristicRef>>;
  /** ...except the DataStreamTransportManagement linked from CameraRecordingManagement. */
  dataStream: Map<string, CharacteristicRef>;
}

export interface HomeHubOptions {
  host?: string;
  /** Which camera: its aid or its name. Default: the first accessory with CameraRecordingManagement. */
  camera?: number | string;
  /** hap-controller's device id label. */
  id?: string;
}

/** A HAP status other than success for one characteristic. */
export class HapStatusError extends Error {
  constructor(
    readonly what: string,
    readonly status: number,
  ) {
    super(`${what} failed with HAP status ${status}`);
  }
}

export type CameraMode = 'off' | 'detect' | 'stream' | 'record';

/**
 * A home hub paired with one accessory (a bridge or a camera). One persistent HAP session
 * (pair-verified once) carries every read and write and the SetupDataStreamTransport write;
 * events come on a second session of hap-controller's. Each pair-verify's X25519 secret is kept
 * per connection, so the HDS keys come from the session that wrote 131 whatever verifies later.
 */
export class HomeHub {
  private database?: CameraDatabase;
  private readonly secrets = new WeakMap<HttpConnection, Buffer>();
  private currentDataStream?: DataStream;
  private readonly dataStreams: DataStream[] = [];
  private nextStreamId = 1;
  /** Pair-verifies done so far (the persistent session, the event session, ...). */
  pairVerifies = 0;

  private constructor(
    readonly client: HttpClient,
    readonly host: string,
    private readonly options: HomeHubOptions,
  ) {
    const internals = client as unknown as HttpClientInternals;
    const protocol = internals.pairingProtocol;
    const getSessionKeys = protocol.getSessionKeys.bind(protocol);
    // Called inside pair-verify's queued operation, right after M4: the secret is this session's.
    protocol.getSessionKeys = () => {
      const keys = getSessionKeys();
      const secret = protocol.pairVerify.sharedSecret;
      return Object.assign(keys, { [SHARED_SECRET]: secret ? Buffer.from(secret) : undefined });
    };
    const pairVerify = internals._pairVerify.bind(client);
    internals._pairVerify = async (connection) => {
      const keys = await pairVerify(connection);
      const secret = (keys as SessionKeys & { [SHARED_SECRET]?: Buffer })[SHARED_SECRET];
      if (secret) this.secrets.set(connection, secret);
      this.pairVerifies++;
      return keys;
    };
  }

  /** Pair-setup with the PIN, then the first pair-verify and the accessory database. */
  static async pair(port: number, pin: string, options: HomeHubOptions = {}): Promise<HomeHub> {
    const host = options.host ?? '127.0.0.1';
    const hub = new HomeHub(new HttpClient(options.id ?? 'hksv-test-hub', host, port, undefined, { usePersistentConnections: true }), host, options);
    try {
      await hub.client.pairSetup(pin);
      await hub.load();
    } catch (error) {
      await hub.client.close().catch(() => {});
      throw error;
    }
    return hub;
  }

  /** A hub from an earlier pairing (`hub.pairing`), e.g. after the accessory restarted. */
  static async connect(port: number, pairing: PairingData, options: HomeHubOptions = {}): Promise<HomeHub> {
    const host = options.host ?? '127.0.0.1';
    const hub = new HomeHub(new HttpClient(options.id ?? 'hksv-test-hub', host, port, pairing, { usePersistentConnections: true }), host, options);
    try {
      await hub.load();
    } catch (error) {
      await hub.client.close().catch(() => {});
      throw error;
    }
    return hub;
  }

  /** The long-term keys, for `HomeHub.connect`. */
  get pairing(): PairingData {
    const data = this.client.getLongTermData();
    if (!data) throw new Error('not paired');
    return data;
  }

  /** The camera's aid and name. */
  get camera(): { aid: number; name: string } {
    const db = this.db();
    return { aid: db.aid, name: db.name };
  }

  /** "aid.iid" of a characteristic of the camera (throws when it has none). */
  id(service: string, characteristic: string): string {
    return `${this.db().aid}.${this.ref(service, characteristic).iid}`;
  }

  /** Reads characteristics of the camera; a HAP status other than 0 throws. */
  async read(service: string, characteristic: string): Promise<unknown> {
    const id = this.id(service, characteristic);
    const { characteristics } = await this.client.getCharacteristics([id]);
    const c = characteristics[0];
    if (c?.status !== undefined && c.status !== 0) throw new HapStatusError(`reading ${id}`, c.status);
    return c?.value;
  }

  /**
   * Writes characteristics of the camera in one request on the persistent session; `timed`: a
   * timed write (PUT /prepare, then the write with its pid). Answers the write-response values.
   */
  async write(values: Array<{ service: string; characteristic: string; value: unknown; response?: boolean }>, timed = false): Promise<unknown[]> {
    const db = this.db();
    const connection = await this.connection();
    let pid: number | undefined;
    if (timed) {
      pid = randomBytes(4).readUInt32LE() || 1;
      const prepared = await connection.put('/prepare', Buffer.from(JSON.stringify({ ttl: 5_000, pid })));
      if (prepared.statusCode !== 200) throw new Error(`PUT /prepare answered ${prepared.statusCode}: ${prepared.body.toString()}`);
    }
    const characteristics = values.map((v) => ({ aid: db.aid, iid: this.ref(v.service, v.characteristic).iid, value: v.value, ...(v.response ? { r: true } : {}) }));
    const response = await connection.put('/characteristics', Buffer.from(JSON.stringify({ characteristics, ...(pid === undefined ? {} : { pid }) })));
    if (response.statusCode === 204) return values.map(() => undefined);
    if (response.statusCode !== 207) throw new Error(`PUT /characteristics answered ${response.statusCode}: ${response.body.toString()}`);
    const answered = (JSON.parse(response.body.toString()) as { characteristics: Array<{ iid: number; status?: number; value?: unknown }> }).characteristics;
    return characteristics.map((c) => {
      const answer = answered.find((a) => a.iid === c.iid);
      if (answer?.status !== undefined && answer.status !== 0) throw new HapStatusError(`writing ${db.aid}.${c.iid}`, answer.status);
      return answer?.value;
    });
  }

  /** 205, 206, 207 decoded. */
  async readRecordingConfiguration(): Promise<SupportedRecording> {
    const { service, characteristic: c } = HKSV;
    const ids = [c.supportedCameraRecording, c.supportedVideoRecording, c.supportedAudioRecording].map((type) => this.id(service.recording, type));
    const [camera, video, audio] = ids;
    const { characteristics } = await this.client.getCharacteristics(ids);
    const value = (id: string | undefined) => {
      const found = characteristics.find((x) => `${String(x.aid)}.${String(x.iid)}` === id);
      if (typeof found?.value !== 'string') throw new Error(`reading ${id} gave ${JSON.stringify(found)}`);
      return found.value;
    };
    return decodeSupportedRecording(value(camera), value(video), value(audio));
  }

  /**
   * Writes SelectedCameraRecordingConfiguration (209): the selection given, or one chosen from
   * what the camera offers (`chooseRecordingConfiguration`) with the wishes given. Answers it.
   */
  async selectRecordingConfiguration(selection: RecordingSelection | RecordingWish = {}): Promise<RecordingSelection> {
    const chosen = 'video' in selection ? selection : chooseRecordingConfiguration(await this.readRecordingConfiguration(), selection);
    await this.write([{ service: HKSV.service.recording, characteristic: HKSV.characteristic.selectedCameraRecording, value: encodeRecordingSelection(chosen) }]);
    return chosen;
  }

  /** 209 read back (undefined when the accessory has none selected). */
  async readSelectedRecordingConfiguration(): Promise<RecordingSelection | undefined> {
    try {
      const value = await this.read(HKSV.service.recording, HKSV.characteristic.selectedCameraRecording);
      return typeof value === 'string' && value !== '' ? decodeRecordingSelection(value) : undefined;
    } catch (error) {
      if (error instanceof HapStatusError) return undefined;
      throw error;
    }
  }

  /**
   * Recording on or off as "Stream & Allow Recording" does: on writes HomeKitCameraActive,
   * EventSnapshotsActive and PeriodicSnapshotsActive (CameraOperatingMode) and Active
   * (CameraRecordingManagement) = 1 in one request; off writes Active = 0.
   */
  async setRecordingActive(on: boolean): Promise<void> {
    const { service: s, characteristic: c } = HKSV;
    const active = { service: s.recording, characteristic: c.active, value: on ? 1 : 0 };
    if (!on) {
      await this.write([active]);
      return;
    }
    await this.write([
      { service: s.operatingMode, characteristic: c.homeKitCameraActive, value: 1 },
      { service: s.operatingMode, characteristic: c.eventSnapshotsActive, value: 1 },
      { service: s.operatingMode, characteristic: c.periodicSnapshotsActive, value: 1 },
      active,
    ]);
  }

  /**
   * The Home app's four camera states: off (everything 0), detect (HomeKitCameraActive only),
   * stream (+ RTP Active), record (+ recording Active). RTP Active is written when the camera has it.
   */
  async setCameraMode(mode: CameraMode): Promise<void> {
    const { service: s, characteristic: c } = HKSV;
    const level = { off: 0, detect: 1, stream: 2, record: 3 }[mode];
    const writes = [{ service: s.operatingMode, characteristic: c.homeKitCameraActive, value: level >= 1 ? 1 : 0 }];
    if (this.has(s.rtp, c.active)) writes.push({ service: s.rtp, characteristic: c.active, value: level >= 2 ? 1 : 0 });
    writes.push({ service: s.recording, characteristic: c.active, value: level >= 3 ? 1 : 0 });
    await this.write(writes);
  }

  /** RecordingAudioActive (on CameraRecordingManagement), by timed write as it requires. */
  async setRecordingAudio(on: boolean): Promise<void> {
    await this.write([{ service: HKSV.service.recording, characteristic: HKSV.characteristic.recordingAudioActive, value: on ? 1 : 0 }], true);
  }

  /**
   * Subscribes to a characteristic (hap-controller's event session) and resolves with the first
   * value, current or evented, that `accept` takes.
   */
  async waitForValue(service: string, characteristic: string, accept: (value: unknown) => boolean, timeoutMs = 10_000): Promise<unknown> {
    const id = this.id(service, characteristic);
    const [aid, iid] = id.split('.').map(Number);
    return new Promise((resolve, reject) => {
      let done = false;
      const finish = (error: Error | undefined, value?: unknown) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        this.client.off('event', onEvent);
        if (error) reject(error);
        else resolve(value);
      };
      const timer = setTimeout(() => finish(new Error(`${id}: no accepted value within ${timeoutMs} ms`)), timeoutMs);
      const onEvent = (event: { characteristics?: Array<{ aid: unknown; iid: unknown; value: unknown }> }) => {
        for (const c of event.characteristics ?? []) {
          if (Number(c.aid) === aid && Number(c.iid) === iid && accept(c.value)) finish(undefined, c.value);
        }
      };
      this.client.on('event', onEvent);
      this.client
        .subscribeCharacteristics([id])
        .then(() => this.read(service, characteristic))
        .then((value) => {
          if (accept(value)) finish(undefined, value);
        })
        .catch((error: unknown) => finish(error instanceof Error ? error : new Error(String(error))));
    });
  }

  /** Resolves when the camera's motion sensor says `detected`. */
  async waitForMotion(detected = true, timeoutMs = 30_000): Promise<void> {
    await this.waitForValue(HKSV.service.motion, HKSV.characteristic.motionDetected, (v) => Boolean(v) === detected, timeoutMs);
  }

  /**
   * Opens a new HomeKit Data Stream: SetupDataStreamTransport (start session, HDS over TCP, our
   * salt) written with a write response on the persistent session, keys from that session's
   * pair-verify secret and both salts, a TCP connection to the port answered, `control`/`hello`.
   */
  async openDataStream(timeoutMs = 10_000): Promise<DataStream> {
    const connection = await this.connection();
    const secret = this.secrets.get(connection);
    if (!secret) throw new Error('no pair-verify secret for the persistent HAP session');
    const controllerSalt = randomBytes(32);
    const setup = encode(1, 0, 2, 0, 3, controllerSalt).toString('base64');
    const [answer] = await this.write([{ service: HKSV.service.dataStream, characteristic: HKSV.characteristic.setupDataStreamTransport, value: setup, response: true }]);
    if (typeof answer !== 'string') throw new Error(`SetupDataStreamTransport gave no write response (${JSON.stringify(answer)})`);
    const tlv = decodeWithLists(Buffer.from(answer, 'base64'));
    const status = oneByte(tlv, 1, 'status');
    if (status !== 0) throw new Error(`SetupDataStreamTransport answered status ${status}`);
    const port = uintLE(one(decodeWithLists(one(tlv, 2, 'session parameters')), 1, 'TCP listening port'));
    const accessorySalt = one(tlv, 3, 'accessory key salt');
    const stream = await DataStream.open(this.host, port, hdsKeys(secret, controllerSalt, accessorySalt), timeoutMs);
    this.dataStreams.push(stream);
    this.currentDataStream = stream;
    return stream;
  }

  /**
   * Opens a recording stream (`dataSend`/`open`, target controller, type ipcamera.recording) on
   * the current HDS connection (a new one when there is none open). A refused open throws
   * HdsRequestError with the accessory's reason.
   */
  async openRecording(options: RecordingOptions = {}): Promise<RecordingStream> {
    const timeoutMs = options.timeoutMs ?? 30_000;
    const dataStream = this.currentDataStream && !this.currentDataStream.isClosed ? this.currentDataStream : await this.openDataStream();
    const streamId = options.streamId ?? this.nextStreamId++;
    // Listening before the request: the first data events follow the response at once.
    const stream = new RecordingStream(dataStream, streamId, { autoAck: options.autoAck ?? true, timeoutMs });
    let response: HdsMessage;
    try {
      response = await dataStream.request('dataSend', 'open', { target: 'controller', type: 'ipcamera.recording', streamId, reason: options.reason ?? 'motion' }, timeoutMs);
    } catch (error) {
      stream.close(HdsReason.CANCELLED);
      throw error;
    }
    if (response.status !== HdsStatus.SUCCESS) {
      const reason = typeof response.message.status === 'number' ? response.message.status : undefined;
      // Not a stream: end it without telling the accessory.
      stream.finish({ by: 'accessory', reason });
      throw new HdsRequestError('dataSend.open', response.status ?? -1, reason);
    }
    return stream;
  }

  /** Removes our pairing from the accessory (it forgets this hub), then closes. */
  async unpair(): Promise<void> {
    await this.client.removePairing(this.pairing.iOSDevicePairingID);
    await this.close();
  }

  /** Closes every HDS connection and HAP session. */
  async close(): Promise<void> {
    await Promise.all(this.dataStreams.map((s) => s.close().catch(() => {})));
    await this.client.close().catch(() => {});
  }

  private async connection(): Promise<HttpConnection> {
    return (this.client as unknown as HttpClientInternals).getDefaultVerifiedConnection();
  }

  private db(): CameraDatabase {
    if (!this.database) throw new Error('the accessory database is not loaded');
    return this.database;
  }

  private has(service: string, characteristic: string): boolean {
    return this.db().services.get(service.toUpperCase())?.has(characteristic.toUpperCase()) ?? false;
  }

  private ref(service: string, characteristic: string): CharacteristicRef {
    const db = this.db();
    const found = service.toUpperCase() === HKSV.service.dataStream ? db.dataStream.get(characteristic.toUpperCase()) : db.services.get(service.toUpperCase())?.get(characteristic.toUpperCase());
    if (!found) throw new Error(`accessory ${db.aid} (${db.name}) has no characteristic ${characteristic} on service ${service}`);
    return found;
  }

  /** The first pair-verify (the persistent session) and the camera's iids. */
  private async load(): Promise<void> {
    const { accessories } = await this.client.getAccessories();
    const cameras = accessories.filter((a) => a.services.some((s) => s.type.toUpperCase() === HKSV.service.recording));
    const named = (a: (typeof accessories)[number]) => {
      const info = a.services.find((s) => s.type.toUpperCase() === HKSV.service.info);
      const name = info?.characteristics.find((c) => c.type?.toUpperCase() === HKSV.characteristic.name)?.value;
      return typeof name === 'string' ? name : '';
    };
    const wanted = this.options.camera;
    const accessory = wanted === undefined ? cameras[0] : cameras.find((a) => a.aid === wanted || named(a) === wanted);
    if (!accessory) throw new Error(`no HomeKit Secure Video camera ${wanted === undefined ? '' : `"${wanted}" `}among ${accessories.map((a) => `${String(a.aid)} ${named(a)}`).join(', ')}`);
    const services = new Map<string, Map<string, CharacteristicRef>>();
    const byIid = new Map<number, Map<string, CharacteristicRef>>();
    for (const service of accessory.services) {
      const characteristics = new Map<string, CharacteristicRef>();
      for (const c of service.characteristics) {
        if (c.type !== undefined && c.iid !== undefined) characteristics.set(c.type.toUpperCase(), { iid: c.iid, perms: c.perms ?? [] });
      }
      byIid.set(service.iid, characteristics);
      const type = service.type.toUpperCase();
      if (!services.has(type)) services.set(type, characteristics);
    }
    const recording = accessory.services.find((s) => s.type.toUpperCase() === HKSV.service.recording)!;
    const linked = (recording.linked ?? []).map((iid) => byIid.get(iid)).find((c) => c?.has(HKSV.characteristic.setupDataStreamTransport));
    this.database = { aid: accessory.aid, name: named(accessory), services, dataStream: linked ?? services.get(HKSV.service.dataStream) ?? new Map<string, CharacteristicRef>() };
  }
}
