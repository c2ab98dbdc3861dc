// Puts the parts together for one configuration: a FrameHub per camera (each with its ffmpeg
// capture) and the web server. Both the Homebridge platform and `webcam-server serve` use it.
import { EventEmitter } from 'node:events';
import { existsSync } from 'node:fs';
import { dirname } from 'node:path';

import type { FastifyInstance } from 'fastify';

import type { AlertEvents } from './alerts/alerts';
import { AlertService } from './alerts/alerts';
import type { CameraConfig, PluginConfig } from './config';
import { controlsDeviceOf } from './config';
import { CameraControls } from './controls/camera-controls';
import type { Log } from './log';
import { prefixed } from './log';
import type { FrameSource } from './media/capture';
import { FfmpegCapture } from './media/capture';
import { buildCaptureArgs, buildScaleArgs, isHttpUrl, redactSecrets, sourceKind } from './media/capture-args';
import type { FfmpegInfo } from './media/ffmpeg';
import { findFfmpeg } from './media/ffmpeg';
import { FrameHub } from './media/frame-hub';
import type { H264Settings } from './media/h264-args';
import { H264Stage } from './media/h264-stage';
import { HttpMjpegSource } from './media/http-mjpeg-source';
import type { MotionEvent } from './media/motion';
import { MotionDetector } from './media/motion';
import { readUsersFile } from './users/users-file';
import type { WebCamera } from './web/cameras';
import { writePreviewToken } from './web/preview-token';
import { buildWebServer, listen } from './web/server';
import { whenAborted } from './util/lifetime';

export interface RuntimeOptions {
  config: PluginConfig;
  log: Log;
  /** Where the users file is (config's web.usersFile resolved by the caller). */
  usersFile: string;
  /** Override of the hubs' idle grace period (tests). */
  idleGraceMs?: number;
  /** Run motion detection for HomeKit's motion sensors on cameras that enable it (default false). */
  motion?: boolean;
  /**
   * Where state is kept (the last public IP, default: the users file's folder). Given (under
   * Homebridge), the Homebridge UI's preview token is written there too.
   */
  stateDir?: string;
  /** Test hooks for the alerts' retry timing. */
  alertRetryInitialMs?: number;
  alertRetryWindowMs?: number;
}

export interface CameraRuntime {
  config: CameraConfig;
  hub: FrameHub;
  /** The shared H.264 stage (HomeKit Secure Video, browsers' H.264 view); runs only while held. */
  h264: H264Stage;
  controls: CameraControls;
  /** Present when motion detection runs for this camera. */
  motion?: MotionDetector;
}

/**
 * The runtime's event bus, for consumers outside the media code (email alerts):
 * 'motion' (camera, MotionEvent), 'offline' (camera, reason), 'online' (camera),
 * 'login-failed' ({ ip, user, url }).
 */
export type RuntimeEvents = AlertEvents;

/** The H.264 encoder a camera uses: its `homekit.encoder` when this ffmpeg has it, else libx264. */
export function h264Encoder(camera: CameraConfig, ffmpeg: Pick<FfmpegInfo, 'encoders'>): string {
  return ffmpeg.encoders.has(camera.homekit.encoder) ? camera.homekit.encoder : 'libx264';
}

/**
 * The H.264 stage's settings until a consumer (HomeKit Secure Video) asks for others: the
 * capture's size and rate at the web view's bitrate.
 */
export function defaultStageSettings(camera: CameraConfig, encoder: string, bitrateKbps: number): H264Settings {
  return {
    width: camera.width,
    height: camera.height,
    fps: camera.fps,
    bitrateKbps,
    profile: 'main',
    level: '4.0',
    encoder,
    keyframeMs: 2_000,
    fragmentMs: 250,
  };
}

export class WebcamRuntime extends EventEmitter<RuntimeEvents> {
  readonly cameras: CameraRuntime[] = [];
  /** Aborted by stop(): the one teardown stops what start() has made, and start() makes nothing more. */
  private readonly lifetime = new AbortController();
  private readonly torndown: Promise<void>;
  app?: FastifyInstance;
  /** Where the web server listens, once started. */
  address?: string;
  ffmpeg?: FfmpegInfo;
  alerts?: AlertService;

  constructor(private readonly options: RuntimeOptions) {
    super();
    this.torndown = whenAborted(this.lifetime.signal, () => this.teardown());
  }

  /**
   * A method, not a getter: start() asks it again after each await (stop() may run meanwhile),
   * where a property read already tested would count, for the type checker, as still known.
   */
  private isStopping(): boolean {
    return this.lifetime.signal.aborted;
  }

  /** Finds ffmpeg, creates the cameras and starts the web server. Throws with a clear message. */
  async start(): Promise<void> {
    const { config, log } = this.options;
    const { fallback, ...ffmpeg } = await findFfmpeg(config.videoProcessor);
    this.ffmpeg = ffmpeg;
    if (this.isStopping()) return;
    if (fallback) log.warn(fallback);
    log.info(`Using ffmpeg ${this.ffmpeg.version} at ${this.ffmpeg.path}.`);
    for (const camera of config.cameras) {
      const hub = this.createHub(camera, this.ffmpeg);
      // Motion keeps the capture running: only where something uses it (HomeKit's motion sensor,
      // motion emails).
      const forHomeKit = Boolean(this.options.motion) && camera.homekit.enabled;
      const forAlerts = Boolean(config.alerts?.on.motion);
      const wanted = camera.motion.enabled && (forHomeKit || forAlerts);
      const motion = wanted ? new MotionDetector(hub, camera.motion, prefixed(log, camera.name)) : undefined;
      motion?.on('motion', (event: MotionEvent) => this.emit('motion', camera, event));
      hub.on('offline', (reason: string) => this.emit('offline', camera, reason));
      hub.on('online', () => this.emit('online', camera));
      // The webcam forgets its settings when unplugged: apply them at every capture start.
      const controls = new CameraControls({
        device: controlsDeviceOf(camera),
        tool: camera.controlsTool,
        config: camera.controls,
        mappingFile: camera.controlsFile,
        log: prefixed(log, camera.name),
      });
      hub.on('online', () => void controls.applyConfig());
      motion?.start();
      const h264 = new H264Stage({
        name: camera.name,
        hub,
        ffmpegPath: this.ffmpeg.path,
        settings: defaultStageSettings(camera, h264Encoder(camera, this.ffmpeg), config.web.h264.bitrate),
        log: prefixed(log, camera.name),
      });
      this.cameras.push({ config: camera, hub, h264, motion, controls });
    }

    if (config.alerts) {
      this.alerts = new AlertService({
        config: config.alerts,
        events: this,
        log: prefixed(log, 'alerts'),
        siteName: config.name,
        stateDir: this.options.stateDir ?? dirname(this.options.usersFile),
        retryInitialMs: this.options.alertRetryInitialMs,
        retryWindowMs: this.options.alertRetryWindowMs,
      });
      this.alerts.start();
    }

    if (!config.web.enabled) {
      log.info('The web server is disabled ("web.enabled": false).');
      return;
    }
    const webCameras: WebCamera[] = this.cameras.map(({ config: c, hub, h264, controls }) => ({
      id: c.id,
      name: c.name,
      width: c.width,
      height: c.height,
      fps: c.fps,
      timestamp: c.timestamp,
      hub,
      h264,
      // Only cameras with a device to tune get the controls panel and API.
      controls: controls.configured ? controls : undefined,
    }));
    // The Homebridge UI's preview reads snapshots with this, rather than opening the webcam itself
    // (only with a state folder of our own: under Homebridge, not `serve` in someone's folder).
    const { stateDir } = this.options;
    const previewToken = stateDir
      ? await writePreviewToken(stateDir).catch((error: unknown) => {
          log.debug(`No preview token for the Homebridge UI (${(error as Error).message}).`);
          return undefined;
        })
      : undefined;
    this.app = await buildWebServer({
      cameras: webCameras,
      usersFile: this.options.usersFile,
      trustedNetworks: config.web.trustedNetworks,
      siteName: config.name,
      log: prefixed(log, 'web'),
      tls: config.web.tls,
      onAuthFailure: (event) => this.emit('login-failed', event),
      maxFailedLogins: config.web.maxFailedLogins,
      lockoutMinutes: config.web.lockoutMinutes,
      trustProxy: config.web.trustProxy,
      kioskFrameAncestors: config.web.kioskFrameAncestors,
      allowedHosts: config.web.allowedHosts,
      previewToken,
    });
    if (this.isStopping()) {
      // stop() came while the server was being built: it is not this.app yet, so close it here.
      await this.app.close();
      this.app = undefined;
      return;
    }
    try {
      this.address = await listen(this.app, config.web);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      const where = config.web.socket ?? `${config.web.host}:${config.web.port}`;
      const socketFolder = config.web.socket ? dirname(config.web.socket) : undefined;
      const hint =
        socketFolder && !existsSync(socketFolder)
          ? `the folder ${socketFolder} of "web.socket" does not exist: create it (mkdir -p ${socketFolder}) or choose a socket path in an existing folder`
          : code === 'EADDRINUSE'
          ? `something else already listens on ${where}: stop it or set "web.port" to a free port`
          : code === 'EACCES'
            ? config.web.socket
              ? `no permission to create the socket ${where}: let the user running this write to ${socketFolder}, or choose another path`
              : `no permission to listen on ${where}: use a port above 1023`
            : (error as Error).message;
      await this.app.close();
      this.app = undefined;
      throw new Error(`The web server could not start: ${hint}.`, { cause: error });
    }
    log.info(`Web server listening on ${this.address} (users file ${this.options.usersFile}).`);
    await this.warnIfNoUsers();
  }

  /** Every request is refused while the users file is empty: say so, and how to fix it. */
  private async warnIfNoUsers(): Promise<void> {
    const { usersFile } = this.options;
    const { users, problems } = await readUsersFile(usersFile).catch((error: unknown) => ({ users: new Map(), problems: [(error as Error).message] }));
    if (users.size > 0) return;
    const why = problems.length > 0 ? `has no readable user (${problems[0]})` : 'has no users yet';
    this.options.log.warn(
      `The users file ${usersFile} ${why}: every request is refused. Add one with: webcam-server passwd -a -u NAME -f ${usersFile}` +
        (this.options.config.web.trustedNetworks.length > 0 ? ' (trusted networks still get in).' : ''),
    );
  }

  /** Stops the web server and every capture; safe to call during or after start(), and more than once. */
  stop(): Promise<void> {
    this.lifetime.abort();
    return this.torndown;
  }

  private async teardown(): Promise<void> {
    this.alerts?.stop();
    for (const { motion } of this.cameras) motion?.stop();
    await this.app?.close();
    await Promise.all(this.cameras.map(({ h264 }) => h264.close()));
    await Promise.all(this.cameras.map(({ hub }) => hub.close()));
  }

  private createHub(camera: CameraConfig, ffmpeg: FfmpegInfo): FrameHub {
    const log = prefixed(this.options.log, camera.name);
    if (sourceKind(camera.source) === 'device' && !existsSync(camera.source)) {
      log.warn(
        `${camera.source} does not exist: is the webcam plugged in? (ls /dev/video* lists devices.) ` +
          'The camera will keep retrying and comes online when the device appears.',
      );
    }
    const args = buildCaptureArgs(camera);
    const url = sourceKind(camera.source) === 'url';
    // A stream's frames come at its own rate: more than the camera's fps are dropped.
    const ffmpegCapture = () => new FfmpegCapture(ffmpeg.path, args, camera.source, url ? { maxFps: camera.fps } : {});
    let createSource: () => FrameSource = ffmpegCapture;
    if (isHttpUrl(camera.source)) {
      // Read in Node: the credentials stay out of ffmpeg's arguments, MJPEG of the right size is
      // passed through; ffmpeg reads the address only when the answer is not multipart MJPEG.
      const scaleArgs = buildScaleArgs(camera);
      log.debug(
        redactSecrets(
          `Reading ${camera.source} as MJPEG (frames of other sizes scaled with: ${ffmpeg.path} ${scaleArgs.join(' ')}; ` +
            `another format is read with: ${ffmpeg.path} ${args.join(' ')})`,
        ),
      );
      createSource = () =>
        new HttpMjpegSource({
          url: camera.source,
          width: camera.width,
          height: camera.height,
          maxFps: camera.fps,
          ffmpegPath: ffmpeg.path,
          scaleArgs,
          fallback: ffmpegCapture,
          log,
        });
    } else {
      log.debug(redactSecrets(`Capture command: ${ffmpeg.path} ${args.join(' ')}`));
    }
    return new FrameHub({
      name: camera.name,
      log,
      createSource,
      idleGraceMs: this.options.idleGraceMs,
    });
  }
}
