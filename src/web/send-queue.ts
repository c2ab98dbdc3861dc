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
  // The first line is the column header.
  for (const line of text.split('\n').slice(1)) {
    // sl local_address rem_address st tx_queue:rx_queue ...
    const fields = line.trim().split(/\s+/);
    const localText = fields.at(1);
    const remoteText = fields.at(2);
    const queues = fields.at(4);
    if (localText === undefined || remoteText === undefined || queues === undefined) continue;
    const local = parseProcAddress(localText);
    const remote = parseProcAddress(remoteText);
    if (!local || !remote) continue;
    // tx_queue:rx_queue, hex; parseInt stops at the colon.
    const txQueue = parseInt(queues, 16);
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
  /** The clock, in milliseconds (tests give their own). */
  now?: () => number;
}

/** How much a stream may have on its way: `seconds` of the connection's measured rate, within bounds. */
export interface QueuePolicy {
  /** Until a rate is measured. */
  defaultBytes: number;
  minBytes: number;
  maxBytes: number;
  /** Of the measured delivery rate: enough to keep the link busy while the next frame comes. */
  seconds: number;
}

/** What the probe knows of one connection it was asked about. */
interface Tracked {
  /** Bytes noted as written since tracking began. */
  written: number;
  /** At the last reading: bytes acknowledged (written - unacked), unacknowledged, and when. */
  acked?: number;
  unacked?: number;
  at?: number;
  /** Delivery rate in bytes per millisecond, measured while the connection had data on its way. */
  rate?: number;
}

/** Pure policy: the limit for a connection delivering `rate` bytes/ms (undefined: not measured yet). */
export function queueLimit(rate: number | undefined, policy: QueuePolicy): number {
  if (rate === undefined || !Number.isFinite(rate)) return policy.defaultBytes;
  return Math.round(Math.min(policy.maxBytes, Math.max(policy.minBytes, rate * 1000 * policy.seconds)));
}

/**
 * Unacknowledged bytes per connection, from one reading of /proc shared by every viewer, and
 * each connection's delivery rate measured from successive readings. /proc is read only when a
 * connection might be over its limit: acknowledgements only ever shrink the queue, so an estimate
 * under the limit needs no new reading.
 */
export class SendQueueProbe {
  private table = new Map<string, number>();
  /** Bytes written per connection since the last reading. */
  private readonly written = new Map<string, number>();
  private readonly tracked = new Map<string, Tracked>();
  private readAt = -Infinity;
  private readonly maxAgeMs: number;
  /** maxAgeMs, or longer when reading takes long. */
  private wait = 0;
  private readonly read: (path: string) => string;
  private readonly now: () => number;
  private available = true;

  constructor(options: SendQueueProbeOptions = {}) {
    this.maxAgeMs = options.maxAgeMs ?? 10;
    this.read = options.read ?? ((path) => readFileSync(path, 'latin1'));
    this.now = options.now ?? (() => performance.now());
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
    this.track(key);
    this.refresh();
    return this.estimate(key);
  }

  /** Whether the next frame (or fragment) may go to `socket` now under `policy`; true when unknown. */
  mayQueue(socket: ProbedSocket, policy: QueuePolicy): boolean {
    const key = keyOf(socket);
    if (!this.available || !key) return true;
    this.track(key);
    const limit = () => queueLimit(this.tracked.get(key)?.rate, policy);
    const known = this.estimate(key);
    if (known !== undefined && known < limit()) return true;
    this.refresh();
    return mayQueueFrame(this.estimate(key), limit());
  }

  /** The delivery rate measured for `socket`, bytes per second (undefined until measured). */
  rate(socket: ProbedSocket): number | undefined {
    const key = keyOf(socket);
    const rate = key ? this.tracked.get(key)?.rate : undefined;
    return rate === undefined ? undefined : rate * 1000;
  }

  /** Counts `bytes` just written to `socket` until the next reading sees them. */
  noteWritten(socket: ProbedSocket, bytes: number): void {
    const key = keyOf(socket);
    if (!this.available || !key) return;
    this.written.set(key, (this.written.get(key) ?? 0) + bytes);
    this.track(key).written += bytes;
  }

  private track(key: string): Tracked {
    let tracked = this.tracked.get(key);
    if (!tracked) {
      tracked = { written: 0 };
      this.tracked.set(key, tracked);
    }
    return tracked;
  }

  private estimate(key: string): number | undefined {
    const read = this.table.get(key);
    return read === undefined ? undefined : read + (this.written.get(key) ?? 0);
  }

  private refresh(): void {
    const now = this.now();
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
    for (const [key, tracked] of this.tracked) {
      const unacked = table.get(key);
      if (unacked === undefined) {
        this.tracked.delete(key); // the connection is gone
        continue;
      }
      const acked = tracked.written - unacked;
      // A sample counts only while data was waiting all along: an idle link says nothing of its speed.
      if (tracked.acked !== undefined && tracked.at !== undefined && (tracked.unacked ?? 0) > 0 && unacked > 0 && now > tracked.at) {
        const sample = Math.max(0, acked - tracked.acked) / (now - tracked.at);
        tracked.rate = tracked.rate === undefined ? sample : tracked.rate * 0.7 + sample * 0.3;
      }
      tracked.acked = acked;
      tracked.unacked = unacked;
      tracked.at = now;
    }
    // The kernel walks its whole connection table for each reading (about 2 ms here): read at most
    // often enough that it costs about a fifth of a core while viewers are held back.
    this.wait = Math.max(this.maxAgeMs, (this.now() - now) * 4);
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
