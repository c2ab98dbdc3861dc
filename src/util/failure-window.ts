// The one per-address failure window: failed logins counted per address within a sliding window,
// for a bounded number of addresses (an attack from many addresses cannot grow memory). The web
// server's lockout (web/lockout.ts) and the failed-login alert (alerts/policy.ts) both count with
// it; each adds its own state to an address's entry (a lockout, checks in flight) and its rule.
// Pure bookkeeping with an injectable clock.

export interface Failure {
  at: number;
  /** The user name tried, when the caller keeps it. */
  user?: string;
}

export interface FailureEntry<S> {
  /** Failures within the window, oldest first (older ones are dropped whenever the entry is read). */
  failures: Failure[];
  /** What the caller keeps beside the failures. */
  state: S;
}

export interface FailureWindowOptions<S> {
  windowMs: number;
  /** Addresses tracked at most (default 10 000). */
  maxAddresses?: number;
  /** What is counted for an address (default the address itself; the lockout counts IPv6 by /64). */
  keyOf?: (address: string) => string;
  /** The state of a new entry. */
  initial: () => S;
  /** An entry that must not be forgotten to make room (an address locked out, checks in flight). */
  pinned?: (state: S, now: number) => boolean;
}

export class PerAddressFailures<S = undefined> {
  private readonly entries = new Map<string, FailureEntry<S>>();

  constructor(private readonly options: FailureWindowOptions<S>) {}

  /** How many addresses are tracked now. */
  get size(): number {
    return this.entries.size;
  }

  /** The address's entry as it is, if it has one. */
  peek(address: string): FailureEntry<S> | undefined {
    return this.entries.get(this.keyOf(address));
  }

  /** The address's entry with failures older than the window dropped; a new one (room made first) when it has none. */
  entry(address: string, now: number): FailureEntry<S> {
    const key = this.keyOf(address);
    let entry = this.entries.get(key);
    if (!entry) {
      this.makeRoom(now);
      entry = { failures: [], state: this.options.initial() };
      this.entries.set(key, entry);
    }
    entry.failures = entry.failures.filter((failure) => now - failure.at < this.options.windowMs);
    return entry;
  }

  /** Counts a failure of `address` at `now`; answers its entry, this failure included. */
  add(address: string, now: number, user?: string): FailureEntry<S> {
    const entry = this.entry(address, now);
    entry.failures.push(user === undefined ? { at: now } : { at: now, user });
    return entry;
  }

  forget(address: string): void {
    this.entries.delete(this.keyOf(address));
  }

  private keyOf(address: string): string {
    return this.options.keyOf ? this.options.keyOf(address) : address;
  }

  /**
   * Below the limit, nothing. At it: forgets addresses with no failure left in the window, then
   * the oldest address that is not pinned; when every address is pinned, the oldest goes only
   * past ten times the limit.
   */
  private makeRoom(now: number): void {
    const max = this.options.maxAddresses ?? 10_000;
    if (this.entries.size < max) return;
    const pinned = (entry: FailureEntry<S>) => this.options.pinned?.(entry.state, now) ?? false;
    for (const [key, entry] of this.entries) {
      if (!pinned(entry) && entry.failures.every((failure) => now - failure.at >= this.options.windowMs)) this.entries.delete(key);
    }
    if (this.entries.size < max) return;
    for (const [key, entry] of this.entries) {
      if (!pinned(entry)) {
        this.entries.delete(key);
        return;
      }
    }
    if (this.entries.size >= max * 10) {
      const oldest = this.entries.keys().next();
      if (!oldest.done) this.entries.delete(oldest.value);
    }
  }
}
