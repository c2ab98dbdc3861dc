// The H.264 view over a real socket: /stream.mp4 answers fragmented MP4 from the camera's shared
// H.264 stage, with the codec in its Content-Type, decodable by ffprobe at the camera's size;
// many viewers share one encoder, which stops when the last one leaves (the capture goes on for
// the MJPEG viewer); HEAD answers headers only, and the route needs a login like every other.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { basic, execFileAsync, get, MjpegClient, startTestServer, tempDir, waitUntil } from './helpers';

const AUTH = basic('alice', 'wonderland');

/** Reads `/stream.mp4` until `bytes` have arrived; answers the status, headers and the bytes. */
function readMp4(url: string, bytes: number): Promise<{ status: number; type: string; data: Buffer }> {
  return new Promise((resolve, reject) => {
    const request = http.get(url, { headers: { authorization: AUTH } }, (res) => {
      const chunks: Buffer[] = [];
      let total = 0;
      res.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        total += chunk.length;
        if (total >= bytes) {
          request.destroy();
          resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), data: Buffer.concat(chunks) });
        }
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), data: Buffer.concat(chunks) }));
    });
    request.on('error', (error) => (request.destroyed ? undefined : reject(error)));
    request.setTimeout(30_000, () => request.destroy(new Error('no H.264 within 30 s')));
  });
}

describe('H.264 view', () => {
  it('streams fragmented MP4 of the camera from one encoder for all viewers, stopped when they leave', async (t) => {
    const server = await startTestServer(t, { cameras: [{ name: 'Test Cam', source: 'testsrc', width: 640, height: 360, fps: 15 }], web: { h264: { bitrate: 500 } } });
    const stage = server.camera().h264;
    const mjpeg = new MjpegClient(`${server.url}/stream.mjpg`, AUTH);
    await mjpeg.open();
    t.after(() => mjpeg.close());

    assert.equal((await get(`${server.url}/stream.mp4`)).status, 401, 'a login is needed');
    const head = await new Promise<http.IncomingMessage>((resolve, reject) =>
      http.request(`${server.url}/cameras/test-cam/stream.mp4`, { method: 'HEAD', headers: { authorization: AUTH } }, resolve).on('error', reject).end(),
    );
    assert.equal(head.statusCode, 200);
    assert.equal(stage.running, false, 'HEAD starts no encoder');

    const [a, b] = await Promise.all([readMp4(`${server.url}/stream.mp4`, 120_000), readMp4(`${server.url}/cameras/test-cam/stream.mp4`, 60_000)]);
    assert.equal(a.status, 200);
    assert.match(a.type, /^video\/mp4; codecs="avc1\.[0-9a-f]{6}"$/);
    assert.equal(a.data.toString('latin1', 4, 8), 'ftyp', 'the init segment first');
    const file = join(tempDir(), 'view.mp4');
    writeFileSync(file, a.data);
    const probe = await execFileAsync('ffprobe', ['-v', 'error', '-select_streams', 'v:0', '-count_frames', '-show_entries', 'stream=codec_name,width,height,nb_read_frames', '-of', 'json', file]);
    const [stream] = (JSON.parse(probe.stdout) as { streams: Array<{ codec_name: string; width: number; height: number; nb_read_frames: string }> }).streams;
    assert.ok(stream, 'a video stream');
    assert.deepEqual([stream.codec_name, stream.width, stream.height], ['h264', 640, 360]);
    assert.ok(Number(stream.nb_read_frames) > 15, `${stream.nb_read_frames} frames decoded`);
    assert.equal(b.data.toString('latin1', 4, 8), 'ftyp');
    assert.equal(stage.starts, 1, 'one encoder for both viewers');

    await waitUntil('the encoder to stop after the last H.264 viewer left', () => !stage.running, 15_000);
    const before = mjpeg.count;
    await mjpeg.waitForParts(before + 5, 10_000);
  });
});
