// The `alerts` block of the config: where emails go (AWS SES, or SMTP with flask-cam's fields),
// which events send one, and the limits that keep them from flooding. Every problem is named
// with its key and fix; bad values fall back to the defaults and alerts keep working.

import { isRecord } from '../util/is-record';

export interface SesConfig {
  region: string;
  from: string;
  to: string[];
  accessKeyId?: string;
  secretAccessKey?: string;
  /** An SES-compatible endpoint (LocalStack, aws-ses-v2-local in tests). */
  endpoint?: string;
}

/** SMTP, e.g. SES's SMTP interface with the SMTP credentials flask-cam's `secrets` file held. */
export interface SmtpConfig {
  host: string;
  port: number;
  username?: string;
  password?: string;
  from: string;
  fromName?: string;
  to: string[];
}

export interface AlertsConfig {
  ses?: SesConfig;
  smtp?: SmtpConfig;
  on: {
    motion: boolean;
    offline: boolean;
    publicIpChange: boolean;
    /** Failed logins from one address within `failedLoginWindowMinutes` that send an alert; 0 is off. */
    failedLogins: number;
  };
  /** The least time between two alerts of one kind (per camera, per address). */
  cooldownSeconds: number;
  /** No more alerts than this in any hour, whatever their kind. */
  maxPerHour: number;
  /** A camera must stay offline this long before its alert goes out (a restart is not news). */
  offlineAfterSeconds: number;
  failedLoginWindowMinutes: number;
  publicIp: {
    /** The DNS server asked, `host` or `host:port` (flask-cam's cron asked OpenDNS). */
    resolver: string;
    /** The name it answers with the asker's address. */
    hostname: string;
    intervalMinutes: number;
  };
}

export interface AlertsConfigResult {
  /** Undefined when no way to send is configured: alerts are off. */
  alerts?: AlertsConfig;
  problems: string[];
}

const EMAIL = /^[^\s@<>]+@[^\s@<>]+\.[^\s@<>]+$/;


function text(raw: unknown): string | undefined {
  return typeof raw === 'string' && raw.trim() ? raw.trim() : typeof raw === 'number' ? String(raw) : undefined;
}

/** The first of several keys that is set (flask-cam's names are accepted beside ours). */
function pick(block: Record<string, unknown>, ...keys: string[]): unknown {
  for (const key of keys) if (block[key] !== undefined && block[key] !== '') return block[key];
  return undefined;
}

function addresses(raw: unknown, key: string, problems: string[]): string[] {
  const list = Array.isArray(raw) ? raw : typeof raw === 'string' ? raw.split(/[,;]/) : [];
  const good: string[] = [];
  for (const entry of list) {
    const address = typeof entry === 'string' ? entry.trim() : '';
    if (EMAIL.test(address)) good.push(address);
    else if (address || typeof entry !== 'string') problems.push(`"${key}" entry ${JSON.stringify(entry)} is not an email address; skipping it.`);
  }
  return good;
}

function whole(raw: unknown, key: string, fallback: number, min: number, max: number, problems: string[]): number {
  if (raw === undefined || raw === null || raw === '') return fallback;
  if (typeof raw !== 'number' || !Number.isInteger(raw) || raw < min || raw > max) {
    problems.push(`"${key}" must be a whole number from ${min} to ${max} (got ${JSON.stringify(raw)}); using ${fallback}.`);
    return fallback;
  }
  return raw;
}

function flag(raw: unknown, key: string, fallback: boolean, problems: string[]): boolean {
  if (raw === undefined || raw === null) return fallback;
  if (typeof raw !== 'boolean') {
    problems.push(`"${key}" must be true or false (got ${JSON.stringify(raw)}); using ${fallback}.`);
    return fallback;
  }
  return raw;
}

function normalizeSes(raw: unknown, problems: string[]): SesConfig | undefined {
  if (raw === undefined) return undefined;
  if (!isRecord(raw)) {
    problems.push('"alerts.ses" must be an object with "region", "from" and "to"; SES is off.');
    return undefined;
  }
  const region = text(raw.region);
  const from = text(raw.from);
  const to = addresses(raw.to, 'alerts.ses.to', problems);
  const missing = [!region && '"region" (e.g. "us-west-2")', !from && '"from" (a sender verified in SES)', to.length === 0 && '"to" (one or more addresses)'].filter(Boolean);
  if (missing.length > 0) {
    problems.push(`"alerts.ses" needs ${missing.join(', ')}; SES is off.`);
    return undefined;
  }
  if (!EMAIL.test(from!.replace(/^.*<([^>]+)>\s*$/, '$1'))) {
    problems.push(`"alerts.ses.from" "${from}" is not an email address; SES is off.`);
    return undefined;
  }
  const accessKeyId = text(raw.accessKeyId);
  const secretAccessKey = text(raw.secretAccessKey);
  if (Boolean(accessKeyId) !== Boolean(secretAccessKey)) {
    problems.push('"alerts.ses" needs both "accessKeyId" and "secretAccessKey", or neither (the AWS SDK then finds credentials itself); using neither.');
  }
  const endpoint = text(raw.endpoint);
  if (endpoint && !/^https?:\/\/[^\s]+$/.test(endpoint)) {
    problems.push(`"alerts.ses.endpoint" "${endpoint}" is not an http(s) URL; using AWS's own endpoint.`);
  }
  const both = accessKeyId && secretAccessKey;
  return {
    region: region!,
    from: from!,
    to,
    accessKeyId: both ? accessKeyId : undefined,
    secretAccessKey: both ? secretAccessKey : undefined,
    endpoint: endpoint && /^https?:\/\/[^\s]+$/.test(endpoint) ? endpoint : undefined,
  };
}

function normalizeSmtp(raw: unknown, problems: string[]): SmtpConfig | undefined {
  if (raw === undefined) return undefined;
  if (!isRecord(raw)) {
    problems.push('"alerts.smtp" must be an object; SMTP is off.');
    return undefined;
  }
  const host = text(raw.host);
  const from = text(pick(raw, 'from', 'sender'));
  const to = addresses(pick(raw, 'to', 'recipient'), 'alerts.smtp.to', problems);
  const missing = [!host && '"host" (e.g. "email-smtp.us-west-2.amazonaws.com")', !from && '"from"', to.length === 0 && '"to"'].filter(Boolean);
  if (missing.length > 0) {
    problems.push(`"alerts.smtp" needs ${missing.join(', ')}; SMTP is off.`);
    return undefined;
  }
  const portRaw = pick(raw, 'port');
  const port = whole(typeof portRaw === 'string' ? Number(portRaw) : portRaw, 'alerts.smtp.port', 587, 1, 65_535, problems);
  return {
    host: host!,
    port,
    username: text(pick(raw, 'username', 'smtp_username')),
    password: text(pick(raw, 'password', 'smtp_password')),
    from: from!,
    fromName: text(pick(raw, 'fromName', 'sender_name')),
    to,
  };
}

/** Validates the raw `alerts` block. */
export function normalizeAlerts(raw: unknown): AlertsConfigResult {
  const problems: string[] = [];
  if (raw === undefined || raw === null) return { problems };
  if (!isRecord(raw)) return { problems: ['"alerts" must be an object; alerts are off.'] };
  const ses = normalizeSes(raw.ses, problems);
  const smtp = normalizeSmtp(raw.smtp, problems);
  // Without a way to send, alerts are simply off. (Homebridge's settings form writes the default
  // switches even then, so that alone is not worth a warning at every start.)
  if (!ses && !smtp) return { problems };
  const on = isRecord(raw.on) ? raw.on : {};
  const failedRaw = on.failedLogins;
  const failedLogins =
    failedRaw === false ? 0 : failedRaw === true ? 5 : whole(failedRaw, 'alerts.on.failedLogins', 5, 0, 1000, problems);
  const publicIp = isRecord(raw.publicIp) ? raw.publicIp : {};
  let resolver = text(publicIp.resolver) ?? 'resolver1.opendns.com';
  if (!/^[A-Za-z0-9.-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$/.test(resolver)) {
    problems.push(`"alerts.publicIp.resolver" "${resolver}" is not a host or host:port; using resolver1.opendns.com.`);
    resolver = 'resolver1.opendns.com';
  }
  let hostname = text(publicIp.hostname) ?? 'myip.opendns.com';
  if (!/^[A-Za-z0-9.-]+$/.test(hostname)) {
    problems.push(`"alerts.publicIp.hostname" "${hostname}" is not a host name; using myip.opendns.com.`);
    hostname = 'myip.opendns.com';
  }
  return {
    alerts: {
      ses,
      smtp,
      on: {
        motion: flag(on.motion, 'alerts.on.motion', true, problems),
        offline: flag(on.offline, 'alerts.on.offline', true, problems),
        publicIpChange: flag(on.publicIpChange, 'alerts.on.publicIpChange', true, problems),
        failedLogins,
      },
      cooldownSeconds: whole(raw.cooldownSeconds, 'alerts.cooldownSeconds', 300, 0, 7 * 86_400, problems),
      maxPerHour: whole(raw.maxPerHour, 'alerts.maxPerHour', 20, 1, 1000, problems),
      offlineAfterSeconds: whole(raw.offlineAfterSeconds, 'alerts.offlineAfterSeconds', 60, 0, 86_400, problems),
      failedLoginWindowMinutes: whole(raw.failedLoginWindowMinutes, 'alerts.failedLoginWindowMinutes', 10, 1, 1440, problems),
      publicIp: {
        resolver,
        hostname,
        intervalMinutes: whole(publicIp.intervalMinutes, 'alerts.publicIp.intervalMinutes', 15, 1, 1440, problems),
      },
    },
    problems,
  };
}
