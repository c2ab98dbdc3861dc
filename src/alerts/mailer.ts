// The alert queue: admits an alert (cooldown per key, cap per hour), keeps at most a few waiting,
// and sends them one at a time in the background, retrying with backoff what may succeed later
// (throttling, network) until a retry window closes. Submitting never blocks and never throws:
// streaming goes on whatever the mail service does.
import type { Log } from '../log';
import { backoffDelay } from '../util/backoff';
import { whenAborted } from '../util/lifetime';
import type { Alert } from './messages';
import type { SendHistory } from './policy';
import { admit } from './policy';
import type { Sender } from './transport';
import { SendError } from './transport';

export interface MailerOptions {
  sender: Sender;
  log: Log;
  cooldownMs: number;
  maxPerHour: number;
  /** Alerts waiting at most; the oldest is dropped (and logged) beyond it. Default 20. */
  maxQueue?: number;
  /** First retry delay, doubling up to `retryMaxMs`. Defaults 5 s and 2 min. */
  retryInitialMs?: number;
  retryMaxMs?: number;
  /** How long an alert keeps being retried. Default 30 min. */
  retryWindowMs?: number;
}

export type SubmitResult = 'queued' | 'cooldown' | 'cap';

interface Pending {
  alert: Alert;
  firstTriedAt?: number;
  attempts: number;
}

export class AlertMailer {
  private readonly history: SendHistory = { lastByKey: new Map(), admitted: [] };
  private readonly queue: Pending[] = [];
  private sending = false;
  private retryTimer?: NodeJS.Timeout;
  /** Aborted by close() (shutting down): the queue is dropped, the sender closed. */
  private readonly lifetime = new AbortController();
  private idleWaiters: Array<() => void> = [];

  constructor(private readonly options: MailerOptions) {
    void whenAborted(this.lifetime.signal, () => {
      clearTimeout(this.retryTimer);
      if (this.queue.length > 0) this.options.log.warn(`${this.queue.length} alert(s) not sent: shutting down.`);
      this.queue.length = 0;
      this.options.sender.close();
      this.wakeIdle();
    });
  }

  /** Until close(); pump() reads it again after each send it awaits, as close() may run meanwhile. */
  private get open(): boolean {
    return !this.lifetime.signal.aborted;
  }

  /** Queues an alert unless its cooldown or the hourly cap holds it back. */
  submit(alert: Alert): SubmitResult {
    if (!this.open) return 'cap';
    const { log } = this.options;
    const admission = admit(this.history, alert.key, Date.now(), this.options.cooldownMs, this.options.maxPerHour);
    if (admission === 'cooldown') {
      log.debug(`Alert "${alert.subject}" held back: within its cooldown.`);
      return admission;
    }
    if (admission === 'cap') {
      log.warn(`Alert "${alert.subject}" not sent: ${this.options.maxPerHour} alerts went out in the last hour ("alerts.maxPerHour").`);
      return admission;
    }
    const max = this.options.maxQueue ?? 20;
    if (this.queue.length >= max) {
      // The oldest that is not being sent right now.
      for (const dropped of this.queue.splice(this.sending ? 1 : 0, 1)) {
        log.warn(`Alert queue full: dropped "${dropped.alert.subject}" (the mail service has been failing for a while).`);
      }
    }
    this.queue.push({ alert, attempts: 0 });
    void this.pump();
    return 'queued';
  }

  /** Resolves once nothing is waiting or being sent (alert-test waits for its answer). */
  idle(): Promise<void> {
    if (!this.sending && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  close(): void {
    this.lifetime.abort();
  }

  private async pump(): Promise<void> {
    if (this.sending || this.retryTimer || this.lifetime.signal.aborted) return;
    this.sending = true;
    const { sender, log } = this.options;
    while (this.open) {
      const pending = this.queue.at(0);
      if (!pending) break;
      pending.attempts++;
      pending.firstTriedAt ??= Date.now();
      try {
        const id = await sender.send(pending.alert);
        this.remove(pending);
        log.info(`Alert sent through ${sender.name}: "${pending.alert.subject}" (message id ${id}).`);
      } catch (error) {
        const failure = error instanceof SendError ? error : new SendError(error instanceof Error ? error.message : String(error), false, { cause: error });
        const waited = Date.now() - pending.firstTriedAt;
        const delay = backoffDelay(pending.attempts, this.options.retryInitialMs ?? 5_000, this.options.retryMaxMs ?? 120_000);
        if (failure.retryable && waited + delay <= (this.options.retryWindowMs ?? 30 * 60_000)) {
          log.warn(`Alert "${pending.alert.subject}" not sent yet: ${failure.message} Next try in ${Math.round(delay / 1000)} s.`);
          this.sending = false;
          this.retryTimer = setTimeout(() => {
            this.retryTimer = undefined;
            void this.pump();
          }, delay);
          this.retryTimer.unref();
          return;
        }
        this.remove(pending);
        log.error(`Alert "${pending.alert.subject}" not sent: ${failure.message}`);
      }
    }
    this.sending = false;
    this.wakeIdle();
  }

  private remove(pending: Pending): void {
    const at = this.queue.indexOf(pending);
    if (at >= 0) this.queue.splice(at, 1);
  }

  private wakeIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const wake of waiters) wake();
  }
}
