// How many bytes a viewer's TCP connection still has on its way: sent into the kernel but not yet
// acknowledged by the viewer (Linux's tx_queue column of /proc/self/net/tcp and tcp6, read in
// this process's own network namespace). Node has no getsockopt for it, and the kernel's send
// buffer grows to megabytes: a viewer on a slow link would otherwise be handed frames seconds
// before it can receive them, and watch the past. The MJPEG writer asks before each frame.
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';

import ipaddr from 'ipaddr.js';

/** An address as both Node and the parser below name it: IPv4-mapped IPv6 as plain IPv4. */
function canonical(address: string): string {
  try {
    return ipaddr.process(address).toString();
  } catch {
    return address;
  }
}

/** The key of one connection: `local:port|remote:port`, addresses canonical. */
export function connectionKey(localAddress: string, localPort: number, remoteAddress: string, remotePort: number): string {
  return `${canonical(localAddress)}:${localPort}|${canonical(remoteAddress)}:${remotePort}`;
}

/** One /proc/net/tcp address (`0100007F:1FF5`, or 32 hex digits for tcp6) as [address, port]. */
export function parseProcAddress(text: string): [string, number] | undefined {
  const [hex, portHex] = text.split(':');
  if (!hex || !portHex) return undefined;
  const port = parseInt(portHex, 16);
  // The kernel prints each 32-bit word in host byte order (little-endian here): reverse each word's bytes.
  const words = hex.match(/.{8}/g);
  if (!words || (words.length !== 1 && words.length !== 4)) return undefined;
  const bytes: number[] = [];
  for (const word of words) {
    const value = parseInt(word, 16) >>> 0;
    bytes.push(value & 0xff, (value >>> 8) & 0xff, (value >>> 16) & 0xff, value >>> 24);
  }
  try {
    const address = ipaddr.fromByteArray(bytes);
    return [canonical(address.toString()), port];
  } catch {
    return undefined;
  }
}

/** Reads /proc/net/tcp text into `into`: connection key -> unacknowledged bytes (tx_queue). */
export function parseProcNetTcp(text: string, into: Map<string, number>): void {
  const lines = text.split('\n');
  for (let i = 1; i < lines.length; i++) {
    const fields = lines[i].trim().split(/\s+/);
    if (fields.length < 5) continue;
    const local = parseProcAddress(fields[1]);
    const remote = parseProcAddress(fields[2]);
    if (!local || !remote) continue;
    const txQueue = parseInt(fields[4].split(':')[0], 16);
    if (Number.isNaN(txQueue)) continue;
    into.set(`${local[0]}:${local[1]}|${remote[0]}:${remote[1]}`, txQueue);
  }
}

type ProbedSocket = Pick<Socket, 'localAddress' | 'localPort' | 'remoteAddress' | 'remotePort'>;

function keyOf(socket: ProbedSocket): string | undefined {
  const { localAddress, localPort, remoteAddress, remotePort } = socket;
  if (!localAddress || !localPort || !remoteAddress || !remotePort) return undefined;
  return connectionKey(localAddress, localPort, remoteAddress, remotePort);
}

export interface SendQueueProbeOptions {
  /** A reading is reused for this long, whoever asks (default 10 ms). */
  maxAgeMs?: number;
  /** Reads a /proc file (tests give their own text). */
  read?: (path: string) => string;
}

/** Unacknowledged bytes per connection, from one reading of /proc shared by every viewer. */
export class SendQueueProbe {
  private table = new Map<string, number>();
  /** Bytes written per connection since the last reading. */
  private readonly written = new Map<string, number>();
  private readAt = -Infinity;
  private readonly maxAgeMs: number;
  /** maxAgeMs, or longer when reading takes long. */
  private wait = 0;
  private readonly read: (path: string) => string;
  private available = true;

  constructor(options: SendQueueProbeOptions = {}) {
    this.maxAgeMs = options.maxAgeMs ?? 10;
    this.read = options.read ?? ((path) => readFileSync(path, 'latin1'));
  }

  /** False once /proc could not be read (not Linux): then nothing is gated. */
  get supported(): boolean {
    return this.available;
  }

  /**
   * The socket's unacknowledged bytes, or undefined when unknown (a unix socket, no /proc): the
   * last reading, plus what was written to it since (a reading a few ms old must not let a
   * second frame follow the first at once).
   */
  unacked(socket: ProbedSocket): number | undefined {
    const key = keyOf(socket);
    if (!this.available || !key) return undefined;
    this.refresh();
    const read = this.table.get(key);
    return read === undefined ? undefined : read + (this.written.get(key) ?? 0);
  }

  /** Counts `bytes` just written to `socket` until the next reading sees them. */
  noteWritten(socket: ProbedSocket, bytes: number): void {
    const key = keyOf(socket);
    if (!this.available || !key) return;
    this.written.set(key, (this.written.get(key) ?? 0) + bytes);
  }

  private refresh(): void {
    const now = performance.now();
    if (now - this.readAt < this.wait) return;
    this.readAt = now;
    const table = new Map<string, number>();
    let readAny = false;
    for (const path of ['/proc/self/net/tcp', '/proc/self/net/tcp6']) {
      try {
        parseProcNetTcp(this.read(path), table);
        readAny = true;
      } catch {
        // tcp6 is missing without IPv6; both missing is not Linux.
      }
    }
    if (!readAny) this.available = false;
    this.table = table;
    this.written.clear();
    // A table of thousands of connections (a flood) takes a while to read: read it less often,
    // so that reading costs at most about a tenth of a core whatever the table holds.
    this.wait = Math.max(this.maxAgeMs, (performance.now() - now) * 10);
  }
}

/**
 * Pure policy: may the next frame go to a viewer with `unacked` bytes still on the way? Yes while
 * fewer than `limit` are (about one small frame: the link stays busy, and what the viewer sees is
 * at most that much older than live); yes when unknown.
 */
export function mayQueueFrame(unacked: number | undefined, limit: number): boolean {
  return unacked === undefined || unacked < limit;
}
