// Pure rules that keep alerts useful: a cooldown per alert key, a cap per hour, and counting
// failed logins per address within a window. (Retry delays: util/backoff.ts.)

export interface SendHistory {
  /** When each key was last admitted. */
  lastByKey: Map<string, number>;
  /** When alerts were admitted, oldest first (only the last hour matters). */
  admitted: number[];
}

export type Admission = 'ok' | 'cooldown' | 'cap';

/** Whether an alert with `key` may go out at `now`; records it when it may. */
export function admit(history: SendHistory, key: string, now: number, cooldownMs: number, maxPerHour: number): Admission {
  const last = history.lastByKey.get(key);
  if (last !== undefined && now - last < cooldownMs) return 'cooldown';
  while (history.admitted.length > 0 && now - history.admitted[0] >= 3_600_000) history.admitted.shift();
  if (history.admitted.length >= maxPerHour) return 'cap';
  history.lastByKey.set(key, now);
  history.admitted.push(now);
  // Forget keys whose cooldown is long over, so the map stays small.
  for (const [k, at] of history.lastByKey) if (now - at >= Math.max(cooldownMs, 3_600_000)) history.lastByKey.delete(k);
  return 'ok';
}

export interface FailureBurst {
  address: string;
  count: number;
  /** The distinct user names tried (at most 5 kept). */
  users: string[];
}

/**
 * Failed logins per address within a sliding window. `record` answers a burst once the address
 * reaches the threshold; its count starts over then, so a long attack gives one alert per
 * threshold reached (and the mailer's cooldown spaces those out).
 */
export class FailureWindow {
  private readonly byAddress = new Map<string, Array<{ at: number; user?: string }>>();

  constructor(
    private readonly threshold: number,
    private readonly windowMs: number,
    /** Addresses tracked at most (an attack from many addresses cannot grow memory). */
    private readonly maxAddresses = 10_000,
  ) {}

  record(address: string, user: string | undefined, now: number): FailureBurst | undefined {
    if (this.threshold <= 0) return undefined;
    if (!this.byAddress.has(address)) {
      if (this.byAddress.size >= this.maxAddresses) this.prune(now);
      if (this.byAddress.size >= this.maxAddresses) this.byAddress.delete(this.byAddress.keys().next().value as string);
    }
    const attempts = (this.byAddress.get(address) ?? []).filter((a) => now - a.at < this.windowMs);
    attempts.push({ at: now, user: user?.slice(0, 64) });
    if (attempts.length < this.threshold) {
      this.byAddress.set(address, attempts);
      return undefined;
    }
    this.byAddress.delete(address);
    const users = [...new Set(attempts.map((a) => a.user).filter((u): u is string => Boolean(u)))].slice(0, 5);
    return { address, count: attempts.length, users };
  }

  private prune(now: number): void {
    for (const [address, attempts] of this.byAddress) {
      if (attempts.every((a) => now - a.at >= this.windowMs)) this.byAddress.delete(address);
    }
  }
}
