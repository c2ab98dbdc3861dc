// Brute-force protection: an address that fails to log in too often within a window is refused
// (429) for a while, whatever it sends. Pure bookkeeping with an injectable clock; the auth plugin
// asks it before checking a password and tells it about each failure.

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
}

export class LoginLockout {
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly options: LockoutOptions) {}

  get enabled(): boolean {
    return this.options.maxFailures > 0;
  }

  /** Milliseconds the address stays locked out; 0 when it may try. */
  lockedFor(address: string, now = Date.now()): number {
    const entry = this.entries.get(address);
    return entry && entry.lockedUntil > now ? entry.lockedUntil - now : 0;
  }

  /** Records a failed login; returns the lockout length when this failure started one, else 0. */
  fail(address: string, now = Date.now()): number {
    if (!this.enabled) return 0;
    let entry = this.entries.get(address);
    if (!entry) {
      this.makeRoom(now);
      entry = { failures: [], lockedUntil: 0 };
      this.entries.set(address, entry);
    }
    entry.failures = entry.failures.filter((at) => now - at < this.options.windowMs);
    entry.failures.push(now);
    if (entry.failures.length < this.options.maxFailures || entry.lockedUntil > now) return 0;
    entry.failures = [];
    entry.lockedUntil = now + this.options.lockMs;
    return this.options.lockMs;
  }

  /** A successful login forgets the address's failures. */
  succeed(address: string, now = Date.now()): void {
    const entry = this.entries.get(address);
    if (entry && entry.lockedUntil <= now) this.entries.delete(address);
  }

  private makeRoom(now: number): void {
    const max = this.options.maxAddresses ?? 10_000;
    if (this.entries.size < max) return;
    for (const [address, entry] of this.entries) {
      const stale = entry.lockedUntil <= now && entry.failures.every((at) => now - at >= this.options.windowMs);
      if (stale) this.entries.delete(address);
    }
    // Still full: forget the oldest entry rather than grow.
    if (this.entries.size >= max) this.entries.delete(this.entries.keys().next().value as string);
  }
}
