// Finding the webcams of this machine for the Homebridge UI: every /dev/video* node with its card
// name (from /sys/class/video4linux), its stable /dev/v4l/by-id link, and the pixel formats, sizes
// and frame rates it offers, from `v4l2-ctl --list-formats-ext` when v4l-utils is installed, else
// from ffmpeg's `-f v4l2 -list_formats all`. Nothing here opens a device for capture.
import { constants, promises as fs } from 'node:fs';
import { join } from 'node:path';

import { runTool, ToolMissingError } from '../controls/run-tool';

export interface FrameSize {
  width: number;
  height: number;
  /** Frame rates the device lists for this size (v4l2-ctl only; empty when unknown). */
  fps: number[];
}

export interface VideoFormat {
  /** The name ffmpeg's `-input_format` takes (`mjpeg`, `yuyv422`), i.e. the config's `inputFormat`. */
  inputFormat: string;
  /** The V4L2 four-character code (`MJPG`, `YUYV`), when the tool printed it. */
  fourcc?: string;
  description: string;
  compressed: boolean;
  /** Discrete sizes, largest first. */
  sizes: FrameSize[];
  /** Cameras that take any size within a range (Raspberry Pi camera modules) say so instead. */
  range?: { minWidth: number; maxWidth: number; minHeight: number; maxHeight: number };
}

export interface VideoDevice {
  /** `/dev/video0` */
  path: string;
  /** The card name the driver reports (`HD Pro Webcam C920`). */
  name: string;
  /** A stable link under /dev/v4l/by-id that survives re-plugging and reboots, if udev made one. */
  byId?: string;
  /** Formats a capture can ask for; empty for nodes that give no picture (a UVC metadata node). */
  formats: VideoFormat[];
  /** Why formats could not be listed, or a note on this node; undefined when all is well. */
  problem?: string;
}

export interface DeviceScan {
  devices: VideoDevice[];
  /** The tool that listed formats. */
  formatTool: 'v4l2-ctl' | 'ffmpeg' | 'none';
  /** What to do when no device was found, or when formats could not be listed. */
  hint?: string;
}

export interface ScanOptions {
  devDir?: string;
  /** The folder the devices are named under (default: devDir), when devDir stands in for /dev. */
  shownAs?: string;
  sysDir?: string;
  v4l2Ctl?: string;
  /** The ffmpeg binary for the fallback; undefined when none was found. */
  ffmpeg?: string;
}

/** V4L2 four-character codes and the pixel format names ffmpeg's v4l2 input takes for them. */
const FOURCC_TO_FFMPEG: Record<string, string> = {
  MJPG: 'mjpeg',
  JPEG: 'mjpeg',
  YUYV: 'yuyv422',
  UYVY: 'uyvy422',
  YVYU: 'yvyu422',
  H264: 'h264',
  HEVC: 'hevc',
  NV12: 'nv12',
  NV21: 'nv21',
  YU12: 'yuv420p',
  '422P': 'yuv422p',
  RGB3: 'rgb24',
  BGR3: 'bgr24',
  RGBP: 'rgb565le',
  GREY: 'gray',
  'Y16 ': 'gray16le',
};

const byArea = (a: FrameSize, b: FrameSize) => b.width * b.height - a.width * a.height || b.width - a.width;

/** MJPEG first (it is passed through untouched), then raw formats, then other compressed ones. */
function formatRank(format: VideoFormat): number {
  if (format.inputFormat === 'mjpeg') return 0;
  return format.compressed ? 2 : 1;
}

export function sortFormats(formats: VideoFormat[]): VideoFormat[] {
  for (const format of formats) format.sizes.sort(byArea);
  return formats.sort((a, b) => formatRank(a) - formatRank(b));
}

/**
 * Parses `v4l2-ctl -d DEV --list-formats-ext`:
 * `\t[0]: 'MJPG' (Motion-JPEG, compressed)`, then `\t\tSize: Discrete 1280x720` lines, each with
 * `\t\t\tInterval: Discrete 0.033s (30.000 fps)` lines; or `Size: Stepwise 32x32 - 2592x1944 with step 2/2`.
 */
export function parseV4l2Formats(text: string): VideoFormat[] {
  const formats: VideoFormat[] = [];
  let format: VideoFormat | undefined;
  let size: FrameSize | undefined;
  // Every group below takes part in its pattern's every match.
  for (const line of text.split('\n')) {
    const head = /^\s*\[\d+\]: '(.{4})' \((.*)\)\s*$/.exec(line);
    if (head) {
      const [, fourcc = '', details = ''] = head;
      const description = details.replace(/, compressed$/, '');
      format = {
        inputFormat: FOURCC_TO_FFMPEG[fourcc] ?? fourcc.trim().toLowerCase(),
        fourcc: fourcc.trim(),
        description,
        compressed: /compressed/.test(details) || fourcc === 'MJPG' || fourcc === 'JPEG',
        sizes: [],
      };
      formats.push(format);
      size = undefined;
      continue;
    }
    if (!format) continue;
    const discrete = /^\s*Size: Discrete (\d+)x(\d+)/.exec(line);
    if (discrete) {
      size = { width: Number(discrete[1]), height: Number(discrete[2]), fps: [] };
      format.sizes.push(size);
      continue;
    }
    const stepwise = /^\s*Size: (?:Stepwise|Continuous) (\d+)x(\d+) - (\d+)x(\d+)/.exec(line);
    if (stepwise) {
      const [, minWidth = '', minHeight = '', maxWidth = '', maxHeight = ''] = stepwise;
      format.range = { minWidth: Number(minWidth), minHeight: Number(minHeight), maxWidth: Number(maxWidth), maxHeight: Number(maxHeight) };
      size = undefined;
      continue;
    }
    const interval = /^\s*Interval: Discrete [\d.]+s \(([\d.]+) fps\)/.exec(line);
    if (interval && size) {
      const fps = Math.round(Number(interval[1]) * 1000) / 1000;
      if (!size.fps.includes(fps)) size.fps.push(fps);
    }
  }
  for (const f of formats) for (const s of f.sizes) s.fps.sort((a, b) => b - a);
  return sortFormats(formats);
}

/**
 * Parses what `ffmpeg -f v4l2 -list_formats all -i DEV` prints on stderr:
 * `[video4linux2,v4l2 @ 0x...] Compressed:       mjpeg :          Motion-JPEG : 640x480 1280x720`,
 * or `{32-2592, 2}x{32-1944, 2}` for a size range. Frame rates are not listed by ffmpeg.
 */
export function parseFfmpegFormats(text: string): VideoFormat[] {
  const formats: VideoFormat[] = [];
  for (const line of text.split('\n')) {
    // "Raw       :     yuyv422 :           YUYV 4:2:2 : 640x480 ..." (a description may hold "4:2:2").
    const match = /\]\s*((?:Raw|Compressed|Unsupported)\s*:.*)$/.exec(line);
    if (!match) continue;
    const [, listed = ''] = match; // the group takes part in every match
    const fields = listed.split(/\s*:\s+/);
    if (fields.length < 4) continue;
    const [kind, name = '', description = ''] = fields;
    const sizesText = fields.slice(3).join(' ');
    const format: VideoFormat = {
      inputFormat: name === 'Unsupported' ? description.toLowerCase() : name,
      description,
      compressed: kind === 'Compressed',
      sizes: [],
    };
    const range = /\{(\d+)-(\d+), \d+\}x\{(\d+)-(\d+), \d+\}/.exec(sizesText);
    if (range) {
      format.range = { minWidth: Number(range[1]), maxWidth: Number(range[2]), minHeight: Number(range[3]), maxHeight: Number(range[4]) };
    } else {
      for (const size of sizesText.matchAll(/(\d+)x(\d+)/g)) format.sizes.push({ width: Number(size[1]), height: Number(size[2]), fps: [] });
    }
    formats.push(format);
  }
  return sortFormats(formats);
}

async function readText(path: string): Promise<string | undefined> {
  try {
    return (await fs.readFile(path, 'utf8')).trim();
  } catch {
    return undefined;
  }
}

/** `/dev/video0` -> `/dev/v4l/by-id/usb-046d_HD_Pro_Webcam_C920_...-video-index0` */
async function byIdLinks(devDir: string, shownAs: string): Promise<Map<string, string>> {
  const links = new Map<string, string>();
  const dir = join(devDir, 'v4l', 'by-id');
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch {
    return links;
  }
  for (const name of names.sort()) {
    try {
      const target = await fs.realpath(join(dir, name));
      const node = /(video\d+)$/.exec(target)?.[1];
      if (node && !links.has(node)) links.set(node, join(shownAs, 'v4l', 'by-id', name));
    } catch {
      // a dangling link: the device has gone
    }
  }
  return links;
}

function explainOpenError(message: string, path: string): string {
  if (/Permission denied|EACCES/i.test(message)) {
    return `No permission to open ${path}: add the user running Homebridge to the "video" group (sudo usermod -aG video homebridge), then restart Homebridge.`;
  }
  if (/busy/i.test(message)) return `${path} is busy: another program has it open.`;
  if (/Inappropriate ioctl|Unable to detect|not a v4l2|VIDIOC_QUERYCAP/i.test(message)) return `${path} is not a video capture device.`;
  if (/No such file|Cannot open/i.test(message)) return `${path} could not be opened (unplugged?).`;
  return message.trim().split('\n').slice(-1)[0] ?? message;
}

/** The formats of one device, by v4l2-ctl if it is installed, else by ffmpeg. */
async function listFormats(
  file: string,
  path: string,
  options: ScanOptions,
): Promise<{ formats: VideoFormat[]; tool: DeviceScan['formatTool']; problem?: string }> {
  try {
    const result = await runTool(options.v4l2Ctl ?? 'v4l2-ctl', ['-d', file, '--list-formats-ext'], { timeoutMs: 5_000 });
    if (result.code === 0) return { formats: parseV4l2Formats(result.stdout), tool: 'v4l2-ctl' };
    return { formats: [], tool: 'v4l2-ctl', problem: explainOpenError(`${result.stderr}\n${result.stdout}`, path) };
  } catch (error) {
    if (!(error instanceof ToolMissingError)) throw error;
  }
  if (!options.ffmpeg) return { formats: [], tool: 'none' };
  // ffmpeg prints the list and then stops ("Immediate exit requested"), so its exit code is 1.
  const result = await runTool(options.ffmpeg, ['-hide_banner', '-nostdin', '-f', 'v4l2', '-list_formats', 'all', '-i', file], { timeoutMs: 10_000 });
  const formats = parseFfmpegFormats(result.stderr);
  if (formats.length > 0) return { formats, tool: 'ffmpeg' };
  return { formats, tool: 'ffmpeg', problem: /Immediate exit/.test(result.stderr) ? undefined : explainOpenError(result.stderr, path) };
}

export const NO_DEVICE_HINT =
  'No webcam found: this machine has no /dev/video* device. Plug the webcam in and press "Look again" ' +
  '(`ls /dev/video*` should list it). In Docker, pass the device to the container (--device /dev/video0). ' +
  'Without a webcam you can still use the source "testsrc" (a moving test pattern) or a camera\'s stream URL (http://… or rtsp://…).';

/** Lists the video devices of this machine, with names and formats. */
export async function scanDevices(options: ScanOptions = {}): Promise<DeviceScan> {
  const devDir = options.devDir ?? '/dev';
  const sysDir = options.sysDir ?? '/sys/class/video4linux';
  let entries: string[];
  try {
    entries = (await fs.readdir(devDir)).filter((name) => /^video\d+$/.test(name));
  } catch {
    entries = [];
  }
  entries.sort((a, b) => Number(a.slice(5)) - Number(b.slice(5)));
  if (entries.length === 0) return { devices: [], formatTool: 'none', hint: NO_DEVICE_HINT };
  const shownAs = options.shownAs ?? devDir;
  const links = await byIdLinks(devDir, shownAs);
  const devices: VideoDevice[] = [];
  let formatTool: DeviceScan['formatTool'] = 'none';
  let listedAny = false;
  let hidden = 0;
  for (const node of entries) {
    const file = join(devDir, node);
    const path = join(shownAs, node);
    const name = (await readText(join(sysDir, node, 'name'))) ?? node;
    if (isBoardCodec(name)) {
      hidden++;
      continue;
    }
    const device: VideoDevice = { path, name, byId: links.get(node), formats: [] };
    try {
      await fs.access(file, constants.R_OK | constants.W_OK);
    } catch (error) {
      device.problem = explainOpenError((error as Error).message, path);
      devices.push(device);
      continue;
    }
    const listed = await listFormats(file, path, options);
    listedAny = true;
    if (listed.tool !== 'none') formatTool = listed.tool;
    device.formats = listed.formats;
    device.problem = listed.problem;
    if (!device.problem && listed.tool !== 'none' && listed.formats.length === 0) {
      device.problem = 'This node gives no picture (webcams often add a second, metadata node): use the other one.';
    }
    devices.push(device);
  }
  if (devices.length === 0 && hidden > 0) {
    return { devices, formatTool, hint: `${NO_DEVICE_HINT} (${hidden} of the board's own video codec nodes are not cameras and are not shown.)` };
  }
  const hint =
    listedAny && formatTool === 'none'
      ? 'Formats and sizes cannot be listed: install v4l-utils (sudo apt-get install v4l-utils) or ffmpeg.'
      : undefined;
  return { devices, formatTool, hint };
}

/**
 * The video nodes of a board's own codecs and image processors (a Raspberry Pi has a dozen):
 * memory-to-memory devices, never cameras, so they are left out of the list.
 */
export function isBoardCodec(name: string): boolean {
  return /^(bcm2835-(codec|isp)|rpi-hevc-dec|rpivid|pispbe|hantro|cedrus|rkvdec|rkvenc|meson-(vdec|ge2d)|mtk-vcodec)/i.test(name.trim());
}
