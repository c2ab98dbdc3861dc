// Keeps one client from using up the server's file descriptors (issue 11.3). Every accepted TCP
// (or TLS) connection is tracked with its peer address and whether a request on it has passed
// authentication:
//  - a connection with no request in progress (never sent complete headers, a TLS handshake that
//    never finished, keep-alive between requests) is closed after IDLE_MS, whatever Node's own
//    timeouts do (Node 20 never times out a connection that has not sent a byte);
//  - an address (an IPv6 /64) may hold PER_ADDRESS connections that have not logged in; more are
//    destroyed at once, and the log says so at most once a minute per address;
//  - all connections together stay under half the process's open-files limit (read from
//    /proc/self/limits at start): at that cap the oldest idle connection that has not logged in is
//    closed to make room, so a flood cannot lock out /healthz or a logged-in viewer elsewhere.
// Logged-in connections are never closed by the guard while a request runs on them (live streams).
// The decisions are small pure functions below; the class does the bookkeeping.
import { readFileSync } from 'node:fs';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { Socket } from 'node:net';

import ipaddr from 'ipaddr.js';

import type { Log } from '../log';

/** A connection with no request in progress is closed after this long. */
export const IDLE_MS = 10_000;
/** Connections that have not logged in, per address, at most (fewer when the fd limit is low). */
export const PER_ADDRESS = 256;
/** All connections together, at most (fewer when the fd limit is low): bounds memory too. */
export const MAX_TOTAL = 4096;
/** When the open-files limit cannot be read (not Linux). */
export const DEFAULT_MAX_OPEN_FILES = 1024;
/** Refusals are logged at most this often per address. */
export const LOG_EVERY_MS = 60_000;
/** At most this many refusal lines a minute in all (a flood from many addresses). */
const LOG_LINES_PER_MINUTE = 10;

export interface ConnectionLimits {
  /** All open connections at most. */
  total: number;
  /** Connections from one address that have not logged in, at most. */
  perAddress: number;
  /** A connection with no request in progress is closed after this long. */
  idleMs: number;
}

/**
 * The soft "Max open files" limit from /proc/self/limits text (Node has no getrlimit; it raises
 * the soft limit to the hard one at start, so this is what the process really has).
 */
export function parseMaxOpenFiles(limits: string): number | undefined {
  const match = /^Max open files\s+(\S+)/m.exec(limits);
  if (!match) return undefined;
  if (match[1] === 'unlimited') return Number.POSITIVE_INFINITY;
  const value = Number(match[1]);
  return Number.isInteger(value) && value > 0 ? value : undefined;
}

/** This process's open-files limit, or DEFAULT_MAX_OPEN_FILES when it cannot be read. */
export function readMaxOpenFiles(file = '/proc/self/limits'): number {
  try {
    return parseMaxOpenFiles(readFileSync(file, 'utf8')) ?? DEFAULT_MAX_OPEN_FILES;
  } catch {
    return DEFAULT_MAX_OPEN_FILES;
  }
}

/**
 * Limits for a process that may open `maxOpenFiles` files: connections take at most half of them
 * (the rest is for ffmpeg pipes, files, HomeKit and, under Homebridge, the other plugins), and one
 * address at most a quarter of that, so a single address never fills the table.
 */
export function connectionLimits(maxOpenFiles: number): ConnectionLimits {
  const total = Math.max(16, Math.min(MAX_TOTAL, Math.floor(maxOpenFiles / 2)));
  return { total, perAddress: Math.min(PER_ADDRESS, Math.max(1, Math.floor(total / 4))), idleMs: IDLE_MS };
}

/**
 * Whom a connection is counted against: its IPv4 address (IPv4-mapped IPv6 counts as IPv4), or
 * its IPv6 /64 (one host usually has a whole /64). Undefined for a unix socket (no peer address).
 */
export function addressGroup(address: string | undefined): string | undefined {
  if (!address) return undefined;
  if (!ipaddr.isValid(address)) return address;
  const ip = ipaddr.process(address);
  if (ip.kind() === 'ipv4') return ip.toString();
  const parts = (ip as ipaddr.IPv6).parts.slice(0, 4);
  return `${new ipaddr.IPv6([...parts, 0, 0, 0, 0]).toString()}/64`;
}

export type Admission =
  /** Keep it. */
  | 'accept'
  /** Its address already holds `perAddress` connections that have not logged in. */
  | 'refuse-address'
  /** The table is full: close the oldest idle connection that has not logged in, then keep it. */
  | 'make-room'
  /** The table is full of logged-in or busy connections: nothing may be closed for it. */
  | 'refuse-full';

/** What to do with a connection just accepted. */
export function admission(
  state: {
    /** Connections open now (not counting this one). */
    open: number;
    /** Connections from its address that have not logged in (not counting this one). */
    fromAddress: number;
    /** Not counted per address (the unix socket, the trusted proxy). */
    exempt: boolean;
    /** Some open connection is idle and has not logged in. */
    idleUnauthenticated: boolean;
  },
  limits: ConnectionLimits,
): Admission {
  if (!state.exempt && state.fromAddress >= limits.perAddress) return 'refuse-address';
  if (state.open < limits.total) return 'accept';
  return state.idleUnauthenticated ? 'make-room' : 'refuse-full';
}

/** Whether the guard closes a connection now: nothing in progress on it for `idleMs`. */
export function isExpired(connection: { active: number; idleSince: number }, now: number, limits: ConnectionLimits): boolean {
  return connection.active === 0 && now - connection.idleSince >= limits.idleMs;
}

interface Tracked {
  raw: Socket;
  /** The TLS socket over `raw` (HTTPS), once its handshake is done. */
  tls?: Socket;
  /** addressGroup() of the peer; undefined on a unix socket. */
  group?: string;
  /** Not counted per address. */
  exempt: boolean;
  authenticated: boolean;
  /** Requests in progress (headers received, response not finished). */
  active: number;
  /** Since when nothing has been in progress (accept time, or the last response's end). */
  idleSince: number;
}

export interface ConnectionGuardOptions {
  log: Log;
  limits: ConnectionLimits;
  /**
   * Peers not limited per address: the unix socket (no address) always; the local proxy when
   * `trustProxy` is set (all its clients share its address; it has limits of its own).
   */
  exempt?: (address: string | undefined) => boolean;
  /** How often idle connections are looked for (default 1 s). */
  sweepMs?: number;
}

interface RefusalLog {
  lastLogged: number;
  refused: number;
}

/** The bookkeeping: attach to the HTTP(S) server before it listens. */
export class ConnectionGuard {
  /** Every open connection, oldest first. */
  private readonly open = new Set<Tracked>();
  private readonly bySocket = new WeakMap<Socket, Tracked>();
  /** Connections that have not logged in, per address group (exempt ones not counted). */
  private readonly unauthenticated = new Map<string, number>();
  private readonly refusals = new Map<string, RefusalLog>();
  private linesThisMinute = 0;
  private minuteStarted = 0;
  private fullLoggedAt = Number.NEGATIVE_INFINITY;
  private timer?: NodeJS.Timeout;
  private readonly exempt: (address: string | undefined) => boolean;

  constructor(private readonly options: ConnectionGuardOptions) {
    this.exempt = options.exempt ?? ((address) => !address);
  }

  get limits(): ConnectionLimits {
    return this.options.limits;
  }

  /** Counts for tests and diagnostics. */
  stats(): { open: number; unauthenticated: number; idle: number } {
    let unauthenticated = 0;
    let idle = 0;
    for (const c of this.open) {
      if (!c.authenticated) unauthenticated++;
      if (c.active === 0) idle++;
    }
    return { open: this.open.size, unauthenticated, idle };
  }

  attach(server: Server): void {
    // For HTTPS this is the raw TCP socket, before the handshake ('secureConnection' follows).
    server.on('connection', (socket: Socket) => this.onConnection(socket));
    server.on('secureConnection', (socket: Socket) => this.onSecureConnection(socket));
    server.on('request', (request: IncomingMessage, response: ServerResponse) => {
      const tracked = this.find(request.socket);
      if (!tracked) return;
      tracked.active++;
      response.once('close', () => {
        tracked.active--;
        if (tracked.active === 0) tracked.idleSince = Date.now();
      });
    });
    server.once('listening', () => this.start());
    server.once('close', () => this.stop());
  }

  /** A request on this socket passed authentication: the connection no longer counts as a stranger's. */
  markAuthenticated(socket: Socket): void {
    const tracked = this.find(socket);
    if (!tracked || tracked.authenticated) return;
    tracked.authenticated = true;
    this.uncount(tracked);
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.sweep(), this.options.sweepMs ?? 1000);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Closes every connection idle for too long; forgets old log entries. */
  sweep(now = Date.now()): void {
    for (const tracked of this.open) {
      if (isExpired(tracked, now, this.limits)) this.close(tracked);
    }
    for (const [group, entry] of this.refusals) {
      if (now - entry.lastLogged >= LOG_EVERY_MS) {
        if (entry.refused > 0) this.logRefusals(group, entry, now);
        else this.refusals.delete(group);
      }
    }
  }

  private find(socket: Socket): Tracked | undefined {
    return this.bySocket.get(socket);
  }

  private onConnection(socket: Socket): void {
    const address = socket.remoteAddress;
    const group = addressGroup(address);
    const exempt = group === undefined || this.exempt(address);
    // exempt is true whenever group is undefined (the unix socket), so below, not exempt means a group.
    const fromAddress = exempt ? 0 : (this.unauthenticated.get(group) ?? 0);
    const victim = this.open.size >= this.limits.total ? this.oldestIdleUnauthenticated() : undefined;
    const decision = admission({ open: this.open.size, fromAddress, exempt, idleUnauthenticated: victim !== undefined }, this.limits);
    if (decision === 'refuse-address' || decision === 'refuse-full') {
      socket.destroy();
      this.noteRefusal(group ?? 'the unix socket', decision);
      return;
    }
    if (decision === 'make-room' && victim) {
      this.close(victim);
      this.noteFull(`closing the oldest idle connections that have not logged in (from ${victim.group ?? 'the unix socket'}) to make room`);
    }
    const tracked: Tracked = { raw: socket, group, exempt, authenticated: false, active: 0, idleSince: Date.now() };
    this.open.add(tracked);
    this.bySocket.set(socket, tracked);
    if (!exempt) this.unauthenticated.set(group, fromAddress + 1);
    socket.once('close', () => this.forget(tracked));
  }

  private onSecureConnection(socket: Socket): void {
    // The TLS socket wraps the raw one Node handed to 'connection'.
    const parent = (socket as Socket & { _parent?: unknown })._parent;
    let tracked = parent instanceof Socket ? this.bySocket.get(parent) : undefined;
    if (!tracked) {
      for (const c of this.open) {
        if (!c.tls && c.raw.remoteAddress === socket.remoteAddress && c.raw.remotePort === socket.remotePort && c.raw.localPort === socket.localPort) {
          tracked = c;
          break;
        }
      }
    }
    if (!tracked) return;
    tracked.tls = socket;
    this.bySocket.set(socket, tracked);
    socket.once('close', () => this.forget(tracked));
  }

  private oldestIdleUnauthenticated(): Tracked | undefined {
    for (const c of this.open) if (!c.authenticated && c.active === 0) return c;
    return undefined;
  }

  private close(tracked: Tracked): void {
    tracked.tls?.destroy();
    tracked.raw.destroy();
    this.forget(tracked);
  }

  private forget(tracked: Tracked): void {
    if (!this.open.delete(tracked)) return;
    if (!tracked.authenticated) this.uncount(tracked);
  }

  private uncount(tracked: Tracked): void {
    if (tracked.exempt || tracked.group === undefined) return;
    const left = (this.unauthenticated.get(tracked.group) ?? 1) - 1;
    if (left > 0) this.unauthenticated.set(tracked.group, left);
    else this.unauthenticated.delete(tracked.group);
  }

  private noteRefusal(group: string, decision: Admission): void {
    if (decision === 'refuse-full') {
      this.noteFull(`refusing new connections (from ${group} now): every open one is logged in or busy`);
      return;
    }
    const now = Date.now();
    const entry = this.refusals.get(group);
    if (!entry) {
      const first: RefusalLog = { lastLogged: Number.NEGATIVE_INFINITY, refused: 1 };
      this.refusals.set(group, first);
      this.logRefusals(group, first, now);
      return;
    }
    entry.refused++;
    if (now - entry.lastLogged >= LOG_EVERY_MS) this.logRefusals(group, entry, now);
  }

  private logRefusals(group: string, entry: RefusalLog, now: number): void {
    if (now - this.minuteStarted >= 60_000) {
      this.minuteStarted = now;
      this.linesThisMinute = 0;
    }
    const first = !Number.isFinite(entry.lastLogged);
    entry.lastLogged = now;
    const refused = entry.refused;
    entry.refused = 0;
    this.linesThisMinute++;
    if (this.linesThisMinute > LOG_LINES_PER_MINUTE) return;
    this.options.log.warn(
      `Refusing connections from ${group}: it already has ${this.limits.perAddress} open that have not logged in ` +
        `(the limit per address); ${refused} refused ${first ? 'so far' : 'in the last minute'}.` +
        (this.linesThisMinute === LOG_LINES_PER_MINUTE ? ' Other addresses refused this minute are not logged.' : ''),
    );
  }

  private noteFull(what: string): void {
    const now = Date.now();
    if (now - this.fullLoggedAt < LOG_EVERY_MS) return;
    this.fullLoggedAt = now;
    this.options.log.warn(`Too many connections open (${this.open.size}, the limit for this process's open files): ${what}.`);
  }
}
