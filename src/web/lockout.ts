// Brute-force protection: an address that fails to log in too often within a window is refused
// (429) for a while, whatever it sends. Only checks that fail count; but checks still in flight
// are held against the budget, so a burst of parallel guesses cannot all be checked before the
// first failure is counted. (Correct logins never get here twice: the verifier remembers them and
// runs identical checks once, see auth.ts.) IPv6 clients are counted
// by their /64 (one household, one attacker's block). Pure bookkeeping with an injectable clock.
import ipaddr from 'ipaddr.js';

export interface LockoutOptions {
  /** Failed logins within `windowMs` that lock an address out; 0 turns the lockout off. */
  maxFailures: number;
  windowMs: number;
  /** How long a locked-out address is refused. */
  lockMs: number;
  /** Addresses tracked at most, so an attack from many addresses cannot grow memory. */
  maxAddresses?: number;
}

interface Entry {
  failures: number[];
  lockedUntil: number;
  /** Password checks started and not finished yet. */
  inFlight: number;
}

/** What the lockout counts: the address itself for IPv4, its /64 for IPv6. */
export function lockoutKey(address: string): string {
  if (!ipaddr.isValid(address)) return address;
  const parsed = ipaddr.process(address);
  if (parsed.kind() === 'ipv4') return parsed.toString();
  const parts = (parsed as ipaddr.IPv6).parts.slice(0, 4);
  return `${parts.map((p) => p.toString(16)).join(':')}::/64`;
}

export class LoginLockout {
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly options: LockoutOptions) {}

  get enabled(): boolean {
    return this.options.maxFailures > 0;
  }

  /** Milliseconds the address stays locked out; 0 when it may try. */
  lockedFor(address: string, now = Date.now()): number {
    const entry = this.entries.get(lockoutKey(address));
    return entry && entry.lockedUntil > now ? entry.lockedUntil - now : 0;
  }

  /**
   * Before a password check: false when the address is locked out, or when its recent failures
   * and the checks it already has in flight reach the limit (then it must wait). Every true must
   * be followed by `finish`.
   */
  begin(address: string, now = Date.now()): boolean {
    if (!this.enabled) return true;
    const entry = this.entry(address, now);
    entry.failures = entry.failures.filter((at) => now - at < this.options.windowMs);
    if (entry.lockedUntil > now || entry.failures.length + entry.inFlight >= this.options.maxFailures) return false;
    entry.inFlight++;
    return true;
  }

  /**
   * After a password check `begin` allowed: `ok` forgets the address's failures, `failed` counts
   * one (and answers the lockout length when it started one), `aborted` (the check never ran,
   * e.g. the server was too busy) counts nothing.
   */
  finish(address: string, outcome: 'ok' | 'failed' | 'aborted', now = Date.now()): number {
    if (!this.enabled) return 0;
    const entry = this.entries.get(lockoutKey(address));
    if (entry && entry.inFlight > 0) entry.inFlight--;
    if (outcome === 'ok') {
      this.succeed(address, now);
      return 0;
    }
    return outcome === 'failed' ? this.fail(address, now) : 0;
  }

  /** Records a failed login; returns the lockout length when this failure started one, else 0. */
  fail(address: string, now = Date.now()): number {
    if (!this.enabled) return 0;
    const entry = this.entry(address, now);
    entry.failures = entry.failures.filter((at) => now - at < this.options.windowMs);
    entry.failures.push(now);
    if (entry.failures.length < this.options.maxFailures || entry.lockedUntil > now) return 0;
    entry.failures = [];
    entry.lockedUntil = now + this.options.lockMs;
    return this.options.lockMs;
  }

  /** A successful login forgets the address's failures. */
  succeed(address: string, now = Date.now()): void {
    const key = lockoutKey(address);
    const entry = this.entries.get(key);
    if (entry && entry.lockedUntil <= now && entry.inFlight === 0) this.entries.delete(key);
  }

  private entry(address: string, now: number): Entry {
    const key = lockoutKey(address);
    let entry = this.entries.get(key);
    if (!entry) {
      this.makeRoom(now);
      entry = { failures: [], lockedUntil: 0, inFlight: 0 };
      this.entries.set(key, entry);
    }
    return entry;
  }

  /** Forgets what no longer matters; a locked-out address is forgotten only past a hard limit. */
  private makeRoom(now: number): void {
    const max = this.options.maxAddresses ?? 10_000;
    if (this.entries.size < max) return;
    for (const [key, entry] of this.entries) {
      const stale = entry.lockedUntil <= now && entry.inFlight === 0 && entry.failures.every((at) => now - at >= this.options.windowMs);
      if (stale) this.entries.delete(key);
    }
    if (this.entries.size < max) return;
    // Still full: forget the oldest address that is not locked out, rather than grow.
    for (const [key, entry] of this.entries) {
      if (entry.lockedUntil <= now && entry.inFlight === 0) {
        this.entries.delete(key);
        return;
      }
    }
    // Everything is locked out: a hard limit of ten times the size, oldest first.
    if (this.entries.size >= max * 10) this.entries.delete(this.entries.keys().next().value as string);
  }
}
