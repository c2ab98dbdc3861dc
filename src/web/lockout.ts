// Brute-force protection: an address that fails to log in too often within a window is refused
// (429) for a while, whatever it sends. Only checks that fail count; but checks still in flight
// are held against the budget, so a burst of parallel guesses cannot all be checked before the
// first failure is counted. (Correct logins never get here twice: the verifier remembers them and
// runs identical checks once, see auth.ts.) IPv6 clients are counted
// by their /64 (one household, one attacker's block). The counting is util/failure-window.ts's;
// pure bookkeeping with an injectable clock.
import ipaddr from 'ipaddr.js';

import { PerAddressFailures } from '../util/failure-window';

export interface LockoutOptions {
  /** Failed logins within `windowMs` that lock an address out; 0 turns the lockout off. */
  maxFailures: number;
  windowMs: number;
  /** How long a locked-out address is refused. */
  lockMs: number;
  /** Addresses tracked at most, so an attack from many addresses cannot grow memory. */
  maxAddresses?: number;
}

interface LockState {
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
  private readonly window: PerAddressFailures<LockState>;

  constructor(private readonly options: LockoutOptions) {
    this.window = new PerAddressFailures<LockState>({
      windowMs: options.windowMs,
      maxAddresses: options.maxAddresses,
      keyOf: lockoutKey,
      initial: () => ({ lockedUntil: 0, inFlight: 0 }),
      // A locked-out address is forgotten only past a hard limit; one with checks in flight never.
      pinned: (state, now) => state.lockedUntil > now || state.inFlight > 0,
    });
  }

  get enabled(): boolean {
    return this.options.maxFailures > 0;
  }

  /** How many addresses (IPv6: /64s) are tracked now. */
  get trackedAddresses(): number {
    return this.window.size;
  }

  /** Milliseconds the address stays locked out; 0 when it may try. */
  lockedFor(address: string, now = Date.now()): number {
    const state = this.window.peek(address)?.state;
    return state && state.lockedUntil > now ? state.lockedUntil - now : 0;
  }

  /**
   * Before a password check: false when the address is locked out, or when its recent failures
   * and the checks it already has in flight reach the limit (then it must wait). Every true must
   * be followed by `finish`.
   */
  begin(address: string, now = Date.now()): boolean {
    if (!this.enabled) return true;
    const { failures, state } = this.window.entry(address, now);
    if (state.lockedUntil > now || failures.length + state.inFlight >= this.options.maxFailures) return false;
    state.inFlight++;
    return true;
  }

  /**
   * After a password check `begin` allowed: `ok` forgets the address's failures, `failed` counts
   * one (and answers the lockout length when it started one), `aborted` (the check never ran,
   * e.g. the server was too busy) counts nothing.
   */
  finish(address: string, outcome: 'ok' | 'failed' | 'aborted', now = Date.now()): number {
    if (!this.enabled) return 0;
    const state = this.window.peek(address)?.state;
    if (state && state.inFlight > 0) state.inFlight--;
    if (outcome === 'ok') {
      this.succeed(address, now);
      return 0;
    }
    return outcome === 'failed' ? this.fail(address, now) : 0;
  }

  /** Records a failed login; returns the lockout length when this failure started one, else 0. */
  fail(address: string, now = Date.now()): number {
    if (!this.enabled) return 0;
    const entry = this.window.add(address, now);
    if (entry.failures.length < this.options.maxFailures || entry.state.lockedUntil > now) return 0;
    entry.failures = [];
    entry.state.lockedUntil = now + this.options.lockMs;
    return this.options.lockMs;
  }

  /** A successful login forgets the address's failures. */
  succeed(address: string, now = Date.now()): void {
    const state = this.window.peek(address)?.state;
    if (state && state.lockedUntil <= now && state.inFlight === 0) this.window.forget(address);
  }
}
