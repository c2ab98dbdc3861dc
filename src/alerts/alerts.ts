// Email alerts for a running server: listens to the runtime's events (motion, a camera going
// offline and coming back, failed logins) and watches the public IP, turning each into an alert
// for the mailer. `sendTestAlert` is `webcam-server alert-test` and the Homebridge UI's button.
import type { EventEmitter } from 'node:events';
import { join } from 'node:path';

import type { CameraConfig } from '../config';
import type { Log } from '../log';
import type { MotionEvent } from '../media/motion';
import type { AlertsConfig } from './config';
import { AlertMailer } from './mailer';
import type { AlertContext } from './messages';
import { failedLoginsAlert, motionAlert, offlineAlert, onlineAlert, publicIpAlert, testAlert } from './messages';
import { FailureWindow } from './policy';
import { PublicIpWatcher } from './public-ip';
import type { Sender } from './transport';
import { SesSender, SmtpSender } from './transport';

/** What alerts listen to (the runtime's event bus). */
export interface AlertEvents {
  motion: [camera: CameraConfig, event: MotionEvent];
  offline: [camera: CameraConfig, reason: string];
  online: [camera: CameraConfig];
  'login-failed': [event: { ip: string; user?: string; url: string }];
}

export interface AlertServiceOptions {
  config: AlertsConfig;
  events: EventEmitter<AlertEvents>;
  log: Log;
  siteName: string;
  /** Where the last public IP is kept. */
  stateDir: string;
  /** Test hooks: the mailer's retry timing. */
  retryInitialMs?: number;
  retryWindowMs?: number;
}

/** The configured way to send: SES when set, else SMTP. */
export function createSender(config: AlertsConfig): Sender {
  if (config.ses) return new SesSender(config.ses);
  if (config.smtp) return new SmtpSender(config.smtp);
  throw new Error('No way to send alerts is configured: set "alerts.ses" (or "alerts.smtp").');
}

export class AlertService {
  readonly mailer: AlertMailer;
  readonly publicIp?: PublicIpWatcher;
  private readonly failures: FailureWindow;
  /** Cameras offline now: since when, the pending debounce, and whether the offline alert went out. */
  private readonly down = new Map<string, { since: number; timer?: NodeJS.Timeout; alerted: boolean }>();
  private readonly listeners: Array<() => void> = [];

  constructor(private readonly options: AlertServiceOptions) {
    const { config, log } = options;
    const sender = createSender(config);
    this.mailer = new AlertMailer({
      sender,
      log,
      cooldownMs: config.cooldownSeconds * 1000,
      maxPerHour: config.maxPerHour,
      retryInitialMs: options.retryInitialMs,
      retryWindowMs: options.retryWindowMs,
    });
    this.failures = new FailureWindow(config.on.failedLogins, config.failedLoginWindowMinutes * 60_000);
    if (config.on.publicIpChange) {
      this.publicIp = new PublicIpWatcher({
        resolver: config.publicIp.resolver,
        hostname: config.publicIp.hostname,
        intervalMs: config.publicIp.intervalMinutes * 60_000,
        stateFile: join(options.stateDir, 'public-ip'),
        log,
        onChange: (previous, current) => this.mailer.submit(publicIpAlert(previous, current, this.context())),
      });
    }
    const on = Object.entries(config.on)
      .filter(([, value]) => value)
      .map(([key, value]) => (key === 'failedLogins' ? `${value} failed logins` : key));
    log.info(`Email alerts through ${sender.name} to ${(config.ses?.to ?? config.smtp?.to ?? []).join(', ')}: ${on.join(', ') || 'nothing switched on'}.`);
  }

  start(): void {
    const { config } = this.options;
    if (config.on.motion) this.listen('motion', (camera, event) => this.onMotion(camera, event));
    if (config.on.offline) {
      this.listen('offline', (camera, reason) => this.onOffline(camera, reason));
      this.listen('online', (camera) => this.onOnline(camera));
    }
    if (config.on.failedLogins > 0) this.listen('login-failed', (event) => this.onLoginFailed(event.ip, event.user));
    this.publicIp?.start();
  }

  stop(): void {
    for (const remove of this.listeners) remove();
    this.listeners.length = 0;
    for (const state of this.down.values()) clearTimeout(state.timer);
    this.publicIp?.stop();
    this.mailer.close();
  }

  private listen<K extends keyof AlertEvents>(name: K, handler: (...args: AlertEvents[K]) => void): void {
    // The typed on() resolves its listener type through a conditional type that TypeScript cannot
    // match for a generic K; the handler's arguments are checked against AlertEvents at each call instead.
    const events = this.options.events as unknown as EventEmitter;
    const wrapped = (...args: unknown[]) => {
      try {
        handler(...(args as AlertEvents[K]));
      } catch (error) {
        this.options.log.error(`Alert for ${name} failed: ${(error as Error).stack ?? String(error)}`);
      }
    };
    events.on(name, wrapped);
    this.listeners.push(() => events.off(name, wrapped));
  }

  private context(at = new Date()): AlertContext {
    return { siteName: this.options.siteName, at };
  }

  private onMotion(camera: CameraConfig, event: MotionEvent): void {
    this.mailer.submit(motionAlert(camera, event.frame.data, event.score, this.context(new Date(event.frame.time))));
  }

  private onOffline(camera: CameraConfig, reason: string): void {
    if (this.down.has(camera.id)) return;
    const state = { since: Date.now(), alerted: false, timer: undefined as NodeJS.Timeout | undefined };
    state.timer = setTimeout(() => {
      state.timer = undefined;
      state.alerted = this.mailer.submit(offlineAlert(camera, reason, new Date(state.since), this.context())) === 'queued';
    }, this.options.config.offlineAfterSeconds * 1000);
    state.timer.unref();
    this.down.set(camera.id, state);
  }

  private onOnline(camera: CameraConfig): void {
    const state = this.down.get(camera.id);
    if (!state) return;
    this.down.delete(camera.id);
    clearTimeout(state.timer);
    // Back before the debounce ended: nobody was told it was gone, so nothing to tell.
    if (state.alerted) this.mailer.submit(onlineAlert(camera, Date.now() - state.since, this.context()));
  }

  private onLoginFailed(ip: string, user: string | undefined): void {
    const burst = this.failures.record(ip, user, Date.now());
    if (!burst) return;
    this.mailer.submit(failedLoginsAlert(burst.address, burst.count, this.options.config.failedLoginWindowMinutes, burst.users, this.context()));
  }
}

/** Sends one test email now; resolves with the service's answer, rejects with what went wrong. */
export async function sendTestAlert(config: AlertsConfig, siteName: string): Promise<{ via: string; messageId: string; to: string[] }> {
  const sender = createSender(config);
  try {
    const messageId = await sender.send(testAlert({ siteName, at: new Date() }));
    return { via: sender.name, messageId, to: config.ses?.to ?? config.smtp?.to ?? [] };
  } finally {
    sender.close();
  }
}
