// Pure policy: the ffmpeg arguments that turn a camera source into a stream of JPEG frames on
// stdout. Built as arrays (never a string split on spaces); nothing here spawns anything.
/** What a capture needs to know of its camera (a camera's config has these keys, among others). */
export interface CaptureSource {
  /** `testsrc`, a device path (`/dev/video0`) or a URL ffmpeg can read. */
  source: string;
  /** The webcam's pixel format, for a device: `mjpeg` is passed through untouched. */
  inputFormat: string;
  width: number;
  height: number;
  fps: number;
  /** JPEG quality of encoded frames, ffmpeg's -q:v (2 best .. 31 smallest). */
  quality: number;
}

/** The `source` that stands in for a webcam: ffmpeg's moving test pattern. */
export const SOURCE_TESTSRC = 'testsrc';

export type SourceKind = 'testsrc' | 'device' | 'url';

export function sourceKind(source: string): SourceKind {
  if (source === SOURCE_TESTSRC) return 'testsrc';
  if (source.startsWith('/dev/')) return 'device';
  return 'url';
}

/** True when the frames arrive as JPEG already and are passed through untouched. */
export function isPassThrough(camera: CaptureSource): boolean {
  return sourceKind(camera.source) === 'device' && camera.inputFormat === 'mjpeg';
}

const OUTPUT_MJPEG = ['-f', 'mjpeg', 'pipe:1'];

function encodeArgs(camera: CaptureSource): string[] {
  // Full-range YUV is what JPEG viewers expect; -q:v sets the quality (2 best .. 31 smallest).
  return ['-c:v', 'mjpeg', '-pix_fmt', 'yuvj420p', '-q:v', String(camera.quality)];
}

/** The whole ffmpeg command line after the binary, for one capture. */
export function buildCaptureArgs(camera: CaptureSource): string[] {
  const size = `${camera.width}x${camera.height}`;
  const head = ['-hide_banner', '-loglevel', 'error', '-nostdin'];
  switch (sourceKind(camera.source)) {
    case 'testsrc':
      return [
        ...head,
        '-re',
        '-f', 'lavfi',
        '-i', `testsrc=size=${size}:rate=${camera.fps}`,
        '-an',
        ...encodeArgs(camera),
        ...OUTPUT_MJPEG,
      ];
    case 'device':
      return [
        ...head,
        '-f', 'v4l2',
        '-input_format', camera.inputFormat,
        '-video_size', size,
        '-framerate', String(camera.fps),
        '-i', camera.source,
        '-an',
        ...(isPassThrough(camera) ? ['-c:v', 'copy'] : encodeArgs(camera)),
        ...OUTPUT_MJPEG,
      ];
    case 'url': {
      const rtsp = /^rtsps?:/i.test(camera.source) ? ['-rtsp_transport', 'tcp'] : [];
      return [
        ...head,
        ...rtsp,
        '-i', camera.source,
        '-an',
        '-vf', `scale=${camera.width}:${camera.height}`,
        ...SOURCE_TIMING,
        ...encodeArgs(camera),
        ...OUTPUT_MJPEG,
      ];
    }
  }
}

/**
 * A stream's frames leave ffmpeg as they came, at the source's own rate: no output rate (`-r`
 * makes a constant rate, dropping and duplicating frames against a guessed input rate, 25 fps for
 * multipart MJPEG), and the encoder keeps the source's time base, so no two frames share a
 * timestamp after rounding. `vfr` rather than `passthrough`: a source that repeats a timestamp
 * loses that frame instead of stopping the encoder ("Invalid pts"). The camera's fps is enforced
 * afterwards, in Node, by dropping (rate-cap.ts).
 */
const SOURCE_TIMING = ['-fps_mode', 'vfr', '-enc_time_base', '-1'];

/** True for a source read in Node (http-mjpeg-source.ts) rather than by ffmpeg opening it. */
export function isHttpUrl(source: string): boolean {
  return /^https?:\/\//i.test(source);
}

/**
 * ffmpeg's arguments to scale JPEG frames that Node feeds it on stdin as multipart parts with
 * Content-Length (as the HomeKit encoder is fed) to the camera's size: one JPEG out per JPEG in.
 * The parts carry no timestamps: ffmpeg numbers them, which keeps every frame (wallclock
 * timestamps in the demuxer's 1/25 s time base collide and make the encoder refuse frames).
 */
export function buildScaleArgs(camera: CaptureSource): string[] {
  return [
    '-hide_banner', '-loglevel', 'error',
    '-fflags', '+genpts',
    '-probesize', '32',
    '-analyzeduration', '0',
    '-f', 'mpjpeg',
    '-i', 'pipe:0',
    '-an',
    '-vf', `scale=${camera.width}:${camera.height}`,
    '-fps_mode', 'passthrough',
    ...encodeArgs(camera),
    ...OUTPUT_MJPEG,
  ];
}

/** Hides credentials in URLs (`rtsp://user:secret@host` -> `rtsp://***@host`) for log lines. */
export function redactSecrets(text: string): string {
  return text.replace(/([a-z][a-z0-9+.-]*:\/\/)[^/@\s]+@/gi, '$1***@');
}

/** Known ffmpeg complaints, and what the user can do about each. */
const HINTS: Array<[RegExp, (source: string) => string]> = [
  [/No such file or directory/i, (s) => (sourceKind(s) === 'device' ? `${s} does not exist: is the webcam plugged in? (ls /dev/video* lists devices)` : 'the source was not found')],
  [/Device or resource busy/i, (s) => `${s} is in use by another program (another camera plugin, motion, a second server): stop it, or let this plugin be the only one to open the camera`],
  [/Permission denied/i, (s) => `no permission to open ${s}: add the user running this to the "video" group (sudo usermod -aG video homebridge) and restart`],
  [/Inappropriate ioctl|Not a video capture device/i, (s) => `${s} is not a video capture device: webcams often have several /dev/video* nodes, try another`],
  [/Cannot find a proper format|Invalid argument|not supported|Specified pixel format/i, () => 'the webcam does not offer this input format, size or frame rate: check "inputFormat", "width", "height" and "fps" (v4l2-ctl --list-formats-ext lists what it supports)'],
  [/Connection refused|timed out|Server returned 40[13]|401 Unauthorized|404 Not Found|Name or service not known/i, () => 'the stream URL could not be read: check the address, the credentials and that the camera is reachable'],
];

/** A one-line explanation of why a capture failed, for the log and the pages; '' if unknown. */
export function explainCaptureError(stderr: string, source: string): string {
  for (const [pattern, hint] of HINTS) if (pattern.test(stderr)) return hint(source);
  return '';
}
