// What the plugin's custom Homebridge UI asks its server side (homebridge-ui/server.js) for: the
// plugin's state as the UI sees it, the webcams of this machine, a preview frame, camera controls,
// web users and a test email. Each request carries the plugin config as it is in the form right
// now (saved or not), so what the page shows matches what the user is editing. Every failure is a
// UiError whose message says what to do.
import type { CameraConfig } from '../config';
import { controlsDeviceOf, normalizeConfig } from '../config';
import { sendTestAlert } from '../alerts/alerts';
import { normalizeAlerts } from '../alerts/config';
import { CameraControls } from '../controls/camera-controls';
import type { ControlState, ControlsToolChoice } from '../controls/types';
import { ControlsError } from '../controls/types';
import type { Log } from '../log';
import { silentLog } from '../log';
import { probeFfmpeg, resolveFfmpegPath, whichSync } from '../media/ffmpeg';
import { scanDevices } from './devices';
import type { DeviceScan } from './devices';
import { pluginSnapshot } from './plugin-snapshot';
import { grabPreview, PreviewError } from './preview';
import { UiError } from './ui-error';
import { changeUser, listUsers, usersFilePath } from './users';
import type { UsersList } from './users';
import { isRecord } from '../util/is-record';

export { UiError } from './ui-error';

export interface UiHandlerOptions {
  /** Homebridge's storage folder (the UI gives it to server.js as HOMEBRIDGE_STORAGE_PATH). */
  storagePath: string;
  log?: Log;
  /** PATH and the test hooks below; default process.env. */
  env?: NodeJS.ProcessEnv;
  /** bcrypt cost of new passwords; default 12, as flask-cam. */
  bcryptCost?: number;
}

export type UiHandler = (body: unknown) => Promise<unknown>;

export interface StatusAnswer {
  ffmpeg: { ok: true; path: string; version: string } | { ok: false; message: string };
  tools: { uvcdynctrl: boolean; 'v4l2-ctl': boolean };
  storagePath: string;
  usersFile: string;
  /** What the plugin will complain about when it starts with this config. */
  problems: string[];
  /** The id the plugin gives each camera of the config (its address, /cameras/<id>/); null for one it disables. */
  cameraIds: Array<string | null>;
  /** Where the plugin's web server listens on TCP (null: off, or on a unix socket), for links to the live page. */
  web: { port: number; tls: boolean } | null;
}

export interface PreviewAnswer {
  /** Base64 of the JPEG. */
  jpeg: string;
  at: string;
  /** `plugin`: the running plugin's snapshot (its saved settings); `source`: read from the source as the form says. */
  from: 'plugin' | 'source';
}

export interface ControlsAnswer {
  device: string;
  controls: ControlState[];
}


/** The plugin block from a request (`{ config }`); an empty block when there is none yet. */
function configOf(body: unknown): Record<string, unknown> {
  return isRecord(body) && isRecord(body.config) ? body.config : {};
}

function text(body: unknown, key: string): string {
  const value = isRecord(body) ? body[key] : undefined;
  if (typeof value !== 'string') throw new UiError('BAD_REQUEST', `"${key}" is missing.`);
  return value;
}

/**
 * The id the plugin gives the camera of the request: the `index`-th of the config's cameras (the
 * one the page shows), else the config's camera equal to it. Undefined when the plugin disables it
 * (no name, a name another camera has) or the config does not have it.
 */
function cameraIdOf(body: unknown, cameraIds: Array<string | undefined>): string | undefined {
  const index = isRecord(body) ? body.index : undefined;
  if (typeof index === 'number') return cameraIds[index];
  const cameras = configOf(body).cameras;
  const camera = isRecord(body) ? JSON.stringify(body.camera) : undefined;
  const found = Array.isArray(cameras) ? cameras.findIndex((entry) => JSON.stringify(entry) === camera) : -1;
  return found >= 0 ? cameraIds[found] : undefined;
}

/** One camera of the request, checked as the plugin checks it (`{ camera: {...} }`). */
function cameraOf(body: unknown): CameraConfig {
  const raw = isRecord(body) ? body.camera : undefined;
  if (!isRecord(raw)) throw new UiError('BAD_REQUEST', 'No camera given: add one under Settings › Cameras first.');
  const { config, problems } = normalizeConfig({ cameras: [raw] });
  const camera = config.cameras.at(0);
  if (!camera) throw new UiError('CAMERA_INVALID', problems.join(' ') || 'This camera entry is not valid.');
  return camera;
}

export function createUiHandlers(options: UiHandlerOptions): Record<string, UiHandler> {
  const env = options.env ?? process.env;
  const log = options.log ?? silentLog;
  const pathEnv = () => env.PATH ?? '';
  const controls = new Map<string, CameraControls>();
  const previews = new Map<string, Promise<Buffer>>();

  const ffmpegPath = (config: Record<string, unknown>): string => {
    const configured = typeof config.videoProcessor === 'string' && config.videoProcessor.trim() ? config.videoProcessor.trim() : undefined;
    try {
      return resolveFfmpegPath(configured, pathEnv());
    } catch (error) {
      throw new UiError('NO_FFMPEG', (error as Error).message);
    }
  };

  const usersFile = (body: unknown): string => {
    const web = configOf(body).web;
    const configured = isRecord(web) && typeof web.usersFile === 'string' ? web.usersFile : undefined;
    return usersFilePath(options.storagePath, configured);
  };

  const controlsOf = (camera: CameraConfig): { device: string; api: CameraControls } => {
    const device = controlsDeviceOf(camera);
    if (!device) {
      throw new UiError(
        'CONTROLS_NOT_CONFIGURED',
        `"${camera.name}" reads ${camera.source === 'testsrc' ? 'the test pattern' : 'a stream URL'}, not a webcam, so it has no controls to tune. Set "Controls device" (e.g. video0) under its Camera controls settings to tune a webcam here.`,
      );
    }
    const tool: ControlsToolChoice = camera.controlsTool;
    const key = `${device}|${tool}`;
    let api = controls.get(key);
    if (!api) {
      api = new CameraControls({ device, tool, config: {}, log, valuesMaxAgeMs: 0 });
      controls.set(key, api);
    }
    return { device, api };
  };

  const controlsCall = async (camera: CameraConfig, call: (api: CameraControls) => Promise<ControlState[]>): Promise<ControlsAnswer> => {
    const { device, api } = controlsOf(camera);
    try {
      return { device, controls: await call(api) };
    } catch (error) {
      if (error instanceof ControlsError) throw new UiError(error.code, error.message);
      throw error;
    }
  };

  return {
    '/status': async (body): Promise<StatusAnswer> => {
      const config = configOf(body);
      const { config: settings, problems, cameraIds } = normalizeConfig(config);
      let ffmpeg: StatusAnswer['ffmpeg'];
      try {
        const path = ffmpegPath(config);
        const info = await probeFfmpeg(path);
        ffmpeg = { ok: true, path, version: info.version };
      } catch (error) {
        ffmpeg = { ok: false, message: (error as Error).message };
      }
      return {
        ffmpeg,
        tools: { uvcdynctrl: Boolean(whichSync('uvcdynctrl', pathEnv())), 'v4l2-ctl': Boolean(whichSync('v4l2-ctl', pathEnv())) },
        storagePath: options.storagePath,
        usersFile: usersFile(body),
        problems,
        cameraIds: cameraIds.map((id) => id ?? null),
        web: settings.web.enabled && !settings.web.socket ? { port: settings.web.port, tls: Boolean(settings.web.tls) } : null,
      };
    },

    '/devices': async (body): Promise<DeviceScan> => {
      let ffmpeg: string | undefined;
      try {
        ffmpeg = ffmpegPath(configOf(body));
      } catch {
        ffmpeg = undefined;
      }
      return scanDevices({
        // Test hooks: a folder standing in for /dev (its devices are still named /dev/…) and for /sys/class/video4linux.
        devDir: env.WEBCAM_SERVER_UI_DEV_DIR,
        shownAs: env.WEBCAM_SERVER_UI_DEV_DIR ? '/dev' : undefined,
        sysDir: env.WEBCAM_SERVER_UI_SYS_DIR,
        ffmpeg,
      });
    },

    '/preview': async (body): Promise<PreviewAnswer> => {
      const camera = cameraOf(body);
      // The running plugin has the webcam open: ask it for its picture first, by the id the plugin
      // gives this camera (not the slug of its name: a second camera of the same name has none).
      const { config: settings, cameraIds } = normalizeConfig(configOf(body));
      const id = cameraIdOf(body, cameraIds);
      const fromPlugin = id === undefined ? undefined : await pluginSnapshot(options.storagePath, settings.web, id);
      if (fromPlugin) return { jpeg: fromPlugin.toString('base64'), at: new Date().toISOString(), from: 'plugin' };
      const ffmpeg = ffmpegPath(configOf(body));
      const key = JSON.stringify([ffmpeg, camera.source, camera.inputFormat, camera.width, camera.height, camera.fps]);
      let grab = previews.get(key);
      if (!grab) {
        grab = grabPreview(ffmpeg, camera).finally(() => previews.delete(key));
        previews.set(key, grab);
      }
      try {
        return { jpeg: (await grab).toString('base64'), at: new Date().toISOString(), from: 'source' };
      } catch (error) {
        if (error instanceof PreviewError) throw new UiError(error.busy ? 'PREVIEW_BUSY' : 'PREVIEW_FAILED', error.message);
        throw error;
      }
    },

    '/controls/list': async (body) => controlsCall(cameraOf(body), (api) => api.list()),

    '/controls/set': async (body) => {
      const values = isRecord(body) ? body.values : undefined;
      if (!isRecord(values)) throw new UiError('BAD_REQUEST', 'No control values given.');
      return controlsCall(cameraOf(body), (api) => api.apply(values));
    },

    '/users/list': async (body): Promise<UsersList> => listUsers(usersFile(body)),

    '/users/add': async (body) =>
      changeUser(usersFile(body), { action: 'add', name: text(body, 'name').trim(), password: text(body, 'password') }, options.bcryptCost),

    '/users/password': async (body) =>
      changeUser(usersFile(body), { action: 'password', name: text(body, 'name'), password: text(body, 'password') }, options.bcryptCost),

    '/users/delete': async (body) => changeUser(usersFile(body), { action: 'delete', name: text(body, 'name') }, options.bcryptCost),

    '/alerts/test': async (body) => {
      const config = configOf(body);
      const { alerts, problems } = normalizeAlerts(config.alerts);
      const { name } = normalizeConfig(config).config;
      if (!alerts) {
        throw new UiError(
          'ALERTS_NOT_SET_UP',
          config.alerts === undefined || problems.length === 0
            ? 'Email alerts are not set up yet: fill in AWS SES (region, sender, recipients) or SMTP under Settings › Email alerts, then try again.'
            : `Email alerts are not set up correctly: ${problems.join(' ')}`,
        );
      }
      try {
        const sent = await sendTestAlert(alerts, name);
        log.info(`Test email sent through ${sent.via} to ${sent.to.join(', ')} (message id ${sent.messageId}).`);
        return { ...sent, problems };
      } catch (error) {
        throw new UiError('ALERT_SEND_FAILED', (error as Error).message);
      }
    },
  };
}
