// Cameras whose source is another server's MJPEG stream (issue 11, point 4), with real parts: the
// project's own server (ffmpeg testsrc) upstream, a second runtime reading it by URL, an MJPEG
// viewer counting frames, /proc showing every process's arguments. The URL camera delivers the
// source's own rate up to its fps, passes same-size frames through without any ffmpeg, scales
// other sizes with an ffmpeg that never sees the URL, and explains failures. Also: the rate-cap
// policy and the multipart reader on their own, and small scripted servers for the error cases.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { silentLog } from '../src/log';
import type { CaptureExit, FrameSource } from '../src/media/capture';
import { FfmpegCapture } from '../src/media/capture';
import { buildCaptureArgs, buildScaleArgs } from '../src/media/capture-args';
import { FrameHub } from '../src/media/frame-hub';
import { HttpMjpegSource } from '../src/media/http-mjpeg-source';
import { JpegChunks } from '../src/media/jpeg-chunks';
import { jpegSize, MultipartJpegReader, MultipartError } from '../src/media/mjpeg-parts';
import { FrameRateCap } from '../src/media/rate-cap';
import type { TestServer } from './helpers';
import { basic, childProcessesNamed, freeTcpPort, get, MjpegClient, nth, probeSize, recordingLog, sleep, startTestServer, tempDir, waitUntil } from './helpers';

const alice = basic('alice', 'wonderland');
const FRAME = readFileSync(join(__dirname, 'fixtures', 'frame.jpg')); // 160x120

/** Every process's command line (arguments joined by spaces), from /proc. */
function allCommandLines(): Array<{ pid: number; args: string }> {
  const lines: Array<{ pid: number; args: string }> = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      lines.push({ pid: Number(entry), args: readFileSync(`/proc/${entry}/cmdline`, 'latin1').split('\0').join(' ') });
    } catch {
      // gone meanwhile
    }
  }
  return lines;
}

/** The command lines of this test process's ffmpeg children. */
async function ourFfmpegs(): Promise<string[]> {
  const pids = await childProcessesNamed(process.pid, 'ffmpeg');
  return pids.map((pid) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0').join(' ');
    } catch {
      return '';
    }
  });
}

/** An upstream server (the project's own) with one testsrc camera at `fps`, users alice/wonderland. */
function upstream(t: Parameters<typeof startTestServer>[0], fps: number, width = 320, height = 240): Promise<TestServer> {
  return startTestServer(t, { cameras: [{ name: 'Upstream', source: 'testsrc', width, height, fps }] });
}

/** A second runtime whose one camera reads `source`. */
function downstream(t: Parameters<typeof startTestServer>[0], source: string, camera: Record<string, unknown>, log = recordingLog()) {
  return startTestServer(t, { cameras: [{ name: 'Remote', source, ...camera }], log });
}

/**
 * Frames per second a viewer receives: after the first frames (and a moment for a start-up burst
 * to pass), the frames that arrive during a window, over the time from the first to the last.
 */
async function measureFps(viewer: MjpegClient, windowMs = 5_000, around?: { start(): void; end(): void }): Promise<number> {
  await viewer.waitForParts(3, 30_000);
  await sleep(2_000);
  const startAt = Date.now();
  around?.start();
  await sleep(windowMs);
  around?.end();
  const arrivals = viewer.parts.map((part) => part.at).filter((at) => at >= startAt);
  assert.ok(arrivals.length >= 2, `${arrivals.length} frames in ${windowMs} ms`);
  const [first, last] = [nth(arrivals, 0, 'the arrivals'), nth(arrivals, arrivals.length - 1, 'the arrivals')];
  return ((arrivals.length - 1) * 1000) / (last - first);
}

/**
 * A viewer's rate on `server` (measureFps), and over the same window the frames per second each
 * hub took in: `made` by the upstream camera, `passed` into the downstream one (after its cap).
 */
async function measureRates(t: { after: (fn: () => void) => void }, source: TestServer, server: TestServer) {
  const counts = () => [source.camera().hub.latest?.seq ?? 0, server.camera().hub.latest?.seq ?? 0, Date.now()] as const;
  let [before, after] = [counts(), counts()];
  const fps = await measureFps(await openViewer(t, server), 5_000, { start: () => (before = counts()), end: () => (after = counts()) });
  const seconds = (after[2] - before[2]) / 1000;
  return { fps, seconds, made: (after[0] - before[0]) / seconds, passed: (after[1] - before[1]) / seconds };
}

async function openViewer(t: { after: (fn: () => void) => void }, server: TestServer): Promise<MjpegClient> {
  const viewer = new MjpegClient(`${server.url}/stream.mjpg`, alice);
  viewer.keepBodies = 500; // enough for the measuring window
  await viewer.open();
  t.after(() => viewer.close());
  assert.equal(viewer.status, 200);
  return viewer;
}

describe('FrameRateCap (pure policy)', () => {
  /** Arrival times of `count` frames at `fps`, each late by a pseudo-random 0..`jitterMs`. */
  function arrivals(fps: number, count: number, jitterMs: number, seed = 7): number[] {
    let state = seed;
    const random = () => ((state = (state * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const times = Array.from({ length: count }, (_, n) => 1_000 + (n * 1000) / fps + random() * jitterMs);
    return times.sort((a, b) => a - b); // late frames arrive bunched with the next ones, in order
  }
  const admitted = (cap: FrameRateCap, times: number[]) => times.filter((time) => cap.admit(time));

  it('lets every frame of a source at exactly the cap through, whatever the jitter', () => {
    for (const jitter of [0, 30, 150, 400]) {
      const times = arrivals(15, 15 * 120, jitter);
      assert.equal(admitted(new FrameRateCap(15), times).length, times.length, `jitter ${jitter} ms`);
    }
  });

  it('lets frames that arrive late and then together (after a network hiccup) through', () => {
    const times = [0, 66, 133, 200, 600, 601, 602, 603, 604, 605, 666, 733].map((t) => t + 5_000);
    assert.equal(admitted(new FrameRateCap(15), times).length, times.length);
  });

  it('lets a slower source through untouched', () => {
    const times = arrivals(10, 600, 50);
    assert.equal(admitted(new FrameRateCap(15), times).length, 600);
  });

  it('holds a faster source to the cap over any stretch, by dropping', () => {
    const cap = new FrameRateCap(15);
    const times = arrivals(30, 30 * 60, 20); // one minute at 30 fps
    const passed = admitted(cap, times);
    // 15 fps for a minute, plus at most the tolerance (0.5 s) as a burst at the start.
    assert.ok(passed.length >= 15 * 60 - 1 && passed.length <= 15 * 60 + 9, `${passed.length} frames passed`);
    assert.equal(cap.dropped, times.length - passed.length);
    // After the start, no 2 s window holds more than 2 s of frames at the cap (plus one).
    const steady = passed.filter((time) => time > 3_000);
    for (const from of steady) {
      const inWindow = steady.filter((time) => time >= from && time < from + 2_000).length;
      assert.ok(inWindow <= 31, `${inWindow} frames within 2 s from ${from}`);
    }
  });

  it('admits every frame without a cap', () => {
    const cap = new FrameRateCap(0);
    assert.ok([0, 0, 0, 1].every((time) => cap.admit(time)));
  });
});

describe('MultipartJpegReader and jpegSize (pure)', () => {
  const part = (body: Buffer, headers = `Content-Type: image/jpeg\r\nContent-Length: ${body.length}`) =>
    Buffer.concat([Buffer.from(`--myboundary\r\n${headers}\r\n\r\n`), body, Buffer.from('\r\n')]);

  /** Feeds `bytes` in pieces of `size`; returns the frames read. */
  function read(bytes: Buffer, size: number): Buffer[] {
    const frames: Buffer[] = [];
    const reader = new MultipartJpegReader((jpeg) => frames.push(jpeg.bytes()));
    for (let i = 0; i < bytes.length; i += size) reader.push(bytes.subarray(i, i + size));
    return frames;
  }

  it('cuts parts by Content-Length, however the bytes are split', () => {
    // A JPEG whose entropy data looks like a part boundary and an SOI must come out whole.
    const tricky = Buffer.concat([FRAME.subarray(0, -2), Buffer.from('\r\n--myboundary\r\n'), FRAME.subarray(-2)]);
    const stream = Buffer.concat([part(FRAME), part(tricky), Buffer.from('\r\n'), part(FRAME)]);
    for (const size of [1, 2, 7, 100, 4096, stream.length]) {
      const frames = read(stream, size);
      assert.equal(frames.length, 3, `pieces of ${size}`);
      assert.ok(frames[0]?.equals(FRAME) && frames[1]?.equals(tricky) && frames[2]?.equals(FRAME));
    }
  });

  it('takes bare LF lines, and parts without Content-Length by the JPEG structure', () => {
    const lf = Buffer.concat([Buffer.from(`--b\nContent-Type: image/jpeg\nContent-Length: ${FRAME.length}\n\n`), FRAME, Buffer.from('\n')]);
    assert.equal(read(Buffer.concat([lf, lf]), 3).length, 2);
    const noLength = part(FRAME, 'Content-Type: image/jpeg');
    const frames = read(Buffer.concat([noLength, noLength, noLength]), 5);
    assert.equal(frames.length, 3);
    assert.ok(frames.every((frame) => frame.equals(FRAME)));
  });

  it('drops parts that are not JPEG, and refuses what is not multipart at all', () => {
    const frames: Buffer[] = [];
    const reader = new MultipartJpegReader((jpeg) => frames.push(jpeg.bytes()));
    reader.push(part(Buffer.from('{"not":"a picture"}'), 'Content-Type: application/json\r\nContent-Length: 19'));
    assert.equal(frames.length, 0);
    assert.equal(reader.lastSkippedType, 'application/json');
    assert.throws(() => new MultipartJpegReader(() => {}).push(Buffer.alloc(20_000, 0x41)), MultipartError);
    assert.throws(() => new MultipartJpegReader(() => {}).push(Buffer.from('--b\r\nContent-Length: 99999999999\r\n\r\n')), /cannot be a frame/);
  });

  it('hands a frame on as its chunks: the head read in place, pieces to write unjoined, the bytes joined once into memory of their own', () => {
    const stream = Buffer.from(part(FRAME));
    const chunks: JpegChunks[] = [];
    const reader = new MultipartJpegReader((jpeg) => chunks.push(jpeg));
    const size = 400;
    for (let i = 0; i < stream.length; i += size) reader.push(stream.subarray(i, i + size));
    const [jpeg] = chunks;
    assert.ok(jpeg);
    assert.equal(jpeg.length, FRAME.length);
    // The head is a view of the first chunk when that holds it: it changes with the stream.
    const head = jpeg.head(64);
    const at = stream.indexOf(FRAME.subarray(0, 64));
    stream[at + 10] = (stream[at + 10] ?? 0) ^ 0xff;
    assert.notEqual(head[10], FRAME[10], 'the head is a view of the stream');
    stream[at + 10] = (stream[at + 10] ?? 0) ^ 0xff;
    // Across chunks, a copy of just those bytes: enough to find the size.
    assert.ok(jpeg.head(1000).equals(FRAME.subarray(0, 1000)));
    assert.deepEqual(jpegSize(jpeg.head(4096)), { width: 160, height: 120 });
    // Written to a pipe or socket as its pieces: the stream's chunks, in order, not joined.
    const pieces = jpeg.pieces();
    assert.ok(pieces.length > 1, `${pieces.length} piece(s)`);
    assert.ok(Buffer.concat(pieces).equals(FRAME));
    const bytes = jpeg.bytes();
    assert.ok(bytes.equals(FRAME));
    assert.equal(jpeg.bytes(), bytes, 'joined once');
    assert.deepEqual(jpeg.pieces(), [bytes], 'once joined, its one piece is the joined buffer');
    stream.fill(0);
    assert.ok(jpeg.bytes().equals(FRAME), "a copy of its own: it does not keep (or change with) the stream's chunks");

    const single = Buffer.from(FRAME);
    const copied = new JpegChunks([single]).bytes();
    single.fill(0);
    assert.ok(copied.equals(FRAME), 'a frame of one chunk is copied too');
  });

  it('reads the size from the SOF marker', () => {
    assert.deepEqual(jpegSize(FRAME), { width: 160, height: 120 });
    assert.equal(jpegSize(Buffer.from('not a jpeg')), undefined);
    assert.equal(jpegSize(FRAME.subarray(0, 20)), undefined);
  });
});

describe('URL camera reading the project\'s own server', () => {
  it('same size: the source\'s 15 fps arrive (>= 14), passed through with no ffmpeg, the password in no process\'s arguments', async (t) => {
    const source = await upstream(t, 15);
    const server = await downstream(t, `http://alice:wonderland@127.0.0.1:${source.port}/stream.mjpg`, { width: 320, height: 240, fps: 15 });
    // A viewer of the upstream itself, to compare the frames with.
    const direct = await openViewer(t, source);
    const viewer = await openViewer(t, server);
    const fps = await measureFps(viewer);
    t.diagnostic(`${fps.toFixed(2)} fps`);
    assert.ok(fps >= 14, `${fps.toFixed(2)} fps delivered`);
    const last = viewer.parts.at(-1)!.body;
    assert.ok(
      direct.parts.some((part) => part.body.equals(last)),
      'the frame the viewer got is byte for byte one the upstream sent (not re-encoded)',
    );

    const secret = `wonderland@127.0.0.1:${source.port}`;
    assert.deepEqual(allCommandLines().filter(({ args }) => args.includes(secret)), [], 'no process carries the password');
    const ffmpegs = await ourFfmpegs();
    assert.equal(ffmpegs.length, 1, `only the upstream's capture runs: ${ffmpegs.join(' || ')}`);
    assert.match(nth(ffmpegs, 0, 'the ffmpegs'), /testsrc/);
  });

  it('another size: scaled by one ffmpeg fed on stdin, still >= 14 fps, frames of the new size', async (t) => {
    const source = await upstream(t, 15);
    const server = await downstream(t, `http://alice:wonderland@127.0.0.1:${source.port}/stream.mjpg`, { width: 160, height: 120, fps: 15 });
    const viewer = await openViewer(t, server);
    const fps = await measureFps(viewer);
    t.diagnostic(`${fps.toFixed(2)} fps`);
    assert.ok(fps >= 14, `${fps.toFixed(2)} fps delivered`);
    const file = join(tempDir(), 'scaled.jpg');
    writeFileSync(file, viewer.parts.at(-1)!.body);
    assert.deepEqual(await probeSize(file), [160, 120], 'ffprobe decodes a frame of the new size');

    const secret = `wonderland@127.0.0.1:${source.port}`;
    assert.deepEqual(allCommandLines().filter(({ args }) => args.includes(secret)), [], 'no process carries the password');
    const ffmpegs = await ourFfmpegs();
    assert.equal(ffmpegs.length, 2, ffmpegs.join(' || '));
    const scaler = ffmpegs.find((args) => !/testsrc/.test(args)) ?? '';
    assert.match(scaler, /-f mpjpeg -i pipe:0 .*scale=160:120/);
    assert.doesNotMatch(scaler, /127\.0\.0\.1|http/);
  });

  it('a 10 fps source at fps 15 gives its 10 fps (>= 9.5)', async (t) => {
    const source = await upstream(t, 10);
    const server = await downstream(t, `http://alice:wonderland@127.0.0.1:${source.port}/stream.mjpg`, { width: 320, height: 240, fps: 15 });
    const { fps, made, passed, seconds } = await measureRates(t, source, server);
    t.diagnostic(`${fps.toFixed(2)} fps delivered; the camera made ${made.toFixed(1)} fps, ${passed.toFixed(1)} came through`);
    assert.ok(fps <= 10.5, `${fps.toFixed(2)} fps delivered`);
    // Under the cap nothing is dropped: every frame the camera made (one either side of the window's edges).
    assert.ok(passed >= made - 2 / seconds && passed >= 9.5 * Math.min(1, made / 10), `${passed.toFixed(1)} fps came through of the camera's ${made.toFixed(1)}`);
  });

  it('a 30 fps source at fps 15 is capped near 15 (<= 16)', async (t) => {
    const source = await upstream(t, 30);
    const server = await downstream(t, `http://alice:wonderland@127.0.0.1:${source.port}/stream.mjpg`, { width: 320, height: 240, fps: 15 });
    const { fps, made, passed: admitted } = await measureRates(t, source, server);
    t.diagnostic(`${fps.toFixed(2)} fps delivered; the camera made ${made.toFixed(1)} fps, the cap let ${admitted.toFixed(1)} through`);
    assert.ok(fps <= 16, `${fps.toFixed(2)} fps delivered: no more than the cap`);
    assert.ok(admitted <= 16, `${admitted.toFixed(1)} fps through the cap`);
    // Not fewer than the cap allows: 15 of a camera making more, all of one a loaded machine slowed down.
    assert.ok(admitted >= Math.min(13, made * 0.8), `${admitted.toFixed(1)} fps through the cap of a camera making ${made.toFixed(1)}`);
  });

  it('a wrong password: the camera goes offline saying 401, nothing crashes, the password is never logged', async (t) => {
    const source = await upstream(t, 15);
    const log = recordingLog();
    const server = await downstream(t, `http://alice:not-her-password@127.0.0.1:${source.port}/stream.mjpg`, { width: 320, height: 240, fps: 15 }, log);
    const { hub } = server.camera();
    const release = hub.hold();
    t.after(release);
    await waitUntil('the camera to go offline', () => hub.state === 'offline', 15_000);
    assert.match(hub.lastError, /http:\/\/\*\*\*@127\.0\.0\.1:\d+\/stream\.mjpg: the user name or password was refused \(HTTP 401 Unauthorized\)/);
    const snapshot = await get(`${server.url}/snapshot.jpg`, { authorization: alice });
    assert.equal(snapshot.status, 503, 'the snapshot says the camera is offline');
    assert.match(snapshot.body.toString(), /401/);
    assert.equal((await get(`${server.url}/healthz`)).status, 200, 'the server still runs');
    assert.ok(log.lines.some((line) => /error \[Remote\] Capture ended: .*HTTP 401/.test(line)), log.lines.join('\n'));
    assert.deepEqual(log.lines.filter((line) => line.includes('not-her-password')), []);
  });
});

/** A scripted server on a free port: `handler` answers each request. */
async function scriptedServer(t: { after: (fn: () => Promise<void>) => void }, handler: http.RequestListener): Promise<string> {
  const server = http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function newSource(url: string, extra: Partial<ConstructorParameters<typeof HttpMjpegSource>[0]> = {}): HttpMjpegSource {
  const camera = { source: url, inputFormat: 'mjpeg', width: 160, height: 120, fps: 15, quality: 5 };
  return new HttpMjpegSource({ url, width: 160, height: 120, maxFps: 15, ffmpegPath: 'ffmpeg', scaleArgs: buildScaleArgs(camera), ...extra });
}

/** Starts `source` and resolves with its exit, after checking no second exit follows. */
async function runToExit(source: FrameSource): Promise<CaptureExit> {
  const exits: CaptureExit[] = [];
  source.on('exit', (exit: CaptureExit) => exits.push(exit));
  source.start();
  await waitUntil('the source to exit', () => exits.length > 0, 15_000);
  await sleep(200);
  assert.equal(exits.length, 1, 'exactly one exit');
  return nth(exits, 0, 'the exits');
}

describe('HttpMjpegSource: failures explained, as a FrameSource', () => {
  it('connection refused, 401 asking for Digest, 404, a web page instead of a stream', async (t) => {
    const refused = await runToExit(newSource(`http://bob:secret@127.0.0.1:${await freeTcpPort()}/stream`));
    assert.match(refused.stderr, /^http:\/\/\*\*\*@127\.0\.0\.1:\d+\/stream: connection refused/);
    assert.equal(refused.requested, false);

    const base = await scriptedServer(t, (req, res) => {
      if (req.url === '/digest') {
        res.writeHead(401, { 'WWW-Authenticate': 'Digest realm="cam", nonce="abc", qop="auth"' }).end();
      } else if (req.url === '/page') {
        res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' }).end('<html>camera settings</html>');
      } else {
        res.writeHead(404).end();
      }
    });
    const digest = await runToExit(newSource(`${base.replace('//', '//bob:secret@')}/digest`));
    assert.match(digest.stderr, /asks for Digest authentication \(HTTP 401 Unauthorized\), which this reader does not speak/);
    assert.doesNotMatch(digest.stderr, /secret/);
    // With ffmpeg to fall back on (as the runtime gives it), a Digest camera is handed to ffmpeg, with a warning.
    const log = recordingLog();
    let handedOver = 0;
    const fallback = (): FrameSource => {
      handedOver++;
      return newSource(`${base}/nothing`);
    };
    const viaFfmpeg = await runToExit(newSource(`${base.replace('//', '//bob:secret@')}/digest`, { fallback, log }));
    assert.equal(handedOver, 1);
    assert.match(viaFfmpeg.stderr, /no stream at this address/, "the fallback's own exit");
    assert.match(log.lines.join('\n'), /warn .*asks for Digest authentication: ffmpeg reads it, so its password is visible to local users in `ps`/);
    assert.doesNotMatch(log.lines.join('\n'), /secret/);
    assert.match((await runToExit(newSource(`${base}/nothing`))).stderr, /no stream at this address \(HTTP 404 Not Found\)/);
    assert.match((await runToExit(newSource(`${base}/page`))).stderr, /the answer is "text\/html", not an MJPEG stream/);
  });

  it('sends the URL\'s credentials as Basic authorization; stop() ends it as requested, mid-stream', async (t) => {
    let authorization = '';
    let closed = false;
    const base = await scriptedServer(t, (req, res) => {
      authorization = req.headers.authorization ?? '';
      res.writeHead(200, { 'Content-Type': 'multipart/x-mixed-replace; boundary=x' });
      const timer = setInterval(() => res.write(Buffer.concat([Buffer.from(`--x\r\nContent-Type: image/jpeg\r\nContent-Length: ${FRAME.length}\r\n\r\n`), FRAME, Buffer.from('\r\n')])), 100);
      req.socket.on('close', () => {
        closed = true;
        clearInterval(timer);
      });
    });
    const source = newSource(`${base.replace('//', '//b%C3%B6b:p%40ss%3Aword@')}/stream`);
    const frames: Buffer[] = [];
    const exits: CaptureExit[] = [];
    source.on('frame', (frame: JpegChunks) => frames.push(frame.bytes()));
    source.on('exit', (exit: CaptureExit) => exits.push(exit));
    source.start();
    await waitUntil('three frames', () => frames.length >= 3, 10_000);
    assert.equal(authorization, basic('böb', 'p@ss:word'));
    assert.ok(frames.every((frame) => frame.equals(FRAME)), 'passed through byte for byte');
    assert.equal(source.encoderPid, undefined, 'no ffmpeg for frames of the camera\'s size');
    await source.stop();
    assert.equal(exits.length, 1);
    assert.equal(exits[0]?.requested, true);
    await waitUntil('the server to see the connection closed', () => closed, 5_000);
  });

  it('a server that stops sending mid-stream is restarted by the hub\'s stall watchdog', async (t) => {
    let connections = 0;
    const base = await scriptedServer(t, (_req, res) => {
      connections++;
      res.writeHead(200, { 'Content-Type': 'multipart/x-mixed-replace; boundary=x' });
      // Three frames, then silence with the connection left open.
      for (let i = 0; i < 3; i++) res.write(Buffer.concat([Buffer.from(`--x\r\nContent-Length: ${FRAME.length}\r\n\r\n`), FRAME, Buffer.from('\r\n')]));
    });
    const log = recordingLog();
    const hub = new FrameHub({ name: 'stall', log, createSource: () => newSource(`${base}/stream`), stallTimeoutMs: 1_000, backoffInitialMs: 100 });
    t.after(() => hub.close());
    const release = hub.hold();
    t.after(release);
    await waitUntil('a second connection after the stall', () => connections >= 2 && hub.starts >= 2, 15_000);
    assert.ok(log.lines.some((line) => /Restarting the capture: no frame for \d+ s \(stalled\)/.test(line)), log.lines.join('\n'));
  });

  it('an answer that is not multipart is read by ffmpeg, every frame of a 10 fps stream at fps 10 (the source\'s own rate)', async (t) => {
    // Raw concatenated JPEGs at 10 fps: ffmpeg stamps them 25 fps, and an output -r 10 kept 40 %.
    let sent = 0;
    const base = await scriptedServer(t, (_req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/octet-stream' });
      const timer = setInterval(() => {
        res.write(FRAME);
        sent++;
      }, 100);
      res.on('close', () => clearInterval(timer));
    });
    const url = `${base}/raw`;
    const camera = { source: url, inputFormat: 'mjpeg', width: 160, height: 120, fps: 10, quality: 5 };
    const source = newSource(url, { maxFps: 10, fallback: () => new FfmpegCapture('ffmpeg', buildCaptureArgs(camera), url, { maxFps: 10 }) });
    const exits: CaptureExit[] = [];
    let frames = 0;
    source.on('frame', () => frames++);
    source.on('exit', (exit: CaptureExit) => exits.push(exit));
    source.start();
    t.after(() => source.stop());
    // ffmpeg probes the input for a while before its first frame, then streams.
    await waitUntil('the first frame', () => frames > 0, 20_000);
    await sleep(2_000);
    const [startCount, startSent, startAt] = [frames, sent, Date.now()];
    await sleep(5_000);
    const [received, served] = [frames - startCount, sent - startSent];
    const fps = received / ((Date.now() - startAt) / 1000);
    t.diagnostic(`${fps.toFixed(2)} fps, ${received} frames of the ${served} sent meanwhile`);
    // The sender shares this process, so its own rate varies with the load: compare with what it sent.
    assert.ok(served >= 25, `the server sent ${served} frames in 5 s`);
    assert.ok(received >= served - 2 && received <= served + 2, `${received} frames of the ${served} sent meanwhile`);
    assert.ok((await ourFfmpegs()).some((args) => args.includes(`-i ${url}`)), 'ffmpeg reads the address itself');
    await source.stop();
    assert.equal(exits.length, 1);
    assert.equal(exits[0]?.requested, true);
  });
});

describe('FrameHub over a real HttpMjpegSource', () => {
  it('goes offline with the reason and comes back when the source does', async (t) => {
    const port = await freeTcpPort();
    const hub = new FrameHub({
      name: 'remote',
      log: silentLog,
      createSource: () => newSource(`http://alice:wonderland@127.0.0.1:${port}/stream.mjpg`),
      backoffInitialMs: 100,
      backoffMaxMs: 500,
    });
    t.after(() => hub.close());
    const release = hub.hold();
    t.after(release);
    await waitUntil('offline', () => hub.state === 'offline', 10_000);
    assert.match(hub.lastError, /connection refused/);
    await startTestServer(t, { cameras: [{ name: 'Back', source: 'testsrc', width: 160, height: 120, fps: 10 }], web: { port } });
    await waitUntil('streaming again', () => hub.state === 'streaming', 20_000);
  });
});
