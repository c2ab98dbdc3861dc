// The words of each alert: subject, plain text and a simple HTML body, plus the frame to attach.
// Pure functions of what happened; the mailer decides whether and when they are sent.
import { escapeHtml } from '../util/escape-html';

export type AlertKind = 'motion' | 'offline' | 'online' | 'public-ip' | 'failed-logins' | 'test';

export interface Alert {
  kind: AlertKind;
  /** Alerts with one key share a cooldown (one camera's motion, one address's failed logins). */
  key: string;
  subject: string;
  text: string;
  html: string;
  /** A JPEG to attach (the frame with the motion). */
  image?: { data: Buffer; filename: string };
}

export interface AlertContext {
  /** Shown in subjects, e.g. "Webcam Server". */
  siteName: string;
  /** When it happened. */
  at: Date;
}

function stamp(at: Date): string {
  return at.toLocaleString('en-GB', { dateStyle: 'medium', timeStyle: 'medium' });
}

/** "3 min 20 s", "2 h 5 min", "45 s". */
export function duration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return s % 60 ? `${m} min ${s % 60} s` : `${m} min`;
  const h = Math.floor(m / 60);
  return m % 60 ? `${h} h ${m % 60} min` : `${h} h`;
}

function compose(
  kind: AlertKind,
  key: string,
  context: AlertContext,
  subject: string,
  lines: string[],
  image?: Alert['image'],
): Alert {
  const footer = `${context.siteName}, ${stamp(context.at)}`;
  const text = [...lines, '', `-- ${footer}`].join('\n');
  const html = [
    '<!doctype html><html><body style="font-family: system-ui, sans-serif">',
    ...lines.map((line) => `<p>${escapeHtml(line)}</p>`),
    ...(image ? [`<p><img src="cid:frame" alt="The frame" style="max-width: 100%"></p>`] : []),
    `<p style="color: #777">${escapeHtml(footer)}</p>`,
    '</body></html>',
  ].join('\n');
  return { kind, key, subject: `[${context.siteName}] ${subject}`, text, html, image };
}

export function motionAlert(camera: { id: string; name: string }, frame: Buffer, score: number, context: AlertContext): Alert {
  const filename = `${camera.id}-${context.at.toISOString().replace(/[:.]/g, '-')}.jpg`;
  return compose(
    'motion',
    `motion:${camera.id}`,
    context,
    `Motion: ${camera.name}`,
    [`${camera.name} saw motion at ${stamp(context.at)} (${Math.round(score * 100)}% of the picture changed).`, 'The frame is attached.'],
    { data: frame, filename },
  );
}

export function offlineAlert(camera: { id: string; name: string }, reason: string, since: Date, context: AlertContext): Alert {
  return compose('offline', `offline:${camera.id}`, context, `Offline: ${camera.name}`, [
    `${camera.name} has had no picture since ${stamp(since)}.`,
    `Reason: ${reason.split('\n').slice(-2).join(' ') || 'unknown'}`,
    'It keeps retrying; another email follows when it is back.',
  ]);
}

export function onlineAlert(camera: { id: string; name: string }, downForMs: number, context: AlertContext): Alert {
  return compose('online', `online:${camera.id}`, context, `Back online: ${camera.name}`, [
    `${camera.name} is streaming again after ${duration(downForMs)} offline.`,
  ]);
}

export function publicIpAlert(previous: string, current: string, context: AlertContext): Alert {
  return compose('public-ip', 'public-ip', context, `Public IP changed to ${current}`, [
    `The public IP address changed from ${previous} to ${current}.`,
    'Use the new address to reach the camera from outside, or update your dynamic DNS name.',
  ]);
}

export function failedLoginsAlert(address: string, count: number, windowMinutes: number, users: string[], context: AlertContext): Alert {
  // What an attacker typed: shown as short quoted data, never as words of ours.
  const quoted = users.map((u) => JSON.stringify(u.length > 32 ? `${u.slice(0, 32)}…` : u));
  const tried = users.length > 0 ? `User names tried (as typed): ${quoted.join(', ')}.` : '';
  return compose('failed-logins', `failed-logins:${address}`, context, `${count} failed logins from ${address}`, [
    `${count} failed logins from ${address} within ${windowMinutes} min.`,
    ...(tried ? [tried] : []),
    'If this is not you, someone is guessing passwords: keep them long, and consider limiting access to trusted networks.',
  ]);
}

export function testAlert(context: AlertContext): Alert {
  return compose('test', `test:${context.at.getTime()}`, context, 'Test email', [
    'This is a test email from the webcam server: alerts reach you.',
  ]);
}
