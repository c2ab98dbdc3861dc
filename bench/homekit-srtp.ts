// The HomeKit benchmark's packet-level receiver: decrypts SRTP (AES_CM_128_HMAC_SHA1_80, RFC 3711,
// with the master key and salt the accessory answered in SetupEndpoints), checks each
// packet's authentication tag, and follows the H.264 RTP payload (RFC 6184: single NAL units,
// STAP-A, FU-A) to tell when the first *decodable* frame has arrived whole: SPS and PPS seen, and
// the last packet (marker bit) of an access unit that holds an IDR slice. No decoder is involved,
// so the time measured is when the bytes were there, not when some decoder got round to them.
import { createCipheriv, createHmac } from 'node:crypto';

const AUTH_TAG_BYTES = 10;

/** RFC 3711 4.3.1 key derivation with the AES-CM PRF (key derivation rate 0, index 0). */
function deriveKey(masterKey: Buffer, masterSalt: Buffer, label: number, length: number): Buffer {
  const iv = Buffer.alloc(16);
  masterSalt.copy(iv, 0, 0, 14);
  // key_id = label || 48-bit index (0): the label lands on byte 7 of the 112-bit salt.
  iv.writeUInt8(iv.readUInt8(7) ^ label, 7);
  const cipher = createCipheriv('aes-128-ctr', masterKey, iv);
  return Buffer.concat([cipher.update(Buffer.alloc(length)), cipher.final()]);
}

export interface RtpPacket {
  payloadType: number;
  marker: boolean;
  seq: number;
  timestamp: number;
  ssrc: number;
  /** Decrypted payload. */
  payload: Buffer;
}

/** Decrypts and authenticates one sender's SRTP packets (RTP only; RTCP is told apart by the caller). */
export class SrtpDecryptor {
  private readonly sessionKey: Buffer;
  private readonly authKey: Buffer;
  private readonly sessionSalt: Buffer;
  private roc = 0;
  private lastSeq = -1;
  /** Packets whose tag did not verify (a wrong key, or corruption). */
  badTags = 0;

  constructor(keyAndSalt: Buffer) {
    const masterKey = keyAndSalt.subarray(0, 16);
    const masterSalt = keyAndSalt.subarray(16, 30);
    this.sessionKey = deriveKey(masterKey, masterSalt, 0, 16);
    this.authKey = deriveKey(masterKey, masterSalt, 1, 20);
    this.sessionSalt = deriveKey(masterKey, masterSalt, 2, 14);
  }

  /** The packet decrypted, or undefined when it is too short or its tag is wrong. */
  decrypt(packet: Buffer): RtpPacket | undefined {
    if (packet.length < 12 + AUTH_TAG_BYTES) return undefined;
    const first = packet.readUInt8(0);
    if (first >> 6 !== 2) return undefined;
    const csrcs = first & 0x0f;
    let headerLength = 12 + 4 * csrcs;
    if (first & 0x10) headerLength += 4 + 4 * packet.readUInt16BE(headerLength + 2);
    if (packet.length < headerLength + AUTH_TAG_BYTES) return undefined;
    const seq = packet.readUInt16BE(2);
    const ssrc = packet.readUInt32BE(8);
    // The rollover counter: good enough for in-order loopback delivery.
    let roc = this.roc;
    if (this.lastSeq >= 0 && seq < 0x1000 && this.lastSeq > 0xf000) roc = this.roc + 1;

    const authenticated = packet.subarray(0, packet.length - AUTH_TAG_BYTES);
    const rocBytes = Buffer.alloc(4);
    rocBytes.writeUInt32BE(roc >>> 0);
    const tag = createHmac('sha1', this.authKey).update(authenticated).update(rocBytes).digest().subarray(0, AUTH_TAG_BYTES);
    if (!tag.equals(packet.subarray(packet.length - AUTH_TAG_BYTES))) {
      this.badTags++;
      return undefined;
    }
    if (roc !== this.roc) this.roc = roc;
    this.lastSeq = seq;

    // IV = (salt * 2^16) XOR (SSRC * 2^64) XOR (index * 2^16), index = ROC * 2^16 + SEQ.
    const iv = Buffer.alloc(16);
    this.sessionSalt.copy(iv, 0);
    iv.writeUInt32BE((iv.readUInt32BE(4) ^ ssrc) >>> 0, 4);
    iv.writeUInt32BE((iv.readUInt32BE(8) ^ roc) >>> 0, 8);
    iv.writeUInt16BE(iv.readUInt16BE(12) ^ seq, 12);
    const decipher = createCipheriv('aes-128-ctr', this.sessionKey, iv);
    const encrypted = authenticated.subarray(headerLength);
    const payload = Buffer.concat([decipher.update(encrypted), decipher.final()]);
    const second = packet.readUInt8(1);
    return { payloadType: second & 0x7f, marker: (second & 0x80) !== 0, seq, timestamp: packet.readUInt32BE(4), ssrc, payload };
  }
}

/** True for RTCP (payload types 200..204 where RTP's marker bit and payload type sit). */
export function isRtcp(packet: Buffer): boolean {
  if (packet.length < 2) return false;
  const type = packet.readUInt8(1);
  return type >= 200 && type <= 204;
}

/** NAL unit types in one H.264 RTP payload (the type of a FU-A's fragment only on its start). */
export function nalTypes(payload: Buffer): number[] {
  if (payload.length === 0) return [];
  const type = payload.readUInt8(0) & 0x1f;
  if (type >= 1 && type <= 23) return [type];
  if (type === 24) {
    // STAP-A: [size(2) NAL]...
    const types: number[] = [];
    for (let at = 1; at + 2 < payload.length; ) {
      const size = payload.readUInt16BE(at);
      if (size === 0 || at + 2 + size > payload.length) break;
      types.push(payload.readUInt8(at + 2) & 0x1f);
      at += 2 + size;
    }
    return types;
  }
  if (type === 28 && payload.length >= 2) {
    // FU-A: the fragment's own type is in the FU header; count it once, on the start fragment.
    const header = payload.readUInt8(1);
    return header & 0x80 ? [header & 0x1f] : [];
  }
  return [];
}

/**
 * Follows one H.264 RTP stream: answers true for the packet that completes the first access unit
 * a decoder starting from nothing can decode (parameter sets seen, the unit holds an IDR slice).
 */
export class FirstFrameTracker {
  private sps = false;
  private pps = false;
  private idrInUnit = false;
  private unitTimestamp = -1;
  done = false;
  /** NAL types seen before the first decodable frame, in order (for the report's sanity check). */
  readonly seen: number[] = [];

  push(packet: RtpPacket): boolean {
    if (this.done) return false;
    if (packet.timestamp !== this.unitTimestamp) {
      this.unitTimestamp = packet.timestamp;
      this.idrInUnit = false;
    }
    for (const type of nalTypes(packet.payload)) {
      if (this.seen.length < 32) this.seen.push(type);
      if (type === 7) this.sps = true;
      else if (type === 8) this.pps = true;
      else if (type === 5) this.idrInUnit = true;
    }
    if (packet.marker && this.idrInUnit && this.sps && this.pps) {
      this.done = true;
      return true;
    }
    return false;
  }
}
