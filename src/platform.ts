// The Homebridge dynamic platform `WebcamServer`: reads the config, starts the cameras and the
// web server once Homebridge has launched, and stops them (and every ffmpeg) on shutdown.
// HomeKit accessories join in the HomeKit issue; this file only wires parts together.
import { join, resolve } from 'node:path';

import type { API, DynamicPlatformPlugin, Logging, PlatformAccessory, PlatformConfig } from 'homebridge';

import { normalizeConfig } from './config';
import { WebcamRuntime } from './runtime';

export class WebcamServerPlatform implements DynamicPlatformPlugin {
  private readonly cachedAccessories: PlatformAccessory[] = [];
  private runtime?: WebcamRuntime;

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
      return;
    }
    // Relative paths are taken inside the Homebridge storage folder, the only place we write.
    const usersFile = resolve(this.api.user.storagePath(), config.web.usersFile ?? join('webcam-server', 'users'));
    this.runtime = new WebcamRuntime({ config, log: this.log, usersFile });

    this.api.on('didFinishLaunching', () => {
      this.runtime?.start().catch((error: Error) => {
        // Never take Homebridge down: say what is wrong and keep the bridge running.
        this.log.error(`Could not start: ${error.message}`);
      });
    });
    this.api.on('shutdown', () => {
      this.runtime?.stop().catch((error: Error) => this.log.error(`Error while stopping: ${error.message}`));
    });
  }

  configureAccessory(accessory: PlatformAccessory): void {
    this.cachedAccessories.push(accessory);
  }
}
