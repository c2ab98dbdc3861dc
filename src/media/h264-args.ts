// Pure policy for the shared H.264 stage: the ffmpeg command that turns the FrameHub's JPEG frames
// (multipart parts on stdin) into fragmented MP4 on stdout, key frames at a fixed interval and
// fragments cut at every key frame and at least every `fragmentMs`, with a producer reference
// time (prft) per fragment so viewers can tell how old a picture is. Nothing here spawns.

export type H264Profile = 'baseline' | 'main' | 'high';
export type H264Level = '3.1' | '3.2' | '4.0';

export interface AudioSettings {
  /** An ALSA capture device, or `sine` for a test tone (the stand-in, as `testsrc` is for video). */
  source: string;
  sampleRateHz: number;
  bitrateKbps: number;
  channels: number;
}

export interface H264Settings {
  width: number;
  height: number;
  fps: number;
  bitrateKbps: number;
  profile: H264Profile;
  level: H264Level;
  /** `libx264`, or a hardware encoder such as `h264_v4l2m2m` (Raspberry Pi 4). */
  encoder: string;
  /** Milliseconds between key frames: every fragment a recording sends starts with one. */
  keyframeMs: number;
  /** Fragments are also cut within a GOP after this long, so live viewers wait less. */
  fragmentMs: number;
  /** AAC-LC sound from this source, when set. */
  audio?: AudioSettings;
}

/** H.264 profile_idc numbers, which hardware encoders such as h264_v4l2m2m take instead of names. */
const PROFILE_IDC: Record<H264Profile, string> = { baseline: '66', main: '77', high: '100' };

/** True when two settings make the same encoder. */
export function sameSettings(a: H264Settings, b: H264Settings): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** ffmpeg input arguments for an audio source. */
export function audioSourceArgs(source: string): string[] {
  if (source === 'sine') return ['-re', '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000'];
  return ['-f', 'alsa', '-thread_queue_size', '512', '-i', source];
}

/**
 * The input half every encoder fed by the FrameHub shares: JPEG frames as multipart parts with
 * Content-Length on stdin (each frame complete the moment it arrives), stamped with the time it
 * arrives.
 */
export function hubInputArgs(): string[] {
  return ['-fflags', '+genpts', '-probesize', '32', '-analyzeduration', '0', '-use_wallclock_as_timestamps', '1', '-f', 'mpjpeg', '-i', 'pipe:0'];
}

/**
 * libx264's preset for a profile: x264's `-profile` is only a ceiling, and `ultrafast` turns off
 * CABAC and 8x8 transforms, which makes Constrained Baseline whatever was asked. `superfast` is
 * the fastest that really makes Main and High.
 */
export function x264Preset(profile: H264Profile): string {
  return profile === 'baseline' ? 'ultrafast' : 'superfast';
}

/** How an encoder's libx264 runs: a preset, and whether frames carry their encode time for prft. */
export interface X264Options {
  preset?: string;
  exportPrft?: boolean;
}

/**
 * The video encode: fill the frame (crop, never stretch), 4:2:0, the profile asked, fixed GOP.
 * Shared by the H.264 stage (fragmented MP4) and HomeKit's live streams (RTP).
 */
export function h264VideoArgs(
  settings: Pick<H264Settings, 'width' | 'height' | 'fps' | 'bitrateKbps' | 'profile' | 'level' | 'encoder'>,
  keyframeFrames: number,
  x264: X264Options = {},
): string[] {
  const hardware = settings.encoder !== 'libx264';
  const { preset = x264Preset(settings.profile), exportPrft = true } = x264;
  const { width, height } = settings;
  return [
    '-vf',
    // yuv420p: libx264 on a 4:4:4 source would otherwise make High 4:4:4, which Apple devices do not play.
    `scale=${width}:${height}:force_original_aspect_ratio=increase:flags=bilinear,crop=${width}:${height},format=yuv420p`,
    '-c:v', settings.encoder,
    ...(hardware ? [] : ['-preset', preset, '-tune', 'zerolatency']),
    // libx264 stamps each frame with the wall-clock time it was encoded, which the muxer's prft
    // then carries (without it, prft is the time the fragment was written: up to a fragment later).
    ...(hardware || !exportPrft ? [] : ['-export_side_data', 'prft']),
    '-profile:v', hardware ? PROFILE_IDC[settings.profile] : settings.profile,
    ...(hardware ? [] : ['-level:v', settings.level]),
    '-r', String(settings.fps),
    '-fps_mode', 'cfr',
    '-g', String(keyframeFrames),
    '-keyint_min', String(keyframeFrames),
    ...(hardware ? [] : ['-sc_threshold', '0']),
    '-b:v', `${settings.bitrateKbps}k`,
    '-maxrate', `${settings.bitrateKbps}k`,
    '-bufsize', `${settings.bitrateKbps * 2}k`,
  ];
}

/** Frames between key frames for `settings` (at least 1). */
export function keyframeFrames(settings: Pick<H264Settings, 'fps' | 'keyframeMs'>): number {
  return Math.max(1, Math.round((settings.fps * settings.keyframeMs) / 1000));
}

/** Everything after the inputs: the mapping, the encoders and the fragmented MP4 on stdout. */
export function fmp4OutputArgs(settings: H264Settings): string[] {
  const audio = settings.audio;
  return [
    '-map', '0:v:0',
    ...(audio ? ['-map', '1:a:0'] : []),
    '-sn', '-dn',
    ...h264VideoArgs(settings, keyframeFrames(settings)),
    ...(audio
      ? ['-c:a', 'aac', '-profile:a', 'aac_low', '-ar', String(audio.sampleRateHz), '-ac', String(audio.channels), '-b:a', `${audio.bitrateKbps}k`]
      : ['-an']),
    '-f', 'mp4',
    '-movflags', 'frag_keyframe+empty_moov+default_base_moof+skip_trailer',
    '-frag_duration', String(Math.max(1, Math.round(settings.fragmentMs * 1000))),
    '-write_prft', 'wallclock',
    'pipe:1',
  ];
}

/** The whole command line after the binary: hub frames (and sound) in, fragmented MP4 out on stdout. */
export function buildFmp4Args(settings: H264Settings): string[] {
  return ['-hide_banner', '-loglevel', 'error', ...hubInputArgs(), ...(settings.audio ? audioSourceArgs(settings.audio.source) : []), ...fmp4OutputArgs(settings)];
}
