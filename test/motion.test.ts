// Motion detection: the pure scoring and thresholds, and the detector on a real testsrc capture.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { silentLog } from '../src/log';
import { changedFraction, DEFAULT_SAMPLE_FPS, isSampleDue, MotionDetector, motionThreshold, sampleInterval, STILL_AFTER_MS, STILL_SAMPLE_FPS } from '../src/media/motion';
import type { Frame } from '../src/media/frame-hub';
import { Snapshotter } from '../src/media/snapshot';
import { execFileAsync, probeSize, sleep, startTestServer, tempDir } from './helpers';
import { EventEmitter } from 'node:events';
import { FrameHub } from '../src/media/frame-hub';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** A 160x120 JPEG of one colour, made by ffmpeg. */
async function solidJpeg(color: string): Promise<Buffer> {
  const args = ['-v', 'error', '-f', 'lavfi', '-i', `color=${color}:size=160x120`, '-frames:v', '1', '-c:v', 'mjpeg', '-f', 'mjpeg', 'pipe:1'];
  return (await execFileAsync('ffmpeg', args, { encoding: 'buffer' })).stdout;
}

/** A FrameHub whose capture is an emitter the test drives: `source.emit('frame', jpeg)`. */
function drivenHub(name: string): { source: EventEmitter; hub: FrameHub } {
  const source = Object.assign(new EventEmitter(), { start: () => {}, stop: () => Promise.resolve() });
  return { source, hub: new FrameHub({ name, log: silentLog, createSource: () => source }) };
}

describe('motion scoring', () => {
  it('counts the pixels that changed by more than the threshold', () => {
    const a = new Uint8Array([0, 10, 100, 200]);
    const b = new Uint8Array([0, 30, 160, 200]);
    assert.equal(changedFraction(a, a), 0);
    assert.equal(changedFraction(a, b), 0.25, 'only the 60-level change counts at threshold 24');
    assert.equal(changedFraction(a, b, 10), 0.5);
  });

  it('needs less change the higher the sensitivity', () => {
    const thresholds = [0, 25, 50, 75, 100].map(motionThreshold);
    thresholds.reduce((previous, threshold) => {
      assert.ok(threshold < previous);
      return threshold;
    });
    assert.ok(motionThreshold(0) >= 0.25 && motionThreshold(100) <= 0.005);
  });
});

describe('sampling', () => {
  it('analyses a frame only when a whole interval has passed since the last one analysed', () => {
    assert.equal(isSampleDue(1_000, 0, 250), true);
    assert.equal(isSampleDue(1_249, 1_000, 250), false);
    assert.equal(isSampleDue(1_250, 1_000, 250), true);
  });

  it(`samples a scene that has not changed for ${STILL_AFTER_MS / 1000} s at ${STILL_SAMPLE_FPS} a second, a moving one at ${DEFAULT_SAMPLE_FPS}`, () => {
    const policy = { intervalMs: 250, stillIntervalMs: 1000, stillAfterMs: 10_000 };
    assert.equal(sampleInterval(5_000, 0, policy), 250, 'changed 5 s ago: still moving');
    assert.equal(sampleInterval(9_999, 0, policy), 250);
    assert.equal(sampleInterval(10_000, 0, policy), 1000, 'unchanged for 10 s: still');
    assert.equal(sampleInterval(10_000, 9_000, policy), 250, 'a change makes it moving again');
  });

  it('slows down on a still picture and speeds up again when it changes', async () => {
    const [grey, white] = [await solidJpeg('gray'), await solidJpeg('white')];
    const { source, hub } = drivenHub('still');
    // Moving: up to 50 a second; still after 300 ms: at most 5 a second.
    const detector = new MotionDetector(hub, { sensitivity: 50, cooldownSeconds: 30, sampleFps: 50, stillSampleFps: 5, stillAfterMs: 300 }, silentLog);
    let motions = 0;
    detector.on('motion', () => motions++);
    detector.start();
    const feed = async (frame: Buffer, count: number, gapMs: number) => {
      for (let i = 0; i < count; i++) {
        source.emit('frame', frame);
        await sleep(gapMs);
      }
    };
    try {
      await feed(grey, 40, 10); // 0.4 s: past stillAfterMs
      const startedStill = Date.now();
      const beforeStill = detector.framesAnalysed;
      await feed(grey, 100, 10); // ~1 s of an unchanged picture
      const stillMs = Date.now() - startedStill;
      const still = detector.framesAnalysed - beforeStill;
      const most = Math.floor(stillMs / 200) + 1;
      assert.ok(still >= 1, 'a still picture is still looked at');
      assert.ok(still <= most, `${still} frames analysed in ${stillMs} ms of a still picture: at most ${most} (5 a second)`);

      // A change: seen at the still rate, then the scene counts as moving (motion is detected) and
      // every frame 25 ms apart is analysed again, far more than 5 a second would allow.
      await feed(white, 30, 25);
      assert.equal(motions, 1, 'the change is motion');
      const beforeMoving = detector.framesAnalysed;
      await feed(grey, 24, 25);
      const moving = detector.framesAnalysed - beforeMoving;
      assert.ok(moving >= 8, `${moving} of 24 frames 25 ms apart analysed once the scene moved (a still scene: at most 4)`);
    } finally {
      detector.stop();
      await hub.close();
    }
  });

  it(`decodes at most ${DEFAULT_SAMPLE_FPS} frames a second of a camera sending many more, the rest passed over`, async () => {
    const jpeg = await solidJpeg('gray');
    const { source, hub } = drivenHub('fast');
    const detector = new MotionDetector(hub, { sensitivity: 50, cooldownSeconds: 1 }, silentLog);
    // Every frame the detector was handed, as the hub timed it.
    const times: number[] = [];
    const counter = hub.subscribe((frame: Frame, done) => {
      times.push(frame.time);
      done();
    });
    detector.start();
    // 100 frames a second for 1.5 s.
    for (let i = 0; i < 150; i++) {
      source.emit('frame', jpeg);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
    detector.stop();
    counter.unsubscribe();
    await hub.close();
    const [first] = times;
    const last = times.at(-1);
    assert.ok(first !== undefined && last !== undefined, 'frames were delivered');
    const spanMs = last - first;
    const most = Math.floor(spanMs / (1000 / DEFAULT_SAMPLE_FPS)) + 1;
    assert.ok(times.length > 3 * most, `the hub delivered many more frames (${times.length}) than may be analysed (${most})`);
    assert.ok(detector.framesAnalysed >= 2, 'it does analyse');
    assert.ok(detector.framesAnalysed <= most, `${detector.framesAnalysed} frames analysed in ${spanMs} ms: at most ${most}`);
  });
});

describe('on a still scene', () => {
  it('sees nothing while the picture stays the same, and motion when it changes', async () => {
    const [grey, white] = [await solidJpeg('gray'), await solidJpeg('white')];
    const { source, hub } = drivenHub('still');
    const detector = new MotionDetector(hub, { sensitivity: 100, cooldownSeconds: 1, sampleFps: 50 }, silentLog);
    let seen = 0;
    detector.on('motion', () => seen++);
    detector.start();
    for (let i = 0; i < 10; i++) {
      source.emit('frame', grey);
      await new Promise((resolve) => setTimeout(resolve, 40));
    }
    assert.equal(seen, 0, 'no motion in a still picture, even at the highest sensitivity');
    source.emit('frame', white);
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(seen, 1, 'motion when it changes');
    detector.stop();
    await hub.close();
  });
});

describe('on a real capture', () => {
  it('sees motion in the moving test pattern, then clears after the cooldown', async (t) => {
    const server = await startTestServer(t, { cameras: [{ name: 'Test Cam', source: 'testsrc', width: 320, height: 240, fps: 15 }] });
    const hub = server.camera().hub;
    const detector = new MotionDetector(hub, { sensitivity: 50, cooldownSeconds: 1 }, silentLog);
    t.after(() => detector.stop());
    const events: string[] = [];
    const motion = new Promise<void>((resolve) => detector.once('motion', () => resolve()));
    detector.on('motion', () => events.push('motion'));
    detector.on('clear', () => events.push('clear'));
    detector.start();
    await motion;
    assert.equal(detector.detected, true);
    await new Promise((resolve) => setTimeout(resolve, 1300));
    assert.deepEqual(events.slice(0, 2), ['motion', 'clear']);
  });

  it('puts motion and camera state on the runtime event bus', async (t) => {
    const server = await startTestServer(t, {
      cameras: [{ name: 'Test Cam', source: 'testsrc', width: 160, height: 120, fps: 10, motion: { sensitivity: 60, cooldownSeconds: 1 } }],
      motion: true,
    });
    const camera = await new Promise<string>((resolve) => server.runtime.once('motion', (c) => resolve(c.name)));
    assert.equal(camera, 'Test Cam');
  });

  it('scales snapshots to the requested size and reuses them while they are fresh', async (t) => {
    const server = await startTestServer(t, { cameras: [{ name: 'Test Cam', source: 'testsrc', width: 640, height: 360, fps: 15 }] });
    const hub = server.camera().hub;
    // Fresh for ten minutes, so the reuse below does not depend on how fast ffprobe runs here.
    const snapshots = new Snapshotter(hub, { maxAgeMs: 600_000 });
    const [a, b] = await Promise.all([snapshots.get(320, 240), snapshots.get(320, 240)]);
    assert.equal(a, b, 'concurrent requests share one result');
    const file = join(tempDir(), 'snap.jpg');
    writeFileSync(file, a);
    assert.deepEqual(await probeSize(file), [320, 240]);
    assert.equal(await snapshots.get(320, 240), a, 'cached');
    const full = await snapshots.get();
    writeFileSync(file, full);
    assert.deepEqual(await probeSize(file), [640, 360]);

    // Once a snapshot is older than maxAgeMs, the next is made from a newer frame.
    const shortLived = new Snapshotter(hub, { maxAgeMs: 1 });
    const first = await shortLived.get(320, 240);
    await sleep(200);
    assert.notEqual(await shortLived.get(320, 240), first, 'made again from a newer frame');
  });
});
