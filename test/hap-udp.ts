// What the Home app's side needs in both the HomeKit tests and the HomeKit benchmark: HAP's
// short UUIDs in full, the UDP ports a stream receiver binds on 127.0.0.1, and the SRTCP
// receiver reports the Home app sends back while it watches.
import { createCipheriv, createHmac } from 'node:crypto';
import { createSocket } from 'node:dgram';
import type { Socket } from 'node:dgram';
import { readFileSync } from 'node:fs';

/** `'110'` -> `00000110-0000-1000-8000-0026BB765291`; full UUIDs pass through (upper case). */
export const hapUuid = (type: string): string => (type.includes('-') ? type : `${type.padStart(8, '0')}-0000-1000-8000-0026BB765291`).toUpperCase();

/** A UDP socket bound on 127.0.0.1 (`port` 0: any free one). */
export function bindUdp(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = createSocket('udp4');
    socket.once('error', reject);
    socket.bind(port, '127.0.0.1', () => {
      socket.off('error', reject);
      resolve(socket);
    });
  });
}

/**
 * An even UDP port whose neighbour is free too (ffmpeg's RTP receiver takes port and port + 1),
 * chosen at random below the kernel's ephemeral range (32768 and up): a port the kernel hands
 * out for `bind(0)` (the accessory's own sockets, in another process) could be taken between this
 * check and the receiver's bind.
 */
export async function freeUdpPair(): Promise<number> {
  for (;;) {
    const port = 20_000 + 2 * Math.floor(Math.random() * 6_000);
    const a = await bindUdp(port).catch(() => undefined);
    if (!a) continue;
    const b = await bindUdp(port + 1).catch(() => undefined);
    a.close();
    if (b) {
      b.close();
      return port;
    }
  }
}

/** True once something has bound UDP `port` on this machine. */
export function udpBound(port: number): boolean {
  const hex = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  return ['/proc/net/udp', '/proc/net/udp6'].some((table) =>
    readFileSync(table, 'utf8')
      .split('\n')
      .some((line) => line.trim().split(/\s+/)[1]?.endsWith(hex)),
  );
}

/** RFC 3711 4.3.1: a session key from an SRTP master key and salt (AES-CM PRF, key derivation rate 0). */
function deriveKey(masterKey: Buffer, masterSalt: Buffer, label: number, length: number): Buffer {
  const iv = Buffer.alloc(16);
  masterSalt.copy(iv, 0, 0, 14);
  iv.writeUInt8(iv.readUInt8(7) ^ label, 7); // key_id = label || 48-bit index 0, XORed into the 112-bit salt
  const cipher = createCipheriv('aes-128-ctr', masterKey, iv);
  return Buffer.concat([cipher.update(Buffer.alloc(length)), cipher.final()]);
}

/**
 * The Home app's RTCP as it sends it back to the accessory: receiver reports, protected as SRTCP
 * (AES_CM_128_HMAC_SHA1_80, RFC 3711) with a master key and salt (30 bytes).
 */
export class SrtcpSender {
  private readonly encryptionKey: Buffer;
  private readonly authKey: Buffer;
  private readonly salt: Buffer;
  /** The SRTCP index of the next packet (31 bits). */
  private index = 0;

  constructor(
    keyAndSalt: Buffer,
    /** Our own SSRC, as the sender of the reports. */
    readonly ssrc: number,
  ) {
    const masterKey = keyAndSalt.subarray(0, 16);
    const masterSalt = keyAndSalt.subarray(16, 30);
    this.encryptionKey = deriveKey(masterKey, masterSalt, 0x03, 16);
    this.authKey = deriveKey(masterKey, masterSalt, 0x04, 20);
    this.salt = deriveKey(masterKey, masterSalt, 0x05, 14);
  }

  /** One receiver report (RTCP type 201), with a report block about `source` when given, as SRTCP. */
  receiverReport(source?: { ssrc: number; highestSeq: number }): Buffer {
    const rtcp = Buffer.alloc(source ? 32 : 8);
    rtcp[0] = 0x80 | (source ? 1 : 0); // version 2, report count
    rtcp[1] = 201;
    rtcp.writeUInt16BE(rtcp.length / 4 - 1, 2);
    rtcp.writeUInt32BE(this.ssrc >>> 0, 4);
    if (source) {
      rtcp.writeUInt32BE(source.ssrc >>> 0, 8);
      // fraction lost and cumulative lost 0; extended highest sequence number; jitter, LSR, DLSR 0
      rtcp.writeUInt32BE(source.highestSeq >>> 0, 16);
    }
    const index = this.index;
    this.index = (this.index + 1) & 0x7fffffff;
    // IV = (salt * 2^16) XOR (SSRC * 2^64) XOR (SRTCP index * 2^16)
    const iv = Buffer.alloc(16);
    this.salt.copy(iv, 0);
    iv.writeUInt32BE((iv.readUInt32BE(4) ^ this.ssrc) >>> 0, 4);
    iv.writeUInt32BE((iv.readUInt32BE(10) ^ index) >>> 0, 10);
    const cipher = createCipheriv('aes-128-ctr', this.encryptionKey, iv);
    const encrypted = Buffer.concat([cipher.update(rtcp.subarray(8)), cipher.final()]);
    const trailer = Buffer.alloc(4);
    trailer.writeUInt32BE((0x80000000 | index) >>> 0); // E flag: encrypted
    const authenticated = Buffer.concat([rtcp.subarray(0, 8), encrypted, trailer]);
    const tag = createHmac('sha1', this.authKey).update(authenticated).digest().subarray(0, 10);
    return Buffer.concat([authenticated, tag]);
  }
}
