// HomeKit Secure Video for one camera: HAP-NodeJS's CameraRecordingDelegate on the camera's
// shared H.264 stage. While the Home app has recording on (and the camera on), the stage runs
// and its ring buffer holds the prebuffer; when the home hub opens a recording stream (on motion),
// it gets the init segment, then the prebuffer from a key frame, then live fragments, packed so
// each packet is one moof + mdat starting with a key frame (the stage's 250 ms fragments of a GOP
// merged), until the hub closes the stream. Nothing here spawns: the stage owns the encoder.
import type { CameraRecordingConfiguration, CameraRecordingDelegate, CameraRecordingOptions, HAP, RecordingPacket } from 'homebridge';

import type { Log } from '../log';
import { mergeFragments, trackDefaults } from '../media/fmp4-merge';
import type { H264Stage } from '../media/h264-stage';
import type { SelectedRecording } from './recording-policy';
import { FRAGMENT_MS, FragmentPacker, PREBUFFER_MS, RECORDING_SAMPLE_RATES, recordingResolutions, stageSettingsFor } from './recording-policy';

export interface RecordingDelegateOptions {
  hap: HAP;
  stage: H264Stage;
  capture: { width: number; height: number; fps: number };
  /** The H.264 encoder (checked against ffmpeg by the caller). */
  encoder: string;
  /** The camera's sound source when recordings may carry sound (camera audio on and ffmpeg has `aac`). */
  audioSource?: string;
  log: Log;
  /** Whether the Home app allows sound in recordings now (RecordingAudioActive). */
  audioActive: () => boolean;
}

/** The options HAP advertises for recordings (205/206/207). */
export function recordingOptions(hap: HAP, capture: { width: number; height: number; fps: number }): CameraRecordingOptions {
  return {
    prebufferLength: PREBUFFER_MS,
    mediaContainerConfiguration: [{ type: hap.MediaContainerType.FRAGMENTED_MP4, fragmentLength: FRAGMENT_MS }],
    video: {
      type: hap.VideoCodecType.H264,
      parameters: {
        profiles: [hap.H264Profile.BASELINE, hap.H264Profile.MAIN, hap.H264Profile.HIGH],
        levels: [hap.H264Level.LEVEL3_1, hap.H264Level.LEVEL3_2, hap.H264Level.LEVEL4_0],
      },
      resolutions: recordingResolutions(capture),
    },
    audio: {
      codecs: [
        {
          type: hap.AudioRecordingCodecType.AAC_LC,
          audioChannels: 1,
          samplerate: [hap.AudioRecordingSamplerate.KHZ_16, hap.AudioRecordingSamplerate.KHZ_24, hap.AudioRecordingSamplerate.KHZ_32],
        },
      ],
    },
  };
}

/** HAP's selected configuration in the policy's terms. */
export function selectedRecording(configuration: CameraRecordingConfiguration, audio?: { source: string }): SelectedRecording {
  const [width, height, fps] = configuration.videoCodec.resolution;
  const { parameters } = configuration.videoCodec;
  const sampleRateHz = RECORDING_SAMPLE_RATES[configuration.audioCodec.samplerate] ?? 16_000;
  return {
    prebufferLength: configuration.prebufferLength,
    fragmentLength: configuration.mediaContainerConfiguration.fragmentLength,
    width,
    height,
    fps,
    profile: parameters.profile,
    level: parameters.level,
    bitrate: parameters.bitRate,
    iFrameInterval: parameters.iFrameInterval,
    audio: audio && {
      source: audio.source,
      sampleRateHz,
      bitrateKbps: Math.max(16, Math.min(configuration.audioCodec.bitrate || 32, 128)),
      channels: Math.max(1, configuration.audioCodec.audioChannels ?? 1),
    },
  };
}

export class WebcamRecordingDelegate implements CameraRecordingDelegate {
  private active = false;
  private cameraOn = true;
  private configuration?: CameraRecordingConfiguration;
  /** Lets go of the stage (the prebuffer stops) when recording is off or the camera is off. */
  private release?: () => void;
  /** Open recording streams, by HAP's stream id: aborting one ends its generator. */
  private readonly streams = new Map<number, AbortController>();
  /** Aborted by stop() (Homebridge shutting down): no recording after it. */
  private readonly lifetime = new AbortController();

  constructor(private readonly options: RecordingDelegateOptions) {}

  /** Recording on or off in the Home app (also called at start with the persisted state). */
  updateRecordingActive(active: boolean): void {
    if (active === this.active) return;
    this.active = active;
    this.options.log.info(`HomeKit Secure Video recording ${active ? 'on' : 'off'}.`);
    this.apply();
  }

  /** The hub's selected configuration; applies to the next stream (a running one keeps its own). */
  updateRecordingConfiguration(configuration: CameraRecordingConfiguration | undefined): void {
    this.configuration = configuration;
    if (configuration) {
      const [width, height, fps] = configuration.videoCodec.resolution;
      this.options.log.debug(`Recording configuration: ${width}x${height} at ${fps} fps, ${configuration.videoCodec.parameters.bitRate} kbit/s.`);
    }
    this.apply();
  }

  /** HomeKitCameraActive: a camera switched off in the Home app keeps no prebuffer. */
  setCameraActive(on: boolean): void {
    if (on === this.cameraOn) return;
    this.cameraOn = on;
    if (!on) for (const stream of this.streams.values()) stream.abort();
    this.apply();
  }

  /** Sound in recordings switched in the Home app: the stage is rebuilt with or without it. */
  audioActiveChanged(): void {
    this.apply();
  }

  async *handleRecordingStreamRequest(streamId: number, signal?: AbortSignal): AsyncGenerator<RecordingPacket> {
    const { stage, log } = this.options;
    const configuration = this.configuration;
    if (!configuration || this.lifetime.signal.aborted) throw new Error('no recording configuration selected');
    const abort = new AbortController();
    this.streams.set(streamId, abort);
    const onAbort = () => abort.abort();
    signal?.addEventListener('abort', onAbort, { once: true });
    const fragmentLength = configuration.mediaContainerConfiguration.fragmentLength || FRAGMENT_MS;
    // Recording may be on in HAP without us having heard of it (after an unpair and re-pair HAP
    // does not call updateRecordingActive again): the stage then starts now, with this selection.
    if (!this.release) stage.configure(stageSettingsFor(selectedRecording(configuration, this.audioFor()), this.options.capture, this.options.encoder));
    let packer: FragmentPacker | undefined;
    let inits = 0;
    let packets = 0;
    log.info(`Recording stream ${streamId} opened by the home hub.`);
    try {
      for await (const item of stage.read({ backMs: configuration.prebufferLength || PREBUFFER_MS, signal: abort.signal })) {
        if (item.type === 'init') {
          // A new encoder mid-stream (it died and came back): its fragments cannot follow the
          // old init segment in one recording. End this one; the hub opens the next.
          if (++inits > 1) break;
          // A packet is one moof + mdat: the stage's small fragments of a GOP are merged into one.
          const defaults = trackDefaults(item.init.data);
          packer = new FragmentPacker(fragmentLength, (parts) => mergeFragments(parts, defaults));
          yield { data: item.init.data, isLast: false };
          continue;
        }
        if (!packer) continue;
        // HomeKit wants moof + mdat alone: the prft the stage writes for live viewers stays out.
        const fragment = item.fragment;
        for (const packet of packer.push({ ...fragment, data: fragment.data.subarray(fragment.moofOffset) })) {
          packets++;
          yield { data: packet.data, isLast: false };
        }
      }
    } finally {
      signal?.removeEventListener('abort', onAbort);
      this.streams.delete(streamId);
      log.info(`Recording stream ${streamId} ended after ${packets} fragment(s).`);
      // A configuration selected meanwhile takes effect now.
      this.apply();
    }
  }

  acknowledgeStream(streamId: number): void {
    this.closeRecordingStream(streamId);
  }

  closeRecordingStream(streamId: number, reason?: number): void {
    const stream = this.streams.get(streamId);
    if (!stream) return;
    if (reason !== undefined && reason !== 0) this.options.log.debug(`The home hub closed recording stream ${streamId} (reason ${reason}).`);
    stream.abort();
  }

  /** Ends every stream and lets go of the stage (Homebridge shutting down). */
  stop(): void {
    this.lifetime.abort();
    for (const stream of this.streams.values()) stream.abort();
    this.release?.();
    this.release = undefined;
  }

  /** The sound a recording carries now: the camera's, while the Home app allows sound in recordings. */
  private audioFor(): { source: string } | undefined {
    const { audioSource } = this.options;
    return audioSource && this.options.audioActive() ? { source: audioSource } : undefined;
  }

  /** Holds the stage with the selected settings while recording is on, the camera is on and a configuration is selected. */
  private apply(): void {
    const { stage, capture, encoder, log } = this.options;
    const configuration = this.configuration;
    const wanted = this.active && this.cameraOn && !this.lifetime.signal.aborted;
    if (!wanted || configuration === undefined) {
      if (this.release) log.debug('Recording prebuffer stopped.');
      this.release?.();
      this.release = undefined;
      return;
    }
    // A running stream keeps the settings it started with (HAP's rule); new ones wait for its end.
    if (this.streams.size === 0) stage.configure(stageSettingsFor(selectedRecording(configuration, this.audioFor()), capture, encoder));
    if (!this.release) {
      this.release = stage.hold();
      log.debug('Recording prebuffer started.');
    }
  }
}
