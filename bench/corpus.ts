// The camera stand-in for the benchmarks: a pre-encoded 1280x720 MJPEG corpus (ffmpeg testsrc2 +
// noise, about 120 KB a frame), generated once with the system ffmpeg into bench/.cache/, and the
// stamp every replayed frame carries: a JPEG comment (COM, FF FE) segment right after SOI holding
// the frame's sequence number and send time. Times are CLOCK_MONOTONIC milliseconds
// (process.hrtime), which every process on the machine shares, so a client can subtract a
// server's stamp from its own clock.
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { JpegSplitter } from '../src/media/jpeg-splitter';

const run = promisify(execFile);

export const CACHE_DIR = join(__dirname, '.cache');

export interface CorpusInfo {
  /** The .mjpg file (concatenated JPEGs). */
  path: string;
  frames: number;
  width: number;
  height: number;
  /** ffmpeg -q:v used. */
  quality: number;
  averageBytes: number;
  /** The file's size, to notice a truncated cache. */
  fileBytes: number;
}

export interface CorpusOptions {
  width?: number;
  height?: number;
  frames?: number;
  /** The average frame size to aim for (default 120 KB). */
  targetBytes?: number;
  ffmpeg?: string;
}

/** Milliseconds on the machine-wide monotonic clock (comparable between processes). */
export function nowMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

/** Generates the corpus unless bench/.cache already holds one made with the same options. */
export async function ensureCorpus(options: CorpusOptions = {}): Promise<CorpusInfo> {
  const width = options.width ?? 1280;
  const height = options.height ?? 720;
  const frames = options.frames ?? 90;
  const target = options.targetBytes ?? 120 * 1024;
  const ffmpeg = options.ffmpeg ?? 'ffmpeg';
  const key = `testsrc2-noise20-${width}x${height}-${frames}f-${Math.round(target / 1024)}k`;
  const metaPath = join(CACHE_DIR, `${key}.json`);
  const path = join(CACHE_DIR, `${key}.mjpg`);
  try {
    const meta = JSON.parse(await fs.readFile(metaPath, 'utf8')) as CorpusInfo;
    const stat = await fs.stat(meta.path);
    if (stat.size === meta.fileBytes && meta.frames > 0) return meta;
  } catch {
    // not cached yet (or half-written): make it
  }
  await fs.mkdir(CACHE_DIR, { recursive: true });
  // -q:v is the only knob: walk it (bounded) until the average frame is near the target.
  let quality = 10;
  let best: { quality: number; bytes: number } | undefined;
  const tried = new Set<number>();
  for (let attempt = 0; attempt < 6 && !tried.has(quality) && quality >= 2 && quality <= 31; attempt++) {
    tried.add(quality);
    const temp = join(CACHE_DIR, `${key}.q${quality}.tmp.mjpg`);
    await run(
      ffmpeg,
      [
        '-hide_banner', '-loglevel', 'error', '-y',
        '-f', 'lavfi', '-i', `testsrc2=size=${width}x${height}:rate=30`,
        '-vf', 'noise=alls=20:allf=t',
        '-frames:v', String(frames), '-q:v', String(quality), '-f', 'mjpeg', temp,
      ],
      { timeout: 120_000 },
    );
    const bytes = (await fs.stat(temp)).size / frames;
    if (!best || Math.abs(bytes - target) < Math.abs(best.bytes - target)) {
      if (best) await fs.rm(join(CACHE_DIR, `${key}.q${best.quality}.tmp.mjpg`), { force: true });
      best = { quality, bytes };
    } else {
      await fs.rm(temp, { force: true });
    }
    if (Math.abs(bytes - target) <= target * 0.1) break;
    quality += bytes > target ? 1 : -1;
  }
  if (!best) throw new Error('ffmpeg produced no corpus');
  await fs.rename(join(CACHE_DIR, `${key}.q${best.quality}.tmp.mjpg`), path);
  const split = await loadCorpus(path);
  const size = split.reduce((sum, frame) => sum + frame.length, 0);
  const info: CorpusInfo = { path, frames: split.length, width, height, quality: best.quality, averageBytes: size / split.length, fileBytes: (await fs.stat(path)).size };
  await fs.writeFile(metaPath, `${JSON.stringify(info, null, 2)}\n`);
  return info;
}

/** The corpus as separate JPEG frames (split with the project's own JPEG splitter). */
export async function loadCorpus(path: string): Promise<Buffer[]> {
  const frames: Buffer[] = [];
  const splitter = new JpegSplitter((frame) => frames.push(frame.bytes()));
  splitter.push(await fs.readFile(path));
  if (frames.length === 0) throw new Error(`${path} holds no JPEG frames`);
  return frames;
}

const MAGIC = 0x57434231; // "WCB1"
/** SOI (2) + COM marker (2) + length (2) + magic (4) + seq (4) + time (8). */
export const STAMP_BYTES = 22;

export interface Stamp {
  seq: number;
  /** Send time, monotonic milliseconds (see nowMs). */
  time: number;
}

/** A copy of `jpeg` with a COM segment carrying `seq` and `time` inserted right after SOI. */
export function stampFrame(jpeg: Buffer, seq: number, time: number): Buffer {
  const out = Buffer.allocUnsafe(jpeg.length + STAMP_BYTES - 2);
  out[0] = 0xff;
  out[1] = 0xd8;
  out[2] = 0xff;
  out[3] = 0xfe;
  out.writeUInt16BE(STAMP_BYTES - 4, 4); // the length counts itself and the payload
  out.writeUInt32BE(MAGIC, 6);
  out.writeUInt32BE(seq >>> 0, 10);
  out.writeDoubleBE(time, 14);
  jpeg.copy(out, STAMP_BYTES, 2);
  return out;
}

/** The stamp from the first STAMP_BYTES of a frame, or undefined when it has none. */
export function readStamp(head: Buffer): Stamp | undefined {
  if (head.length < STAMP_BYTES) return undefined;
  if (head[0] !== 0xff || head[1] !== 0xd8 || head[2] !== 0xff || head[3] !== 0xfe) return undefined;
  if (head.readUInt16BE(4) !== STAMP_BYTES - 4 || head.readUInt32BE(6) !== MAGIC) return undefined;
  return { seq: head.readUInt32BE(10), time: head.readDoubleBE(14) };
}
