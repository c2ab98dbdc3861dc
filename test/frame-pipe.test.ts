// writeJpegPart / writeFramePart: a frame's pieces go out as one multipart part an mpjpeg reader
// can cut by its Content-Length, and `done` waits for a full pipe to drain (latest-frame-wins
// upstream relies on it). The encoders that read these parts are tested with real ffmpeg in
// h264-stage.test.ts, stream-session.test.ts and url-camera.test.ts.
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';

import { PART_BOUNDARY, writeFramePart, writeJpegPart } from '../src/media/frame-pipe';
import { JpegChunks } from '../src/media/jpeg-chunks';
import { MultipartJpegReader } from '../src/media/mjpeg-parts';

/** A JPEG-shaped buffer: SOI, `size` bytes of filler, EOI. */
function fakeJpeg(size: number, fill: number): Buffer {
  return Buffer.concat([Buffer.from([0xff, 0xd8]), Buffer.alloc(size, fill), Buffer.from([0xff, 0xd9])]);
}

describe('frame pipe', () => {
  it("writes a frame's pieces as one part, read back whole and in order", () => {
    const a = fakeJpeg(3000, 0x11);
    const b = fakeJpeg(500, 0x22);
    const pipe = new PassThrough();
    const written: Buffer[] = [];
    pipe.on('data', (chunk: Buffer) => written.push(chunk));
    // `a` as three pieces of the stream it came in, `b` as one.
    const pieces = [a.subarray(0, 7), a.subarray(7, 2000), a.subarray(2000)];
    writeJpegPart(pipe, pieces, a.length);
    writeJpegPart(pipe, [b], b.length);
    const out = Buffer.concat(written);
    assert.ok(out.subarray(0, PART_BOUNDARY.length + 2).equals(Buffer.from(`--${PART_BOUNDARY}`)));
    assert.match(out.toString('latin1', 0, 80), new RegExp(`Content-Length: ${a.length}\r\n\r\n`));
    const read: Buffer[] = [];
    new MultipartJpegReader((jpeg) => read.push(jpeg.bytes())).push(out);
    assert.equal(read.length, 2);
    assert.ok(read[0]?.equals(a), 'the first frame, its pieces in order');
    assert.ok(read[1]?.equals(b));
  });

  it('calls done at once while the pipe has room, and only after drain once it is full', async () => {
    const pipe = new PassThrough({ highWaterMark: 1024 });
    const frame = new JpegChunks([fakeJpeg(4000, 0x33)]);
    let done = 0;
    writeFramePart(pipe, { pieces: frame.pieces(), size: frame.length }, () => done++);
    assert.equal(done, 0, 'a frame larger than the pipe holds: wait for drain');
    pipe.resume(); // the reader takes it
    await new Promise((resolve) => pipe.once('drain', resolve));
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(done, 1);

    const roomy = new PassThrough({ highWaterMark: 1 << 20 });
    writeFramePart(roomy, { pieces: [fakeJpeg(100, 0x44)], size: 104 }, () => done++);
    assert.equal(done, 2, 'room to spare: done at once');
  });
});
