// The `alerts` block of the config: where emails go (AWS SES, or SMTP with flask-cam's fields),
// which events send one, and the limits that keep them from flooding. config.schema.json describes
// it and config-validate.ts checks it with the rest of the config (a bad SES or SMTP block turns
// that way of sending off; a bad limit falls back to its default); this file adds what the schema
// cannot say: alerts are on only with a way to send, and a sender written as a name and an
// address has both halves.
import type { ConfigSchemaDoc } from '../config-schema';
import type { AlertsSettings } from '../config-types';
import { patternMessage, validateConfig } from '../config-validate';

export type { SesConfig, SmtpConfig } from '../config-types';

export type AlertsConfig = AlertsSettings;

export interface AlertsConfigResult {
  /** Undefined when no way to send is configured: alerts are off. */
  alerts?: AlertsConfig;
  problems: string[];
}

/** `cam@example.com` or `Porch camera <cam@example.com>`, not half of the second. */
export function isSender(from: string): boolean {
  return /^[^<>]*$/.test(from) || /^[^<>]*<[^<>]+>$/.test(from);
}

/**
 * The alerts of a validated config: undefined without SES or SMTP (the settings form writes the
 * default switches even then, so that alone is not worth a warning at every start).
 */
export function alertsOf(settings: AlertsSettings | undefined, problems: string[], doc?: ConfigSchemaDoc): AlertsConfig | undefined {
  if (!settings) return undefined;
  /** False (with a problem) when this way's sender address is not one. */
  const senderOk = (way: 'ses' | 'smtp'): boolean => {
    const from = settings[way]?.from;
    if (from === undefined || isSender(from)) return true;
    problems.push(`"alerts.${way}.from" ${JSON.stringify(from)} ${patternMessage(`alerts.${way}.from`, doc)}; ${way === 'ses' ? 'SES' : 'SMTP'} is off.`);
    return false;
  };
  const alerts = { ...settings };
  if (!senderOk('ses')) delete alerts.ses;
  if (!senderOk('smtp')) delete alerts.smtp;
  return alerts.ses || alerts.smtp ? alerts : undefined;
}

/** Validates a raw `alerts` block alone (the Homebridge UI's test email, the tests). */
export function normalizeAlerts(raw: unknown): AlertsConfigResult {
  if (raw === undefined || raw === null) return { problems: [] };
  const { data, problems } = validateConfig({ alerts: raw });
  const alerts = alertsOf(data.alerts as AlertsSettings | undefined, problems);
  return alerts ? { alerts, problems } : { problems };
}
