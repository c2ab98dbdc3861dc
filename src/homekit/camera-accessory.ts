// One camera as a HomeKit accessory: AccessoryInformation, a CameraController (snapshots and
// live streams through WebcamStreamingDelegate, HomeKit Secure Video through
// WebcamRecordingDelegate on the shared H.264 stage) and a MotionSensor that follows the camera's
// motion detector and triggers recordings. It knows the FrameHub, the H.264 stage and the
// Snapshotter, never the capture's ffmpeg.
import { readFileSync } from 'node:fs';

import type { API, CameraController, PlatformAccessory, Service } from 'homebridge';

import type { CameraConfig } from '../config';
import { controlsDeviceOf } from '../config';
import type { Log } from '../log';
import type { FfmpegInfo } from '../media/ffmpeg';
import type { FrameHub } from '../media/frame-hub';
import type { H264Stage } from '../media/h264-stage';
import type { MotionDetector } from '../media/motion';
import { Snapshotter } from '../media/snapshot';
import { PLUGIN_NAME } from '../settings';
import { recordingOptions, WebcamRecordingDelegate } from './recording-delegate';
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
  /** The camera's shared H.264 stage (HomeKit Secure Video records from it). */
  h264: H264Stage;
  ffmpeg: FfmpegInfo;
  motion?: MotionDetector;
  log: Log;
}

export class CameraAccessory {
  readonly delegate: WebcamStreamingDelegate;
  /** Present when the camera offers HomeKit Secure Video. */
  readonly recording?: WebcamRecordingDelegate;
  private controller?: CameraController;
  private readonly onMotion: () => void;
  private readonly onClear: () => void;

  constructor(private readonly options: CameraAccessoryOptions) {
    const { api, accessory, camera, hub, log } = options;
    const { hap } = api;

    const model = deviceCardName(camera) ?? (camera.source === 'testsrc' ? 'Test pattern' : camera.source.startsWith('/dev/') ? 'USB webcam' : 'Network stream');
    // Homebridge gives every accessory this service; added here should one ever lack it.
    (accessory.getService(hap.Service.AccessoryInformation) ?? accessory.addService(hap.Service.AccessoryInformation))
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
    // The motion sensor: present while motion detection is on, removed when it is switched off.
    // It is also what makes the home hub record (HomeKit Secure Video's trigger).
    const existing = accessory.getService(hap.Service.MotionSensor);
    const motion = options.motion;
    let sensor: Service | undefined;
    if (!motion) {
      if (existing) accessory.removeService(existing);
      this.onMotion = this.onClear = () => {};
    } else {
      sensor = existing ?? accessory.addService(hap.Service.MotionSensor, `${camera.name} Motion`);
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

    // HomeKit Secure Video: offered when enabled and something can trigger it (motion).
    if (camera.homekit.recording.enabled && !sensor) {
      log.info('HomeKit Secure Video is not offered: it records on motion, and motion detection is off for this camera.');
    }
    const capture = { width: camera.width, height: camera.height, fps: camera.fps };
    const recordingAudio = (): boolean =>
      Boolean(this.controller?.recordingManagement?.recordingManagementService.getCharacteristic(hap.Characteristic.RecordingAudioActive).value);
    if (camera.homekit.recording.enabled && sensor) {
      this.recording = new WebcamRecordingDelegate({
        hap,
        stage: options.h264,
        capture,
        encoder,
        audioSource: camera.audio.enabled && options.ffmpeg.encoders.has('aac') ? camera.audio.source : undefined,
        audioActive: recordingAudio,
        log,
      });
    }

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
      ...(this.recording && sensor
        ? { recording: { options: recordingOptions(hap, capture), delegate: this.recording }, sensors: { motion: sensor } }
        : {}),
    });
    this.controller = controller;
    this.delegate.controller = controller;
    accessory.configureController(controller);
    if (this.recording) this.followRecordingSwitches(controller, this.recording);

    // Last, so a failure above leaves nothing running: the warm encoder (silent cameras).
    this.delegate.start();
  }

  async stop(): Promise<void> {
    this.options.motion?.off('motion', this.onMotion);
    this.options.motion?.off('clear', this.onClear);
    this.recording?.stop();
    await this.delegate.stopAll();
  }

  /**
   * The Home app's switches beyond what HAP tells the delegate: the camera on or off (no
   * prebuffer while off), sound in recordings, and recording Active itself, whose changes HAP
   * stops reporting after an unpair and re-pair in one process.
   */
  private followRecordingSwitches(controller: CameraController, recording: WebcamRecordingDelegate): void {
    const { hap } = this.options.api;
    const management = controller.recordingManagement;
    if (!management) return;
    const cameraActive = management.operatingModeService.getCharacteristic(hap.Characteristic.HomeKitCameraActive);
    recording.setCameraActive(Boolean(cameraActive.value));
    cameraActive.on('change', ({ newValue }) => recording.setCameraActive(Boolean(newValue)));
    management.recordingManagementService
      .getCharacteristic(hap.Characteristic.RecordingAudioActive)
      .on('change', () => recording.audioActiveChanged());
    management.recordingManagementService
      .getCharacteristic(hap.Characteristic.Active)
      .on('change', ({ newValue }) => recording.updateRecordingActive(Boolean(newValue)));
  }
}
