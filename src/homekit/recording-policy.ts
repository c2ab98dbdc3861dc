// Pure policy for HomeKit Secure Video: what the camera offers the home hub (fragmented MP4,
// 4 s fragments, a 4 s prebuffer, H.264 at the profiles and levels offered for live streams,
// sizes up to the capture's, AAC-LC sound), what the hub's selection means for the shared H.264
// stage, and how the stage's small fragments are packed into the packets HomeKit wants: each
// starting with a key frame and no longer than the selected fragment length.
import type { H264Settings } from '../media/h264-args';
import { h264Names, supportedResolutions } from './stream-policy';

/** HomeKit's usual numbers: a 4 s prebuffer, 4 s fragments. */
export const PREBUFFER_MS = 4_000;
export const FRAGMENT_MS = 4_000;

/** The sizes to offer for recordings: the live-stream list, each at 15 fps and at the capture's rate (up to 30). */
export function recordingResolutions(capture: { width: number; height: number; fps: number }): Array<[number, number, number]> {
  const result: Array<[number, number, number]> = [];
  const seen = new Set<string>();
  for (const [width, height] of supportedResolutions(capture)) {
    for (const fps of [Math.min(30, capture.fps), Math.min(15, capture.fps)]) {
      const key = `${width}x${height}@${fps}`;
      if (seen.has(key)) continue;
      seen.add(key);
      result.push([width, height, fps]);
    }
  }
  return result;
}

/** HAP's numbers for the selected recording configuration (as CameraRecordingConfiguration carries them). */
export interface SelectedRecording {
  prebufferLength: number;
  fragmentLength: number;
  width: number;
  height: number;
  fps: number;
  /** HAP H264Profile / H264Level numbers. */
  profile: number;
  level: number;
  /** kbit/s */
  bitrate: number;
  /** Milliseconds between key frames the hub asked for. */
  iFrameInterval: number;
  /** Sound, when the camera records it (RecordingAudioActive) and ffmpeg can encode it. */
  audio?: { sampleRateHz: number; bitrateKbps: number; channels: number; source: string };
}

/** HAP's AudioRecordingSamplerate numbers (KHZ_8 .. KHZ_48) in Hz. */
export const RECORDING_SAMPLE_RATES = [8_000, 16_000, 24_000, 32_000, 44_100, 48_000];

/**
 * What the H.264 stage runs for a selected recording: the hub's size, rate, profile and bitrate
 * (never above the capture), a key frame at least every fragment so every packet can start with
 * one, and fragments cut every 250 ms so live viewers of the same stage wait less.
 */
export function stageSettingsFor(selected: SelectedRecording, capture: { width: number; height: number; fps: number }, encoder: string): H264Settings {
  const { profile, level } = h264Names(selected.profile, selected.level);
  const scale = Math.min(1, capture.width / selected.width, capture.height / selected.height);
  const even = (n: number) => Math.max(2, Math.floor(n / 2) * 2);
  return {
    width: even(selected.width * scale),
    height: even(selected.height * scale),
    fps: Math.max(1, Math.min(selected.fps, capture.fps)),
    bitrateKbps: Math.max(100, Math.min(selected.bitrate || 2_000, 8_000)),
    profile,
    level,
    encoder,
    keyframeMs: Math.max(500, Math.min(selected.iFrameInterval || FRAGMENT_MS, selected.fragmentLength || FRAGMENT_MS)),
    fragmentMs: 250,
    audio: selected.audio,
  };
}

/** A packet for HomeKit: the bytes of one or more fragments, starting with a key frame. */
export interface PackedFragment {
  data: Buffer;
  durationMs: number;
}

/**
 * Packs the stage's fragments into HomeKit's: a packet starts at a key frame and closes when the
 * next key frame comes or when one more fragment would pass `maxMs`. Fragments before the first
 * key frame are dropped (a decoder cannot start there). `join` makes one packet of the fragments
 * it holds: HomeKit wants a single moof + mdat (the delegate passes `mergeFragments`); the default
 * only concatenates them.
 */
export class FragmentPacker {
  private parts: Buffer[] = [];
  private durationMs = 0;
  private started = false;

  constructor(
    private readonly maxMs: number,
    private readonly join: (parts: Buffer[]) => Buffer = (parts) => Buffer.concat(parts),
  ) {}

  /** Takes a fragment; answers the packets it completes (zero or one, two when one fragment alone is too long). */
  push(fragment: { data: Buffer; key: boolean; durationMs: number }): PackedFragment[] {
    const out: PackedFragment[] = [];
    if (!this.started) {
      if (!fragment.key) return out;
      this.started = true;
    }
    if (this.parts.length > 0 && (fragment.key || this.durationMs + fragment.durationMs > this.maxMs)) {
      const packet = this.flush();
      if (packet) out.push(packet);
      // A packet must start with a key frame: without one here, wait for the next.
      if (!fragment.key) {
        this.started = false;
        return out;
      }
    }
    this.parts.push(fragment.data);
    this.durationMs += fragment.durationMs;
    return out;
  }

  /** What is held, as a last packet (when the stream ends). */
  flush(): PackedFragment | undefined {
    if (this.parts.length === 0) return undefined;
    const packet = { data: this.join(this.parts), durationMs: this.durationMs };
    this.parts = [];
    this.durationMs = 0;
    return packet;
  }
}
