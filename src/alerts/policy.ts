// Pure rules that keep alerts useful: a cooldown per alert key, a cap per hour, and counting
// failed logins per address within a window. (Retry delays: util/backoff.ts.)
import { PerAddressFailures } from '../util/failure-window';

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
  const fresh = history.admitted.findIndex((at) => now - at < 3_600_000);
  history.admitted.splice(0, fresh === -1 ? history.admitted.length : fresh);
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
 * Failed logins per address within a sliding window (util/failure-window.ts). `record` answers a
 * burst once the address reaches the threshold; its count starts over then, so a long attack
 * gives one alert per threshold reached (and the mailer's cooldown spaces those out).
 */
export class FailureWindow {
  private readonly window: PerAddressFailures;

  constructor(
    private readonly threshold: number,
    windowMs: number,
    /** Addresses tracked at most (an attack from many addresses cannot grow memory). */
    maxAddresses = 10_000,
  ) {
    this.window = new PerAddressFailures({ windowMs, maxAddresses, initial: () => undefined });
  }

  record(address: string, user: string | undefined, now: number): FailureBurst | undefined {
    if (this.threshold <= 0) return undefined;
    const { failures } = this.window.add(address, now, user?.slice(0, 64));
    if (failures.length < this.threshold) return undefined;
    this.window.forget(address);
    const users = [...new Set(failures.map((f) => f.user).filter((u): u is string => Boolean(u)))].slice(0, 5);
    return { address, count: failures.length, users };
  }
}
