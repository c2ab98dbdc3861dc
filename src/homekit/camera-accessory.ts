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
import type { AudioCodecName } from './stream-policy';
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

    // The H.264 encoder must exist in this ffmpeg, or every stream would fail.
    let encoder = camera.homekit.encoder;
    if (!options.ffmpeg.encoders.has(encoder)) {
      log.warn(`${options.ffmpeg.path} has no "${encoder}" encoder: using libx264. (ffmpeg -encoders lists what it has.)`);
      encoder = 'libx264';
    }
    // Sound: OPUS when ffmpeg has libopus (Debian's does), AAC-ELD when it has libfdk_aac
    // (ffmpeg-for-homebridge's does); the Home app picks one of those offered.
    const audioCodecs: AudioCodecName[] = [];
    if (camera.audio.enabled) {
      if (options.ffmpeg.encoders.has('libopus')) audioCodecs.push('opus');
      if (options.ffmpeg.encoders.has('libfdk_aac')) audioCodecs.push('aac-eld');
      if (audioCodecs.length === 0) log.warn(`Sound is on, but ${options.ffmpeg.path} has neither libopus nor libfdk_aac: streams stay silent.`);
    }
    const audio = audioCodecs.length > 0;
    this.delegate = new WebcamStreamingDelegate({
      hap,
      camera: { ...camera, homekit: { ...camera.homekit, encoder } },
      hub,
      snapshotter: new Snapshotter(hub),
      ffmpegPath: options.ffmpeg.path,
      audioCodecs,
      log,
    });
    const controller = new hap.CameraController({
      cameraStreamCount: camera.homekit.maxStreams,
      delegate: this.delegate,
      streamingOptions: {
        supportedCryptoSuites: [hap.SRTPCryptoSuites.AES_CM_128_HMAC_SHA1_80],
        video: {
          // The very list the delegate keeps every request inside.
          resolutions: this.delegate.resolutions.map(([width, height, fps]) => [width, height, fps]),
          codec: {
            profiles: [hap.H264Profile.BASELINE, hap.H264Profile.MAIN, hap.H264Profile.HIGH],
            levels: [hap.H264Level.LEVEL3_1, hap.H264Level.LEVEL3_2, hap.H264Level.LEVEL4_0],
          },
        },
        audio: audio
          ? {
              codecs: audioCodecs.map((codec) => ({
                type: codec === 'opus' ? hap.AudioStreamingCodecType.OPUS : hap.AudioStreamingCodecType.AAC_ELD,
                samplerate: [hap.AudioStreamingSamplerate.KHZ_16, hap.AudioStreamingSamplerate.KHZ_24],
              })),
            }
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
    } else {
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

    // Last, so a failure above leaves nothing running: the warm encoder (silent cameras).
    this.delegate.start();
  }

  async stop(): Promise<void> {
    this.options.motion?.off('motion', this.onMotion);
    this.options.motion?.off('clear', this.onClear);
    await this.delegate.stopAll();
  }
}
