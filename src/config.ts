// The plugin's config: types, defaults and validation. One bad camera entry is reported and
// skipped; the others keep working. Every message names the key and says how to fix it.
import ipaddr from 'ipaddr.js';

import type { AlertsConfig } from './alerts/config';
import { normalizeAlerts } from './alerts/config';
import type { ControlsToolChoice } from './controls/types';
import { CONTROLS_TOOLS } from './controls/types';
import { DEFAULT_PORT } from './settings';
import { isRecord } from './util/is-record';

export interface MotionConfig {
  enabled: boolean;
  sensitivity: number;
  cooldownSeconds: number;
}

export interface HomeKitConfig {
  enabled: boolean;
  unbridge: boolean;
  maxStreams: number;
  encoder: string;
  /** Keep an idle encoder ready for the next live stream (silent cameras), so it starts sooner. */
  warmEncoder: boolean;
  /** HomeKit Secure Video: advertised when enabled; nothing runs until the Home app turns recording on. */
  recording: { enabled: boolean };
}

export interface AudioConfig {
  /** Stream sound to HomeKit (OPUS). */
  enabled: boolean;
  /**
   * An ALSA capture device (`default`, `hw:1,0`, `dsnoop:CARD=C920,DEV=0` to share the microphone
   * between streams), or `sine`: a test tone, the stand-in like `testsrc` is for video.
   */
  source: string;
}

export interface CameraConfig {
  /** The display name; its slug is the camera's id in URLs. */
  name: string;
  id: string;
  /** A V4L2 device path, `testsrc`, or a URL ffmpeg can read. */
  source: string;
  /** The V4L2 pixel format to ask the device for: `mjpeg` (passed through) or a raw one (encoded). */
  inputFormat: string;
  width: number;
  height: number;
  fps: number;
  /** JPEG quality for encoded sources, ffmpeg's -q:v scale: 2 (best) .. 31 (smallest). */
  quality: number;
  /** Show a clock over the live image on the pages (flask-cam drew a timestamp into the frame). */
  timestamp: boolean;
  /** Camera control values applied whenever the capture starts, by the tool's control names. */
  controls: Record<string, number | boolean>;
  /** The device whose controls are tuned, when it is not the source (`video0`, `/dev/video0`). */
  controlsDevice?: string;
  /** Which tool tunes the controls: uvcdynctrl, else v4l2-ctl (`auto`), or only one of them. */
  controlsTool: ControlsToolChoice;
  /** A Logitech-style XML mapping imported with `uvcdynctrl -i` before the values are applied. */
  controlsFile?: string;
  motion: MotionConfig;
  homekit: HomeKitConfig;
  audio: AudioConfig;
}

export interface WebConfig {
  enabled: boolean;
  host: string;
  port: number;
  socket?: string;
  usersFile?: string;
  trustedNetworks: string[];
  tls?: { cert: string; key: string };
  /** Failed logins from one address within 10 minutes that lock it out; 0 turns that off. */
  maxFailedLogins: number;
  lockoutMinutes: number;
  /**
   * Proxies whose X-Forwarded-For is believed (nginx in front): `true` for any, or addresses and
   * CIDR ranges. Default: true when listening on a unix socket (only a local proxy can connect),
   * else none.
   */
  trustProxy: boolean | string[];
  /** Origins that may show the kiosk page in a frame (e.g. a dashboard); none by default. */
  kioskFrameAncestors: string[];
  /**
   * Host names that a request let in by `trustedNetworks` (no password) may carry, besides IP
   * addresses, `localhost` and this machine's own name (DNS-rebinding defence).
   */
  allowedHosts: string[];
  /** The browser's H.264 live view (kbit/s; about 1 Mbit/s suits a phone on mobile data at 720p). */
  h264: { bitrate: number };
}

export interface PluginConfig {
  name: string;
  videoProcessor?: string;
  cameras: CameraConfig[];
  web: WebConfig;
  /** Email alerts; undefined when no way to send is configured. */
  alerts?: AlertsConfig;
}

export interface ConfigResult {
  config: PluginConfig;
  /** Problems found; each disables only what it names. */
  problems: string[];
}

export const SOURCE_TESTSRC = 'testsrc';

const CAMERA_DEFAULTS = {
  inputFormat: 'mjpeg',
  width: 1280,
  height: 720,
  fps: 30,
  quality: 5,
} as const;

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


type Problems = string[];

function integer(raw: unknown, key: string, fallback: number, min: number, max: number, problems: Problems): number {
  if (raw === undefined || raw === null || raw === '') return fallback;
  const value = typeof raw === 'string' && /^\s*-?\d+\s*$/.test(raw) ? Number(raw) : raw;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    problems.push(`"${key}" must be a whole number from ${min} to ${max} (got ${JSON.stringify(raw)}); using ${fallback}.`);
    return fallback;
  }
  return value;
}

function bool(raw: unknown, key: string, fallback: boolean, problems: Problems): boolean {
  if (raw === undefined || raw === null) return fallback;
  if (typeof raw !== 'boolean') {
    problems.push(`"${key}" must be true or false (got ${JSON.stringify(raw)}); using ${fallback}.`);
    return fallback;
  }
  return raw;
}

function str(raw: unknown, key: string, problems: Problems): string | undefined {
  if (raw === undefined || raw === null || raw === '') return undefined;
  if (typeof raw !== 'string') {
    problems.push(`"${key}" must be a string (got ${JSON.stringify(raw)}); ignoring it.`);
    return undefined;
  }
  return raw.trim();
}

/** An ffmpeg encoder name (it goes to -c:v), else libx264 with a problem. */
function encoderName(raw: string | undefined, key: string, problems: Problems): string {
  if (raw === undefined) return 'libx264';
  if (/^[a-z0-9_]+$/.test(raw)) return raw;
  problems.push(`"${key}" "${raw}" is not an ffmpeg encoder name (e.g. libx264, h264_v4l2m2m); using libx264.`);
  return 'libx264';
}

/** Validates one camera entry; returns undefined (with a problem) when it cannot run at all. */
function normalizeCamera(raw: unknown, index: number, usedIds: Set<string>, problems: Problems): CameraConfig | undefined {
  const where = `cameras[${index}]`;
  if (!isRecord(raw)) {
    problems.push(`${where} must be an object with at least "name" and "source"; this camera is disabled.`);
    return undefined;
  }
  const name = str(raw.name, `${where}.name`, problems) ?? `Camera ${index + 1}`;
  const at = `${where} ("${name}")`;
  const source = str(raw.source, `${at}.source`, problems);
  if (!source) {
    problems.push(`${at} has no "source": set a device such as "/dev/video0", "testsrc", or a stream URL; this camera is disabled.`);
    return undefined;
  }
  if (!(source === SOURCE_TESTSRC || source.startsWith('/dev/') || /^[a-z][a-z0-9+.-]*:\/\//i.test(source))) {
    problems.push(`${at}.source "${source}" is neither a /dev/ device, "testsrc", nor a URL; this camera is disabled.`);
    return undefined;
  }
  const inputFormat = str(raw.inputFormat, `${at}.inputFormat`, problems) ?? CAMERA_DEFAULTS.inputFormat;
  if (!/^[a-z0-9_]+$/i.test(inputFormat)) {
    problems.push(`${at}.inputFormat "${inputFormat}" is not a pixel format name (e.g. mjpeg, yuyv422); this camera is disabled.`);
    return undefined;
  }

  let id = slugify(name);
  for (let n = 2; usedIds.has(id); n++) id = `${slugify(name)}-${n}`;
  usedIds.add(id);

  const controls: Record<string, number | boolean> = {};
  if (raw.controls !== undefined) {
    if (!isRecord(raw.controls)) {
      problems.push(`${at}.controls must be an object of control name to value; ignoring it.`);
    } else {
      for (const [control, value] of Object.entries(raw.controls)) {
        if (typeof value === 'number' || typeof value === 'boolean') controls[control] = value;
        else problems.push(`${at}.controls["${control}"] must be a number or true/false; ignoring it.`);
      }
    }
  }

  let controlsDevice = str(raw.controlsDevice, `${at}.controlsDevice`, problems);
  if (controlsDevice !== undefined && !/^(\/dev\/[A-Za-z0-9_.:/-]+|[A-Za-z0-9_.:-]+)$/.test(controlsDevice)) {
    problems.push(`${at}.controlsDevice "${controlsDevice}" is not a device name (e.g. "video0" or "/dev/video0"); camera controls are off for this camera.`);
    controlsDevice = undefined;
  }
  let controlsTool = (str(raw.controlsTool, `${at}.controlsTool`, problems) ?? 'auto') as ControlsToolChoice;
  if (!CONTROLS_TOOLS.includes(controlsTool)) {
    problems.push(`${at}.controlsTool "${controlsTool}" must be one of ${CONTROLS_TOOLS.join(', ')}; using auto.`);
    controlsTool = 'auto';
  }

  const motion = isRecord(raw.motion) ? raw.motion : {};
  const audio = isRecord(raw.audio) ? raw.audio : {};
  let audioSource = str(audio.source, `${at}.audio.source`, problems) ?? 'default';
  if (!/^[A-Za-z0-9_:,=.-]+$/.test(audioSource)) {
    problems.push(`${at}.audio.source "${audioSource}" is not an ALSA device name (e.g. "default", "hw:1,0", "dsnoop:CARD=C920,DEV=0"); using "default".`);
    audioSource = 'default';
  }
  const homekit = isRecord(raw.homekit) ? raw.homekit : {};
  return {
    name,
    id,
    source,
    inputFormat: inputFormat.toLowerCase(),
    width: integer(raw.width, `${at}.width`, CAMERA_DEFAULTS.width, 16, 7680, problems),
    height: integer(raw.height, `${at}.height`, CAMERA_DEFAULTS.height, 16, 4320, problems),
    fps: integer(raw.fps, `${at}.fps`, CAMERA_DEFAULTS.fps, 1, 120, problems),
    quality: integer(raw.quality, `${at}.quality`, CAMERA_DEFAULTS.quality, 2, 31, problems),
    timestamp: bool(raw.timestamp, `${at}.timestamp`, false, problems),
    controls,
    controlsDevice,
    controlsTool,
    controlsFile: str(raw.controlsFile, `${at}.controlsFile`, problems),
    motion: {
      enabled: bool(motion.enabled, `${at}.motion.enabled`, true, problems),
      sensitivity: integer(motion.sensitivity, `${at}.motion.sensitivity`, 50, 0, 100, problems),
      cooldownSeconds: integer(motion.cooldownSeconds, `${at}.motion.cooldownSeconds`, 30, 0, 86_400, problems),
    },
    homekit: {
      enabled: bool(homekit.enabled, `${at}.homekit.enabled`, true, problems),
      unbridge: bool(homekit.unbridge, `${at}.homekit.unbridge`, true, problems),
      maxStreams: integer(homekit.maxStreams, `${at}.homekit.maxStreams`, 2, 1, 8, problems),
      encoder: encoderName(str(homekit.encoder, `${at}.homekit.encoder`, problems), `${at}.homekit.encoder`, problems),
      warmEncoder: bool(homekit.warmEncoder, `${at}.homekit.warmEncoder`, true, problems),
      recording: {
        enabled: bool(isRecord(homekit.recording) ? homekit.recording.enabled : undefined, `${at}.homekit.recording.enabled`, true, problems),
      },
    },
    audio: {
      enabled: bool(audio.enabled, `${at}.audio.enabled`, false, problems),
      source: audioSource,
    },
  };
}

function normalizeWeb(raw: unknown, problems: Problems): WebConfig {
  const web = isRecord(raw) ? raw : {};
  if (raw !== undefined && !isRecord(raw)) problems.push('"web" must be an object; using the defaults.');
  const trusted: string[] = [];
  if (web.trustedNetworks !== undefined) {
    if (!Array.isArray(web.trustedNetworks)) problems.push('"web.trustedNetworks" must be a list of CIDR ranges; ignoring it.');
    else {
      for (const entry of web.trustedNetworks) {
        const range = typeof entry === 'string' ? entry.trim() : '';
        if (range && (ipaddr.isValidCIDR(range) || ipaddr.isValid(range))) trusted.push(range);
        else problems.push(`"web.trustedNetworks" entry ${JSON.stringify(entry)} is not an IP address or CIDR range (e.g. 192.168.1.0/24); ignoring it.`);
      }
    }
  }
  let tls: WebConfig['tls'];
  if (isRecord(web.tls)) {
    const cert = str(web.tls.cert, 'web.tls.cert', problems);
    const key = str(web.tls.key, 'web.tls.key', problems);
    if (cert && key) tls = { cert, key };
    else if (cert || key) problems.push('"web.tls" needs both "cert" and "key" (PEM file paths); serving plain HTTP.');
  }
  let trustProxy: boolean | string[] = Boolean(str(web.socket, 'web.socket', []));
  if (typeof web.trustProxy === 'boolean') trustProxy = web.trustProxy;
  else if (Array.isArray(web.trustProxy)) {
    trustProxy = web.trustProxy.filter((entry): entry is string => {
      const ok = typeof entry === 'string' && (ipaddr.isValidCIDR(entry.trim()) || ipaddr.isValid(entry.trim()));
      if (!ok) problems.push(`"web.trustProxy" entry ${JSON.stringify(entry)} is not an IP address or CIDR range; ignoring it.`);
      return ok;
    }).map((entry) => entry.trim());
  } else if (web.trustProxy !== undefined) {
    problems.push('"web.trustProxy" must be true/false or a list of proxy addresses; ignoring it.');
  }
  const ancestors: string[] = [];
  if (web.kioskFrameAncestors !== undefined) {
    const list: unknown[] = Array.isArray(web.kioskFrameAncestors) ? web.kioskFrameAncestors : [web.kioskFrameAncestors];
    for (const entry of list) {
      if (typeof entry === 'string' && (/^https?:\/\/[A-Za-z0-9.-]+(:\d{1,5})?$/.test(entry.trim()) || entry.trim() === "'self'")) ancestors.push(entry.trim());
      else problems.push(`"web.kioskFrameAncestors" entry ${JSON.stringify(entry)} must be an origin such as "https://dashboard.example.com"; ignoring it.`);
    }
  }
  const allowedHosts: string[] = [];
  if (web.allowedHosts !== undefined) {
    const list: unknown[] = Array.isArray(web.allowedHosts) ? web.allowedHosts : [web.allowedHosts];
    for (const entry of list) {
      const name = typeof entry === 'string' ? entry.trim().toLowerCase() : '';
      if (/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*\.?$/.test(name) && name.length <= 253) allowedHosts.push(name);
      else problems.push(`"web.allowedHosts" entry ${JSON.stringify(entry)} is not a host name such as "camera.example.org" (no scheme, port or path); ignoring it.`);
    }
  }
  return {
    enabled: bool(web.enabled, 'web.enabled', true, problems),
    host: str(web.host, 'web.host', problems) ?? '0.0.0.0',
    port: integer(web.port, 'web.port', DEFAULT_PORT, 0, 65_535, problems),
    socket: str(web.socket, 'web.socket', problems),
    usersFile: str(web.usersFile, 'web.usersFile', problems),
    trustedNetworks: trusted,
    tls,
    maxFailedLogins: integer(web.maxFailedLogins, 'web.maxFailedLogins', 10, 0, 10_000, problems),
    lockoutMinutes: integer(web.lockoutMinutes, 'web.lockoutMinutes', 15, 1, 10_080, problems),
    trustProxy,
    kioskFrameAncestors: ancestors,
    allowedHosts,
    h264: {
      bitrate: integer(isRecord(web.h264) ? web.h264.bitrate : undefined, 'web.h264.bitrate', 1_000, 100, 20_000, problems),
    },
  };
}

/** Validates a raw platform block (from Homebridge's config.json or `serve --config`). */
export function normalizeConfig(raw: unknown): ConfigResult {
  const problems: Problems = [];
  const block = isRecord(raw) ? raw : {};
  if (!isRecord(raw)) problems.push('The plugin config must be an object; using the defaults.');
  const cameras: CameraConfig[] = [];
  const usedIds = new Set<string>();
  if (block.cameras !== undefined && !Array.isArray(block.cameras)) {
    problems.push('"cameras" must be a list of camera objects; no camera is configured.');
  } else if (Array.isArray(block.cameras)) {
    block.cameras.forEach((entry, index) => {
      const camera = normalizeCamera(entry, index, usedIds, problems);
      if (camera) cameras.push(camera);
    });
  }
  const alerts = normalizeAlerts(block.alerts);
  problems.push(...alerts.problems);
  return {
    config: {
      name: str(block.name, 'name', problems) ?? 'Webcam Server',
      videoProcessor: str(block.videoProcessor, 'videoProcessor', problems),
      cameras,
      web: normalizeWeb(block.web, problems),
      alerts: alerts.alerts,
    },
    problems,
  };
}

/** The device whose controls are tuned: `controlsDevice`, else the source when it is a device. */
export function controlsDeviceOf(camera: CameraConfig): string | undefined {
  if (camera.controlsDevice) return camera.controlsDevice.replace(/^\/dev\//, '');
  return camera.source.startsWith('/dev/') ? camera.source.replace(/^\/dev\//, '') : undefined;
}
