// The shared H.264 stage with real ffmpeg: a testsrc capture in a FrameHub, one encoder writing
// fragmented MP4 that ffprobe reads as H.264 of the asked size and profile; readers that start
// at a key frame as far back as they ask; one encoder for many readers; stopped when nobody
// holds it; restarted (with a new init segment) when it dies. Plus the fMP4 parsing and the
// ring buffer's pure policy.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { silentLog } from '../src/log';
import { FfmpegCapture } from '../src/media/capture';
import { buildCaptureArgs } from '../src/media/capture-args';
import { BoxSplitter, Fmp4Assembler } from '../src/media/fmp4';
import type { Fmp4Fragment } from '../src/media/fmp4';
import { FrameHub } from '../src/media/frame-hub';
import { fmp4OutputArgs } from '../src/media/h264-args';
import type { H264Settings } from '../src/media/h264-args';
import { H264Stage, startIndex, trimCount } from '../src/media/h264-stage';
import type { StageItem } from '../src/media/h264-stage';
import { childProcessesNamed, execFileAsync, nth, tempDir, waitUntil } from './helpers';

const SETTINGS: H264Settings = {
  width: 320,
  height: 240,
  fps: 15,
  bitrateKbps: 300,
  profile: 'high',
  level: '3.1',
  encoder: 'libx264',
  keyframeMs: 1000,
  fragmentMs: 250,
};

function testHub(t: { after: (fn: () => Promise<void>) => void }): FrameHub {
  const camera = { source: 'testsrc', inputFormat: 'mjpeg', width: 320, height: 240, fps: 15, quality: 5 };
  const hub = new FrameHub({ name: 'test', log: silentLog, createSource: () => new FfmpegCapture('ffmpeg', buildCaptureArgs(camera), 'testsrc'), idleGraceMs: 500 });
  t.after(() => hub.close());
  return hub;
}

/** Reads until `enough` says so; answers the init segments and fragments in the order they came. */
async function collect(items: AsyncGenerator<StageItem>, enough: (fragments: Fmp4Fragment[]) => boolean): Promise<{ order: string[]; data: Buffer[]; fragments: Fmp4Fragment[] }> {
  const order: string[] = [];
  const data: Buffer[] = [];
  const fragments: Fmp4Fragment[] = [];
  for await (const item of items) {
    if (item.type === 'init') {
      order.push('init');
      data.push(item.init.data);
    } else {
      order.push(item.fragment.key ? 'key' : 'frag');
      data.push(item.fragment.data);
      fragments.push(item.fragment);
    }
    if (enough(fragments)) break;
  }
  return { order, data, fragments };
}

const mediaMs = (fragments: Fmp4Fragment[]) => fragments.reduce((sum, f) => sum + f.durationMs, 0);

describe('H.264 stage policy', () => {
  const f = (key: boolean, startMs: number, durationMs = 250) => ({ key, startMs, durationMs });
  const ring = [f(true, 0), f(false, 250), f(false, 500), f(false, 750), f(true, 1000), f(false, 1250), f(false, 1500), f(false, 1750), f(true, 2000), f(false, 2250)];

  it('starts a reader at the newest key frame that reaches back far enough', () => {
    assert.equal(startIndex(ring, 0), 8, 'live: the newest key frame');
    assert.equal(startIndex(ring, 500), 8, '0.5 s back: the key frame at 2.0 s reaches back 0.5 s');
    assert.equal(startIndex(ring, 1000), 4);
    assert.equal(startIndex(ring, 2500), 0);
    assert.equal(startIndex(ring, 60_000), 0, 'as far as the ring reaches');
    assert.equal(startIndex([f(false, 0), f(false, 250)], 0), 2, 'no key frame yet: nothing to start from');
    assert.equal(startIndex([], 1000), 0);
  });

  it('trims the ring to whole GOPs that still reach the buffer length back', () => {
    assert.equal(trimCount(ring, 1000), 4);
    assert.equal(trimCount(ring, 2000), 0, 'just reaches 2.5 s back from the first key frame');
    assert.equal(trimCount(ring, 100), 8);
  });

  it('reads the init segment and fragments ffmpeg writes, key frames and times included', async () => {
    const { stdout } = await execFileAsync(
      'ffmpeg',
      ['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'testsrc=size=320x240:rate=10', '-t', '3', ...fmp4OutputArgs({ ...SETTINGS, fps: 10 })],
      { encoding: 'buffer', maxBuffer: 16 * 1024 * 1024 },
    );
    const inits: string[] = [];
    const fragments: Fmp4Fragment[] = [];
    const assembler = new Fmp4Assembler(
      (init) => inits.push(`${init.video.codec} ${init.video.width}x${init.video.height}`),
      (fragment) => fragments.push(fragment),
    );
    const splitter = new BoxSplitter();
    // Fed in odd-sized pieces, as a pipe delivers them.
    for (let at = 0; at < stdout.length; at += 777) for (const box of splitter.push(stdout.subarray(at, at + 777))) assembler.push(box);
    assert.deepEqual(inits, ['avc1.64001f 320x240'], 'High, level 3.1');
    assert.deepEqual(
      fragments.filter((fragment) => fragment.key).map((fragment) => Math.round(fragment.startMs)),
      [0, 1000, 2000],
      'a key frame every second',
    );
    assert.ok(fragments.every((fragment) => fragment.durationMs <= 300), 'cut at least every 250 ms (a frame more at most)');
    assert.equal(Math.round(mediaMs(fragments)), 3000);
    assert.ok(fragments.every((fragment) => fragment.data.toString('latin1', 4, 8) === 'prft'), 'each fragment carries its wall-clock time');
  });
});

describe('H.264 stage with real ffmpeg', () => {
  it('one encoder for every reader; each starts with the init segment and a key frame, as far back as it asks', async (t) => {
    const hub = testHub(t);
    const stage = new H264Stage({ name: 'test', hub, ffmpegPath: 'ffmpeg', settings: SETTINGS, log: silentLog, idleGraceMs: 300, bufferMs: 3000 });
    t.after(() => stage.close());

    // Held by the test too, so the encoder stays while the first reader's file is checked.
    const holding = stage.hold();
    const first = await collect(stage.read(), (fragments) => mediaMs(fragments) >= 4000);
    assert.equal(first.order[0], 'init');
    assert.equal(first.order[1], 'key', 'a new reader starts at a key frame');
    const file = join(tempDir(), 'first.mp4');
    writeFileSync(file, Buffer.concat(first.data));
    const probe = await execFileAsync('ffprobe', ['-v', 'error', '-select_streams', 'v:0', '-show_entries', 'stream=codec_name,profile,width,height,pix_fmt', '-of', 'json', file]);
    const [stream] = (JSON.parse(probe.stdout) as { streams: Array<Record<string, unknown>> }).streams;
    assert.deepEqual(stream, { codec_name: 'h264', profile: 'High', width: 320, height: 240, pix_fmt: 'yuv420p' });

    // A second and a third reader after the first has gone: one reaches 2 s back, one starts live.
    const back = await collect(stage.read({ backMs: 2000 }), (fragments) => fragments.length >= 1);
    const edge = stage.bufferedMs;
    assert.equal(back.order[1], 'key');
    assert.ok(edge >= 2000, `the ring holds at least 2 s (${edge} ms)`);
    const live = await collect(stage.read(), (fragments) => fragments.length >= 1);
    assert.equal(live.order[1], 'key');
    const [backFirst] = back.fragments;
    const [liveFirst] = live.fragments;
    assert.ok(backFirst && liveFirst);
    assert.ok(backFirst.startMs < liveFirst.startMs, 'further back than a live reader');
    assert.equal(stage.starts, 1, 'one encoder served every reader');
    assert.equal(hub.starts, 1, 'and one capture');

    holding();
    await waitUntil('the encoder to stop once nobody holds it', () => !stage.running, 10_000);
    await waitUntil('only the capture left running', async () => (await childProcessesNamed(process.pid, 'ffmpeg')).length <= 1, 10_000);
  });

  it('restarts an encoder that dies while held; the reader gets a new init segment and goes on', async (t) => {
    const hub = testHub(t);
    const stage = new H264Stage({ name: 'test', hub, ffmpegPath: 'ffmpeg', settings: SETTINGS, log: silentLog, idleGraceMs: 300, backoffInitialMs: 100 });
    t.after(() => stage.close());
    const controller = new AbortController();
    const order: string[] = [];
    let killed = false;
    for await (const item of stage.read({ signal: controller.signal })) {
      order.push(item.type === 'init' ? 'init' : item.fragment.key ? 'key' : 'frag');
      if (!killed && order.length >= 4) {
        killed = true;
        const encoders = (await childProcessesNamed(process.pid, 'ffmpeg')).filter((pid) => pid !== (hub as unknown as { source?: { pid?: number } }).source?.pid);
        assert.equal(encoders.length, 1, 'one encoder besides the capture');
        process.kill(nth(encoders, 0, 'the encoders'), 'SIGKILL');
      }
      if (order.filter((kind) => kind === 'init').length === 2 && order[order.length - 1] === 'key') controller.abort();
    }
    const second = order.lastIndexOf('init');
    assert.ok(second > 0, 'a second init segment');
    assert.equal(order[second + 1], 'key', 'and the reader resumes at a key frame');
    assert.equal(stage.starts, 2);
  });

  it('new settings while a new holder arrives: the old encoder stops and exactly one new one runs', async (t) => {
    const hub = testHub(t);
    const stage = new H264Stage({ name: 'test', hub, ffmpegPath: 'ffmpeg', settings: SETTINGS, log: silentLog, idleGraceMs: 300 });
    t.after(() => stage.close());
    const capturePid = () => (hub as unknown as { source?: { pid?: number } }).source?.pid;
    const encoders = async () => (await childProcessesNamed(process.pid, 'ffmpeg')).filter((pid) => pid !== capturePid());
    const releaseFirst = stage.hold();
    await waitUntil('the first encoder to write its init segment', () => stage.init !== undefined, 15_000);
    const [old] = await encoders();
    assert.ok(old);
    stage.configure({ ...SETTINGS, bitrateKbps: 400 });
    const releaseSecond = stage.hold(); // arrives while the old encoder is being stopped
    await waitUntil('the old encoder to be gone', async () => !(await encoders()).includes(old), 10_000);
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(stage.starts, 2, 'one new encoder, not one for the hold and another for the new settings');
    assert.equal((await encoders()).length, 1);
    assert.equal(stage.currentSettings.bitrateKbps, 400);
    releaseFirst();
    releaseSecond();
  });
});
