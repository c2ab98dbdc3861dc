// The plugin's config as the rest of the package uses it: validated against config.schema.json
// (config-validate.ts: defaults, friendly problems, bad cameras disabled), then the checks the
// schema cannot make: IP ranges that parse, camera names that do not collide, the proxies to
// believe. The types come from the schema too (config-types.ts, generated).
import ipaddr from 'ipaddr.js';

import type { AlertsConfig } from './alerts/config';
import { alertsOf } from './alerts/config';
import type { ConfigSchemaDoc } from './config-schema';
import type { CameraSettings, PluginSettings, WebSettings } from './config-types';
import { patternMessage, validateConfig } from './config-validate';
import { isRecord } from './util/is-record';

export type { AudioConfig, HomeKitConfig, MotionConfig } from './config-types';

export interface CameraConfig extends CameraSettings {
  /** The slug of the name: the camera's address in URLs (`/cameras/<id>/`), unique. */
  id: string;
}

export interface WebConfig extends Omit<WebSettings, 'trustProxy' | 'tls'> {
  /**
   * Proxies whose X-Forwarded-For is believed (nginx in front): `true` for any, or addresses and
   * CIDR ranges. Default: true when listening on a unix socket (only a local proxy can connect),
   * else none.
   */
  trustProxy: boolean | string[];
  tls?: { cert: string; key: string };
}

export interface PluginConfig extends Omit<PluginSettings, 'cameras' | 'web' | 'alerts'> {
  /** The cameras that can run (a disabled one is left out, with a problem). */
  cameras: CameraConfig[];
  web: WebConfig;
  /** Email alerts; undefined when no way to send is configured. */
  alerts?: AlertsConfig;
}

export interface ConfigResult {
  config: PluginConfig;
  /** Problems found; each disables only what it names. */
  problems: string[];
  /**
   * The id of each entry of `cameras` as given (so `cameraIds[i]` is the address of the i-th
   * camera of the settings), undefined for an entry that is disabled.
   */
  cameraIds: Array<string | undefined>;
}

/** `Front Porch!` -> `front-porch`; empty names fall back to `camera`. */
export function slugify(name: string): string {
  const slug = name
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '');
  return slug || 'camera';
}

/** An IP address (four-part IPv4 or IPv6) or a CIDR range of one. */
export function isIpOrRange(text: string): boolean {
  const parts = text.split('/');
  const [address = ''] = parts; // split gives at least one piece
  if (parts.length > 2 || !(ipaddr.IPv4.isValidFourPartDecimal(address) || ipaddr.IPv6.isValid(address))) return false;
  return parts.length === 1 || ipaddr.isValidCIDR(text);
}

/**
 * The cameras that run, each with its id (the slug of its name). Two cameras whose names give the
 * same id cannot both have it: the later one is disabled (renaming it to something else fixes that;
 * an id made up for it would change whenever the cameras before it change).
 */
function camerasOf(list: unknown[], disabled: Set<number>, problems: string[]): { cameras: CameraConfig[]; ids: Array<string | undefined> } {
  const cameras: CameraConfig[] = [];
  const ids: Array<string | undefined> = [];
  const owner = new Map<string, string>();
  list.forEach((entry, index) => {
    ids.push(undefined);
    if (disabled.has(index) || !isRecord(entry)) return;
    const settings = entry as unknown as CameraSettings;
    const id = slugify(settings.name);
    const where = `cameras[${index}] (${JSON.stringify(settings.name)})`;
    const taken = owner.get(id);
    if (taken) {
      problems.push(`${where} has the address /cameras/${id}/ of ${taken} already: give it a name of its own; this camera is disabled.`);
      return;
    }
    owner.set(id, where);
    ids[index] = id;
    cameras.push({ ...settings, id, inputFormat: settings.inputFormat.toLowerCase() });
  });
  return { cameras, ids };
}

/** Entries of a list of addresses that parse (the schema checks only their characters). */
function addresses(list: string[], key: string, problems: string[]): string[] {
  return list.filter((entry) => {
    if (isIpOrRange(entry)) return true;
    problems.push(`"${key}" entry ${JSON.stringify(entry)} ${patternMessage(key === 'web.trustProxy' ? 'web.trustProxy[]' : `${key}[]`)}; skipping it.`);
    return false;
  });
}

function webOf(web: WebSettings, problems: string[]): WebConfig {
  const { tls, trustProxy, ...rest } = web;
  return {
    ...rest,
    trustedNetworks: addresses(web.trustedNetworks, 'web.trustedNetworks', problems),
    allowedHosts: web.allowedHosts.map((name) => name.toLowerCase()),
    tls: tls?.cert && tls.key ? { cert: tls.cert, key: tls.key } : undefined,
    // Only a proxy on this machine can reach a unix socket.
    trustProxy: Array.isArray(trustProxy) ? addresses(trustProxy, 'web.trustProxy', problems) : (trustProxy ?? Boolean(web.socket)),
  };
}

/** Validates a raw platform block (from Homebridge's config.json or `serve --config`). */
export function normalizeConfig(raw: unknown, doc?: ConfigSchemaDoc): ConfigResult {
  const problems: string[] = [];
  if (!isRecord(raw)) problems.push('The plugin config must be an object; using the defaults.');
  const validated = validateConfig(isRecord(raw) ? raw : {}, doc);
  problems.push(...validated.problems);
  const settings = validated.data as unknown as PluginSettings;
  const { cameras, ids } = camerasOf(settings.cameras, validated.disabled, problems);
  const web = webOf(settings.web, problems);
  const alerts = alertsOf(settings.alerts, problems, doc);
  return {
    config: { name: settings.name, videoProcessor: settings.videoProcessor, cameras, web, alerts },
    problems,
    cameraIds: ids,
  };
}

/** The device whose controls are tuned: `controlsDevice`, else the source when it is a device. */
export function controlsDeviceOf(camera: CameraConfig): string | undefined {
  if (camera.controlsDevice) return camera.controlsDevice.replace(/^\/dev\//, '');
  return camera.source.startsWith('/dev/') ? camera.source.replace(/^\/dev\//, '') : undefined;
}
