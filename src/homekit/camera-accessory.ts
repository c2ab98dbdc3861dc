// One camera as a HomeKit accessory: AccessoryInformation, a CameraController (snapshots and
// live streams through WebcamStreamingDelegate) and a MotionSensor that follows the camera's
// motion detector. It knows the FrameHub and the Snapshotter, never the capture's ffmpeg.
import { readFileSync } from 'node:fs';

import type { API, PlatformAccessory } from 'homebridge';

import type { CameraConfig } from '../config';
import { controlsDeviceOf } from '../config';
import type { Log } from '../log';
import type { FfmpegInfo } from '../media/ffmpeg';
import type { FrameHub } from '../media/frame-hub';
import type { MotionDetector } from '../media/motion';
import { Snapshotter } from '../media/snapshot';
import { PLUGIN_NAME } from '../settings';
import { supportedResolutions } from './stream-policy';
import { WebcamStreamingDelegate } from './streaming-delegate';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { version } = require('../../package.json') as { version: string };

/** The stable HomeKit id of a camera: from the plugin name and the camera's slug. */
export function cameraUuid(api: API, camera: CameraConfig): string {
  return api.hap.uuid.generate(`${PLUGIN_NAME}:${camera.id}`);
}

/** The webcam's own name from sysfs (e.g. "HD Pro Webcam C920"), when the source is a device. */
export function deviceCardName(camera: CameraConfig, sysfs = '/sys/class/video4linux'): string | undefined {
  const device = controlsDeviceOf(camera);
  if (!device) return undefined;
  try {
    return readFileSync(`${sysfs}/${device}/name`, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

export interface CameraAccessoryOptions {
  api: API;
  accessory: PlatformAccessory;
  camera: CameraConfig;
  hub: FrameHub;
  ffmpeg: FfmpegInfo;
  motion?: MotionDetector;
  log: Log;
}

export class CameraAccessory {
  readonly delegate: WebcamStreamingDelegate;
  private readonly onMotion: () => void;
  private readonly onClear: () => void;

  constructor(private readonly options: CameraAccessoryOptions) {
    const { api, accessory, camera, hub, log } = options;
    const { hap } = api;

    const model = deviceCardName(camera) ?? (camera.source === 'testsrc' ? 'Test pattern' : camera.source.startsWith('/dev/') ? 'USB webcam' : 'Network stream');
    accessory
      .getService(hap.Service.AccessoryInformation)!
      .setCharacteristic(hap.Characteristic.Manufacturer, 'Webcam Server')
      .setCharacteristic(hap.Characteristic.Model, model.slice(0, 64))
      .setCharacteristic(hap.Characteristic.SerialNumber, camera.id.slice(0, 64))
      .setCharacteristic(hap.Characteristic.FirmwareRevision, version);

    // Sound: OPUS, which HomeKit accepts and Debian's ffmpeg encodes (AAC-ELD needs libfdk_aac).
    const audio = camera.audio.enabled && options.ffmpeg.encoders.has('libopus');
    if (camera.audio.enabled && !audio) {
      log.warn(`Sound is on, but ${options.ffmpeg.path} has no libopus encoder: streams stay silent. Install an ffmpeg with libopus (Debian's has it).`);
    }
    this.delegate = new WebcamStreamingDelegate({
      hap,
      camera,
      hub,
      snapshotter: new Snapshotter(hub),
      ffmpegPath: options.ffmpeg.path,
      audio,
      log,
    });
    const controller = new hap.CameraController({
      cameraStreamCount: camera.homekit.maxStreams,
      delegate: this.delegate,
      streamingOptions: {
        supportedCryptoSuites: [hap.SRTPCryptoSuites.AES_CM_128_HMAC_SHA1_80],
        video: {
          resolutions: supportedResolutions(camera),
          codec: {
            profiles: [hap.H264Profile.BASELINE, hap.H264Profile.MAIN, hap.H264Profile.HIGH],
            levels: [hap.H264Level.LEVEL3_1, hap.H264Level.LEVEL3_2, hap.H264Level.LEVEL4_0],
          },
        },
        audio: audio
          ? { codecs: [{ type: hap.AudioStreamingCodecType.OPUS, samplerate: [hap.AudioStreamingSamplerate.KHZ_16, hap.AudioStreamingSamplerate.KHZ_24] }] }
          : undefined,
      },
    });
    this.delegate.controller = controller;
    accessory.configureController(controller);

    // The motion sensor: present while motion detection is on, removed when it is switched off.
    const existing = accessory.getService(hap.Service.MotionSensor);
    const motion = options.motion;
    if (!motion) {
      if (existing) accessory.removeService(existing);
      this.onMotion = this.onClear = () => {};
      return;
    }
    const sensor = existing ?? accessory.addService(hap.Service.MotionSensor, `${camera.name} Motion`);
    const detected = sensor.getCharacteristic(hap.Characteristic.MotionDetected);
    detected.onGet(() => motion.detected);
    // The detector runs before the accessory exists: start from its state, not from a stale false.
    detected.updateValue(motion.detected);
    this.onMotion = () => {
      log.info('Motion detected.');
      detected.updateValue(true);
    };
    this.onClear = () => detected.updateValue(false);
    motion.on('motion', this.onMotion);
    motion.on('clear', this.onClear);
  }

  async stop(): Promise<void> {
    this.options.motion?.off('motion', this.onMotion);
    this.options.motion?.off('clear', this.onClear);
    await this.delegate.stopAll();
  }
}
