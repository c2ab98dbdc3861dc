// JpegSplitter on crafted byte streams: split markers, several frames per chunk, EXIF thumbnails,
// bytes between frames, progressive scans, oversize frames; and on real ffmpeg output.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';

import type { JpegChunks } from '../src/media/jpeg-chunks';
import { JpegSplitter } from '../src/media/jpeg-splitter';

const run = promisify(execFile);

const seg = (marker: number, payload: number[]): number[] => {
  const length = payload.length + 2;
  return [0xff, marker, length >> 8, length & 0xff, ...payload];
};

/** A structurally valid JPEG: headers, one scan with stuffing and restart markers, EOI. */
function craftJpeg(options: { id: number; app1?: number[]; progressive?: boolean }): Buffer {
  const bytes: number[] = [0xff, 0xd8];
  bytes.push(...seg(0xe0, [0x4a, 0x46, 0x49, 0x46, 0x00, 1, 1, 0, 0, 1, 0, 1, 0, 0]));
  if (options.app1) bytes.push(...seg(0xe1, options.app1));
  bytes.push(...seg(0xdb, new Array<number>(65).fill(options.id & 0x7f)));
  bytes.push(...seg(0xc0, [8, 0, 16, 0, 16, 1, 1, 0x11, 0]));
  bytes.push(...seg(0xc4, [0, ...new Array<number>(16).fill(0), 0xd8, 0xd9]));
  // Scan header, then entropy-coded data with FF00 stuffing, a restart marker and fill bytes.
  const scan = [0x12, 0xff, 0x00, 0x34, 0xff, 0xd0, 0x56, 0xff, 0x00, options.id & 0xff, 0xff, 0xd1, 0x78];
  bytes.push(...seg(0xda, [1, 1, 0, 0, 63, 0]), ...scan);
  if (options.progressive) {
    bytes.push(...seg(0xc4, [0x10, ...new Array<number>(16).fill(0)]));
    bytes.push(...seg(0xda, [1, 1, 0, 1, 63, 0]), 0x9a, 0xff, 0x00, 0xbc);
  }
  bytes.push(0xff, 0xff, 0xd9); // a fill byte before EOI
  return Buffer.from(bytes);
}

/** An EXIF block whose thumbnail is a whole JPEG, with its own SOI and EOI. */
const exifWithThumbnail = (): number[] => [0x45, 0x78, 0x69, 0x66, 0, 0, ...craftJpeg({ id: 99 })];

function splitAll(chunks: Buffer[]): Buffer[] {
  const frames: Buffer[] = [];
  const splitter = new JpegSplitter((frame) => frames.push(frame.bytes()));
  for (const chunk of chunks) splitter.push(chunk);
  return frames;
}

/** Cuts a buffer at the given offsets. */
function cut(data: Buffer, offsets: number[]): Buffer[] {
  const chunks: Buffer[] = [];
  let start = 0;
  for (const offset of [...offsets, data.length]) {
    chunks.push(data.subarray(start, offset));
    start = offset;
  }
  return chunks;
}

describe('JpegSplitter', () => {
  it('hands a frame on unjoined, and its bytes, once read, are a copy of their own', () => {
    const jpeg = craftJpeg({ id: 7 });
    const stream = Buffer.concat([jpeg, jpeg]);
    const frames: JpegChunks[] = [];
    const splitter = new JpegSplitter((frame) => frames.push(frame));
    for (const chunk of cut(stream, [5, 20, jpeg.length + 3])) splitter.push(chunk);
    assert.deepEqual(frames.map((frame) => frame.length), [jpeg.length, jpeg.length], 'sized without joining');
    const first = frames[0]!.bytes();
    assert.ok(first.equals(jpeg));
    assert.equal(frames[0]!.bytes(), first, 'joined once');
    stream.fill(0);
    assert.ok(first.equals(jpeg), "a copy of its own: it does not keep (or change with) the stream's chunks");
  });

  it('finds a whole frame in one chunk', () => {
    const jpeg = craftJpeg({ id: 1 });
    assert.deepEqual(splitAll([jpeg]), [jpeg]);
  });

  it('handles a split at every byte position, markers and lengths included', () => {
    const a = craftJpeg({ id: 1, app1: exifWithThumbnail() });
    const b = craftJpeg({ id: 2, progressive: true });
    const stream = Buffer.concat([a, b]);
    for (let at = 1; at < stream.length; at++) {
      assert.deepEqual(splitAll(cut(stream, [at])), [a, b], `split at ${at}`);
    }
  });

  it('handles one byte per chunk', () => {
    const a = craftJpeg({ id: 3, app1: exifWithThumbnail() });
    const stream = Buffer.concat([a, a]);
    const chunks = [...stream].map((byte) => Buffer.from([byte]));
    assert.deepEqual(splitAll(chunks), [a, a]);
  });

  it('finds several frames in one chunk', () => {
    const frames = [1, 2, 3, 4].map((id) => craftJpeg({ id }));
    assert.deepEqual(splitAll([Buffer.concat(frames)]), frames);
  });

  it('does not end a frame at the EOI of an EXIF thumbnail', () => {
    const jpeg = craftJpeg({ id: 5, app1: exifWithThumbnail() });
    const frames = splitAll([jpeg]);
    assert.equal(frames.length, 1);
    assert.equal(frames[0]?.length, jpeg.length);
  });

  it('skips bytes between frames, including stray FF and FF D9', () => {
    const a = craftJpeg({ id: 6 });
    const b = craftJpeg({ id: 7 });
    const junk = Buffer.from([0x00, 0xff, 0xd9, 0xff, 0x12, 0xff, 0xff, 0x0d, 0x0a]);
    const stream = Buffer.concat([junk, a, junk, b, junk]);
    assert.deepEqual(splitAll([stream]), [a, b]);
    for (let at = 1; at < stream.length; at += 3) assert.deepEqual(splitAll(cut(stream, [at, Math.min(stream.length, at + 7)])), [a, b]);
  });

  it('follows a progressive JPEG through several scans', () => {
    const jpeg = craftJpeg({ id: 8, progressive: true });
    assert.deepEqual(splitAll([jpeg]), [jpeg]);
  });

  it('drops a truncated frame and recovers at the next SOI', () => {
    const whole = craftJpeg({ id: 9 });
    const truncated = whole.subarray(0, 30); // ends inside the DQT segment header area
    const next = craftJpeg({ id: 10 });
    // The truncated header runs into the next frame's SOI: that frame must still come out whole.
    const frames = splitAll([Buffer.concat([truncated.subarray(0, 20), next])]);
    assert.deepEqual(frames, [next]);
  });

  it('drops frames over the size limit and resynchronises', () => {
    const big = craftJpeg({ id: 11, app1: new Array<number>(4000).fill(0x41) });
    const small = craftJpeg({ id: 12 });
    const frames: Buffer[] = [];
    const splitter = new JpegSplitter((f) => frames.push(f.bytes()), { maxFrameBytes: 1000 });
    splitter.push(Buffer.concat([big, small]));
    assert.deepEqual(frames, [small]);
    assert.equal(splitter.dropped, 1);
  });

  it('splits real ffmpeg MJPEG output into decodable frames', async () => {
    const { stdout } = await run(
      'ffmpeg',
      ['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'testsrc=size=160x120:rate=10', '-frames:v', '5', '-c:v', 'mjpeg', '-f', 'mjpeg', 'pipe:1'],
      { encoding: 'buffer', maxBuffer: 16 * 1024 * 1024 },
    );
    const frames = splitAll(cut(stdout, [1000, 1001, 5000, 12_345]));
    assert.equal(frames.length, 5);
    assert.equal(Buffer.concat(frames).length, stdout.length);
    for (const frame of frames) {
      assert.equal(frame.readUInt16BE(0), 0xffd8);
      assert.equal(frame.readUInt16BE(frame.length - 2), 0xffd9);
    }
  });
});
