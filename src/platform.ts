// The Homebridge dynamic platform `WebcamServer`: reads the config, starts the cameras and the
// web server once Homebridge has launched, publishes one HomeKit camera per configured camera
// (unbridged by default, as Apple recommends for cameras), and stops everything (every ffmpeg
// included) on shutdown. The pieces live elsewhere; this file only wires them together.
import type { API, DynamicPlatformPlugin, Logging, PlatformAccessory, PlatformConfig } from 'homebridge';

import type { CameraConfig, PluginConfig } from './config';
import { normalizeConfig } from './config';
import { CameraAccessory, cameraUuid } from './homekit/camera-accessory';
import { prefixed } from './log';
import { WebcamRuntime } from './runtime';
import { PLATFORM_NAME, PLUGIN_NAME, pluginStorageDir, usersFilePath } from './settings';
import { whenAborted } from './util/lifetime';

export class WebcamServerPlatform implements DynamicPlatformPlugin {
  /** Bridged accessories Homebridge restored from its cache, by UUID. */
  private readonly cached = new Map<string, PlatformAccessory>();
  private readonly accessories: CameraAccessory[] = [];
  private runtime?: WebcamRuntime;
  /** Aborted when Homebridge shuts down: cameras are no longer published after it. */
  private readonly lifetime = new AbortController();

  constructor(
    private readonly log: Logging,
    platformConfig: PlatformConfig | undefined,
    private readonly api: API,
  ) {
    if (!platformConfig) {
      this.log.info('No config for this platform: nothing to start.');
      return;
    }
    const { config, problems } = normalizeConfig(platformConfig);
    for (const problem of problems) this.log.warn(`Config: ${problem}`);
    if (config.cameras.length === 0) {
      this.log.warn('No usable camera configured: add one under "cameras" in the plugin settings.');
    }
    // Relative paths are taken inside the Homebridge storage folder, the only place we write.
    const usersFile = usersFilePath(this.api.user.storagePath(), config.web.usersFile);
    const stateDir = pluginStorageDir(this.api.user.storagePath());
    const runtime = new WebcamRuntime({ config, log: this.log, usersFile, motion: true, stateDir });
    this.runtime = runtime;

    this.api.on('didFinishLaunching', () => {
      if (config.cameras.length === 0) {
        this.publishCameras(config); // only removes cached cameras that are gone
        return;
      }
      runtime
        .start()
        .catch((error: unknown) => {
          // Never take Homebridge down: say what is wrong and keep the bridge running.
          this.log.error(`Could not start: ${(error as Error).message}`);
        })
        .then(() => {
          if (!this.lifetime.signal.aborted) this.publishCameras(config);
        })
        .catch((error: unknown) => this.log.error(`Could not publish the cameras to HomeKit: ${(error as Error).message}`));
    });
    void whenAborted(this.lifetime.signal, () =>
      Promise.all(this.accessories.map((a) => a.stop()))
        .then(() => runtime.stop())
        .catch((error: unknown) => this.log.error(`Error while stopping: ${(error as Error).message}`)),
    );
    this.api.on('shutdown', () => this.lifetime.abort());
  }

  /** Homebridge hands back each cached (bridged) accessory before didFinishLaunching. */
  configureAccessory(accessory: PlatformAccessory): void {
    this.cached.set(accessory.UUID, accessory);
  }

  private publishCameras(config: PluginConfig): void {
    const runtime = this.runtime;
    const ffmpeg = runtime?.ffmpeg;
    // Every configured bridged camera keeps its cached accessory, also when it cannot start this
    // time (ffmpeg missing, say): removing it would lose its room and automations in the Home app.
    const keep = new Set(config.cameras.filter((c) => c.homekit.enabled && !c.homekit.unbridge).map((c) => cameraUuid(this.api, c)));
    for (const camera of runtime?.cameras ?? []) {
      if (!camera.config.homekit.enabled || !ffmpeg) continue;
      try {
        const uuid = cameraUuid(this.api, camera.config);
        const accessory = this.accessoryFor(camera.config, uuid);
        this.accessories.push(
          new CameraAccessory({
            api: this.api,
            accessory,
            camera: camera.config,
            hub: camera.hub,
            h264: camera.h264,
            ffmpeg,
            motion: camera.motion,
            log: prefixed(this.log, camera.config.name),
          }),
        );
        if (camera.config.homekit.unbridge) {
          this.api.publishExternalAccessories(PLUGIN_NAME, [accessory]);
          this.log.info(`[${camera.config.name}] Published as its own HomeKit accessory: add it in the Home app with the bridge's PIN.`);
        } else if (!this.cached.has(uuid)) {
          this.api.registerPlatformAccessories(PLUGIN_NAME, PLATFORM_NAME, [accessory]);
          this.log.info(`[${camera.config.name}] Added to the bridge.`);
        } else {
          this.api.updatePlatformAccessories([accessory]);
        }
      } catch (error) {
        this.log.error(`[${camera.config.name}] Could not set up the HomeKit camera: ${(error as Error).message}`);
      }
    }
    // Cached bridged cameras that are no longer configured (or now unbridged) go away.
    const stale = [...this.cached.values()].filter((accessory) => !keep.has(accessory.UUID));
    if (stale.length > 0) {
      this.api.unregisterPlatformAccessories(PLUGIN_NAME, PLATFORM_NAME, stale);
      this.log.info(`Removed ${stale.length} camera(s) no longer in the config from the bridge.`);
    }
  }

  private accessoryFor(camera: CameraConfig, uuid: string): PlatformAccessory {
    if (!camera.homekit.unbridge) {
      const cached = this.cached.get(uuid);
      if (cached) return cached;
    }
    return new this.api.platformAccessory(camera.name, uuid, this.api.hap.Categories.CAMERA);
  }
}
