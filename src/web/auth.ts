// Who may see the cameras: HTTP basic auth against the users file (bcrypt), with
//  - the users file re-read when it changes, so a user added with the CLI can log in at once;
//  - the same bcrypt work for an unknown user as for a wrong password (no user enumeration by timing);
//  - verified credentials remembered briefly under a SHA-256 key (never the password itself), so a
//    page that makes several requests pays for one bcrypt; identical credentials arriving together
//    share one check (50 viewers starting at once cost one bcrypt), and neither a remembered login
//    nor a shared check touches the lockout or the bcrypt queue;
//  - optional trusted networks that skip the check (flask-cam's LAN bypass), off by default;
//  - an address that keeps failing is locked out for a while (429 with Retry-After).
import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';

import basicAuth from '@fastify/basic-auth';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import ipaddr from 'ipaddr.js';

import type { Log } from '../log';
import { allowedHostSet, hostOf, isAllowedHost } from './allowed-hosts';
import type { LoginLockout } from './lockout';
import { carriesToken, isSnapshotRequest } from './preview-token';
import { AUTH_REALM } from '../settings';
import type { Users } from '../users/users-file';
import { BCRYPT_COST, checkPassword, hashCost, hashPassword, readUsersFile } from '../users/users-file';

/** The users file, reloaded when its size, mtime or inode changes (checked at most every `checkMs`). */
export class UsersStore {
  private users: Users = new Map();
  private _typicalCost = BCRYPT_COST;
  private signature = '';
  private failedSignature = '';
  private checkedAt = 0;
  private loading?: Promise<void>;

  constructor(
    readonly path: string,
    private readonly log: Log,
    private readonly checkMs = 250,
  ) {}

  /** The bcrypt hash of `name`, from the file as it is now. */
  async lookup(name: string): Promise<string | undefined> {
    await this.refresh();
    return this.users.get(name);
  }

  /** The most common cost factor in the file, so the dummy check costs what a real one does. */
  get typicalCost(): number {
    return this._typicalCost;
  }

  refresh(force = false): Promise<void> {
    if (!force && Date.now() - this.checkedAt < this.checkMs) return this.loading ?? Promise.resolve();
    this.loading ??= this.reload().finally(() => {
      this.loading = undefined;
    });
    return this.loading;
  }

  private async reload(): Promise<void> {
    this.checkedAt = Date.now();
    let signature: string;
    try {
      const stat = await fs.stat(this.path);
      signature = `${stat.ino}:${stat.size}:${stat.mtimeMs}`;
    } catch {
      signature = 'missing';
    }
    if (signature === this.signature) return;
    try {
      const { users, problems } = await readUsersFile(this.path);
      const hadUsers = this.users.size > 0;
      // A users file that vanished or went bad must not lock everyone out: keep the last good list.
      if (hadUsers && signature === 'missing') {
        if (this.failedSignature !== signature) {
          this.log.error(`The users file ${this.path} is gone; keeping the ${this.users.size} user(s) loaded before. Restore it, or add users with: webcam-server passwd -a -u NAME -f ${this.path}`);
        }
        this.failedSignature = signature;
        return;
      }
      if (hadUsers && problems.length > 0) {
        if (this.failedSignature !== signature) {
          this.log.error(`The users file ${this.path} has unreadable lines (${problems.slice(0, 3).join('; ')}); keeping the ${this.users.size} user(s) loaded before until it is fixed.`);
        }
        this.failedSignature = signature;
        return;
      }
      for (const problem of problems) this.log.warn(`Users file: ${problem} (that line is ignored).`);
      if (signature !== 'missing' && this.signature !== '') this.log.info(`Users file changed: ${users.size} user(s).`);
      this.users = users;
      this._typicalCost = mostCommonCost(users);
      this.signature = signature;
      this.failedSignature = '';
    } catch (error) {
      // Keep the users we had: a half-written or unreadable file must not lock everyone out.
      // Said once per change of the file, not on every request.
      if (this.failedSignature !== signature) this.log.error(`${(error as Error).message}; keeping the previous user list.`);
      this.failedSignature = signature;
    }
  }
}

function mostCommonCost(users: Users): number {
  const counts = new Map<number, number>();
  for (const hash of users.values()) counts.set(hashCost(hash), (counts.get(hashCost(hash)) ?? 0) + 1);
  let best = 0;
  let cost = BCRYPT_COST;
  for (const [c, n] of counts) if (n > best) [best, cost] = [n, c];
  return cost;
}

export interface VerifierOptions {
  /** How long a verified user/password pair is remembered (default 5 minutes). */
  cacheTtlMs?: number;
  /** At most this many remembered pairs (default 1000). */
  cacheMax?: number;
  /** The bcrypt comparison (tests count its calls). */
  check?: (password: string, hash: string) => Promise<boolean>;
  /** bcrypt checks running at once (each takes a libuv thread for ~1 s on a Pi); default 2. */
  maxConcurrent?: number;
  /** Checks waiting beyond those; more are refused with 503 (default 32). */
  maxWaiting?: number;
}

/** Too many password checks at once: try again in a moment (503). */
export class AuthBusyError extends Error {
  readonly statusCode = 503;
  readonly expose = true;
  readonly code = 'AUTH_BUSY';
  constructor() {
    super('Too many logins are being checked right now; try again in a few seconds.');
    this.name = 'AuthBusyError';
  }
}

/** How long to wait, rounded up to what the message says, so Retry-After and the words agree. */
export function retryWait(ms: number): { seconds: number; words: string } {
  const seconds = Math.max(1, Math.ceil(ms / 1000));
  if (seconds < 90) return { seconds, words: `${seconds} second${seconds === 1 ? '' : 's'}` };
  const minutes = Math.ceil(seconds / 60);
  return { seconds: minutes * 60, words: `${minutes} minutes` };
}

/** A refusal answered with 429 and a Retry-After that matches its message. */
export class RetryLaterError extends Error {
  readonly statusCode = 429;
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
  ) {
    super(message);
    this.name = 'RetryLaterError';
  }
}

/** An address with too many failed logins. */
export class TooManyLoginsError extends RetryLaterError {
  constructor(waitMs: number) {
    const wait = retryWait(waitMs);
    super(`Too many failed logins from your address. Try again in ${wait.words}.`, wait.seconds);
    this.name = 'TooManyLoginsError';
  }
}

/** An address with as many different logins being checked at once as its failure budget allows (nothing failed). */
export class TooManyChecksError extends RetryLaterError {
  constructor(waitMs = 2_000) {
    const wait = retryWait(waitMs);
    super(`Too many different logins from your address are being checked at once. Try again in ${wait.words}.`, wait.seconds);
    this.name = 'TooManyChecksError';
  }
}

/** A trusted-network request without credentials under a host name not allowed (DNS rebinding). */
export class HostNotAllowedError extends Error {
  readonly statusCode = 403;
  readonly expose = true;
  readonly code = 'HOST_NOT_ALLOWED';
  constructor(host: string) {
    super(
      `This server does not answer to "${host}" without a password. If that name is yours, add it to "web.allowedHosts" in the config (Settings › Web server › Allowed host names), or log in.`,
    );
    this.name = 'HostNotAllowedError';
  }
}

/** Lets an address start one password check (throws a RetryLaterError when it may not) and hears how it ended. */
export interface CheckGate {
  begin(): void;
  finish(outcome: 'ok' | 'failed' | 'aborted'): void;
}

export interface Verdict {
  ok: boolean;
  /** True when this call ran the bcrypt check itself (not remembered, not shared with an identical one). */
  checked: boolean;
}

/** Checks a user name and password in (near) constant time with respect to which part was wrong. */
export class CredentialVerifier {
  private readonly cache = new Map<string, number>();
  private readonly dummies = new Map<number, Promise<string>>();
  private readonly ttl: number;
  private readonly max: number;
  private readonly salt = randomBytes(16);
  private readonly compare: (password: string, hash: string) => Promise<boolean>;
  /** Checks running now, by cache key: an identical login arriving meanwhile waits for the same answer. */
  private readonly flights = new Map<string, Promise<boolean>>();
  private running = 0;
  private readonly waiting: Array<() => void> = [];
  private readonly maxConcurrent: number;
  private readonly maxWaiting: number;

  constructor(
    private readonly store: UsersStore,
    options: VerifierOptions = {},
  ) {
    this.ttl = options.cacheTtlMs ?? 5 * 60_000;
    this.max = options.cacheMax ?? 1000;
    this.compare = options.check ?? checkPassword;
    this.maxConcurrent = options.maxConcurrent ?? 2;
    this.maxWaiting = options.maxWaiting ?? 32;
  }

  /** Runs one bcrypt check when a slot is free, so a burst of guesses cannot take every thread. */
  private async limited(password: string, hash: string): Promise<boolean> {
    if (this.running >= this.maxConcurrent) {
      if (this.waiting.length >= this.maxWaiting) throw new AuthBusyError();
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    } else {
      this.running++;
    }
    try {
      return await this.compare(password, hash);
    } finally {
      const next = this.waiting.shift();
      // A waiting check takes over this slot; otherwise the slot is free.
      if (next) next();
      else this.running--;
    }
  }

  async verify(user: string, password: string, gate?: CheckGate): Promise<boolean> {
    return (await this.check(user, password, gate)).ok;
  }

  /**
   * Checks a login: a remembered one answers at once; an identical one already being checked
   * shares that check; only a new check passes `gate` (the lockout) and waits for a bcrypt slot.
   */
  async check(user: string, password: string, gate?: CheckGate): Promise<Verdict> {
    const hash = await this.store.lookup(user);
    // The key covers the stored hash, so a changed password or a deleted user invalidates it.
    const key = createHash('sha256')
      .update(this.salt)
      .update(`${user}\0${password}\0${hash ?? ''}`)
      .digest('base64');
    const expires = this.cache.get(key);
    if (hash && expires !== undefined) {
      if (expires > Date.now()) return { ok: true, checked: false };
      this.cache.delete(key);
    }
    const shared = this.flights.get(key);
    if (shared) return { ok: await shared, checked: false };

    gate?.begin();
    const flight = this.run(password, hash, key, gate);
    this.flights.set(key, flight);
    try {
      return { ok: await flight, checked: true };
    } finally {
      this.flights.delete(key);
    }
  }

  private async run(password: string, hash: string | undefined, key: string, gate?: CheckGate): Promise<boolean> {
    let outcome: 'ok' | 'failed' | 'aborted' = 'aborted';
    try {
      // An unknown user is checked against a dummy hash of the usual cost: same time as a wrong password.
      const ok = (await this.limited(password, hash ?? (await this.dummyHash(this.store.typicalCost)))) && hash !== undefined;
      outcome = ok ? 'ok' : 'failed';
      if (ok) {
        if (this.cache.size >= this.max) this.cache.delete(this.cache.keys().next().value as string);
        this.cache.set(key, Date.now() + this.ttl);
      }
      return ok;
    } finally {
      gate?.finish(outcome);
    }
  }

  private dummyHash(cost: number): Promise<string> {
    let dummy = this.dummies.get(cost);
    if (!dummy) {
      dummy = hashPassword(randomBytes(18).toString('base64'), cost);
      this.dummies.set(cost, dummy);
    }
    return dummy;
  }
}

/** Parses `trustedNetworks` entries; throws naming the bad entry. */
export function parseNetworks(entries: string[]): Array<[ipaddr.IPv4 | ipaddr.IPv6, number]> {
  return entries.map((entry): [ipaddr.IPv4 | ipaddr.IPv6, number] => {
    try {
      if (entry.includes('/')) return ipaddr.parseCIDR(entry);
      const address = ipaddr.parse(entry);
      return [address, address.kind() === 'ipv4' ? 32 : 128];
    } catch {
      throw new Error(`"web.trustedNetworks" entry "${entry}" is not an IP address or CIDR range (e.g. 192.168.1.0/24).`);
    }
  });
}

/** A request URL's path: everything before the first `?`. */
export function urlPath(url: string): string {
  const query = url.indexOf('?');
  return query === -1 ? url : url.slice(0, query);
}

/** True when `ip` falls in one of the networks (IPv4-mapped IPv6 addresses count as IPv4). */
export function inNetworks(ip: string | undefined, networks: Array<[ipaddr.IPv4 | ipaddr.IPv6, number]>): boolean {
  if (!ip || networks.length === 0 || !ipaddr.isValid(ip)) return false;
  const address = ipaddr.process(ip);
  return networks.some(([range, bits]) => address.kind() === range.kind() && address.match(range, bits));
}

export interface AuthOptions {
  store: UsersStore;
  trustedNetworks: string[];
  /** Paths answered without credentials. */
  publicPaths: string[];
  log: Log;
  /** Told of every failed login (the alerts count them per address). */
  onFailure?: (event: { ip: string; user?: string; url: string }) => void;
  /** Brute-force protection; none when absent. */
  lockout?: LoginLockout;
  /** The Homebridge UI's preview secret: opens snapshots (GET) and nothing else. */
  previewToken?: string;
  /** Host names (besides IP addresses and the machine's own names) a trusted-network request may carry. */
  allowedHosts?: string[];
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The authenticated user, or undefined for a trusted network or a public path. */
    user?: string;
  }
}

async function auth(app: FastifyInstance, options: AuthOptions): Promise<void> {
  const verifier = new CredentialVerifier(options.store);
  const networks = parseNetworks(options.trustedNetworks);
  const publicPaths = new Set(options.publicPaths);
  const allowedHosts = allowedHostSet(options.allowedHosts ?? []);
  const refusedHosts = new Set<string>();

  await app.register(basicAuth, {
    authenticate: { realm: AUTH_REALM },
    async validate(user: string, password: string, request: FastifyRequest) {
      const { lockout } = options;
      const ip = request.ip;
      // Only a new check asks the lockout: parallel guesses are held to the address's budget
      // before the first failure lands; logins already verified or being verified never are.
      const gate: CheckGate | undefined = lockout && {
        begin: () => {
          if (lockout.begin(ip)) return;
          const locked = lockout.lockedFor(ip);
          throw locked > 0 ? new TooManyLoginsError(locked) : new TooManyChecksError();
        },
        finish: (outcome) => {
          const locked = lockout.finish(ip, outcome);
          if (locked > 0) options.log.warn(`Too many failed logins from ${ip}: refusing it for ${Math.round(locked / 60_000)} min.`);
        },
      };
      const { ok, checked } = await verifier.check(user, password, gate);
      if (ok) {
        request.user = user;
        return;
      }
      // Said once per check, not once per request that shared it.
      if (checked) {
        options.log.warn(`Failed login for user "${user.slice(0, 64)}" from ${ip}.`);
        options.onFailure?.({ ip, user, url: request.url });
      }
      throw new Error('Unauthorized');
    },
  });

  app.addHook('onRequest', (request, reply, done) => {
    const path = urlPath(request.url);
    if (publicPaths.has(path)) {
      done();
      return;
    }
    if (inNetworks(request.ip, networks)) {
      if (isAllowedHost(request.headers.host, allowedHosts)) {
        done();
        return;
      }
      // A trusted address asking under a foreign name: a page that rebound its own name to this
      // server. With credentials it is an ordinary login; without, it is refused.
      if (!request.headers.authorization) {
        const host = hostOf(request.headers.host).slice(0, 253);
        if (!refusedHosts.has(host) && refusedHosts.size < 100) {
          refusedHosts.add(host);
          options.log.warn(
            `Refused a request from the trusted network (${request.ip}) for the host name "${host}": without a password, only IP addresses and this machine's names are answered. If that name is yours, add it to "web.allowedHosts".`,
          );
        }
        done(new HostNotAllowedError(host));
        return;
      }
    }
    if (options.previewToken && isSnapshotRequest(request.method, path) && carriesToken(request.headers.authorization, options.previewToken)) {
      done();
      return;
    }
    const wait = options.lockout?.lockedFor(request.ip) ?? 0;
    if (wait > 0) {
      done(new TooManyLoginsError(wait));
      return;
    }
    app.basicAuth(request, reply, done);
  });
}

export const authPlugin = fp(auth, { name: 'webcam-auth', dependencies: [] });
