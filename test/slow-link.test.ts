// A remote viewer on a slow link sees a live picture, not the past (issue 13): the real server in
// its own network namespace, a viewer beside it on loopback and a viewer behind a veth link shaped to
// 2 Mbit/s (test/netns.ts), both watching /stream.mjpg of a 1280x720 30 fps test pattern. The same
// JPEG (by hash) reaches both; its lag is its arrival through the link minus its arrival on loopback.
// And Chromium behind the same link: its live page (Auto) finds MJPEG too slow and plays the H.264
// view, at the camera's width, with the delay it measures (prft wall clock) at most 1 s and the
// stream within its set bitrate.
// Without root and iproute2 this test fails with the reason: it never passes or skips silently.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { messageOf, sleep } from './helpers';
import type { Frame } from './netns';
import { createShapedLink, execIn, launchChromiumIn, sendQueues, startMjpegViewer, startServerIn } from './netns';

const WARM_UP_MS = 3_000;
const WINDOW_MS = 15_000;

/** Nearest-rank percentile of numbers (p in 0..100). */
function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  const value = sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
  assert.ok(value !== undefined, 'a percentile of no values');
  return value;
}

/** The capture's frame count and the time of its latest frame, from /api/cameras inside the server's namespace. */
async function captureCount(ns: string, url: string, authorization: string): Promise<{ frames: number; frameAt: number }> {
  const script = `fetch(${JSON.stringify(`${url}/api/cameras`)}, { headers: { authorization: ${JSON.stringify(authorization)} } }).then((r) => r.text()).then((t) => process.stdout.write(t))`;
  const [camera] = JSON.parse(await execIn(ns, process.execPath, ['-e', script])) as Array<{ frames?: number; frameAt?: number }>;
  assert.ok(camera && typeof camera.frames === 'number' && typeof camera.frameAt === 'number', 'the API counts the capture\'s frames');
  return { frames: camera.frames, frameAt: camera.frameAt };
}

function within(frames: Frame[], from: number, to: number): Frame[] {
  return frames.filter((f) => f.at >= from && f.at < to);
}

describe('a viewer on a slow link', () => {
  it('stays live over 2 Mbit/s while a local viewer keeps full rate', { timeout: 90_000 }, async (t) => {
    const link = await createShapedLink(t, { rateMbit: 2 });
    const server = await startServerIn(t, link);
    const local = startMjpegViewer(t, link.server, `${server.localUrl}/stream.mjpg`, server.authorization);
    const remote = startMjpegViewer(t, link.viewer, `${server.remoteUrl}/stream.mjpg`, server.authorization);
    await Promise.all([local.waitForFrames(1), remote.waitForFrames(1)]);

    await sleep(WARM_UP_MS);
    const captureBefore = await captureCount(link.server, server.localUrl, server.authorization);
    const from = Date.now();
    await sleep(WINDOW_MS / 2);
    const queues = await sendQueues(link.server, server.port).catch(messageOf);
    await sleep(WINDOW_MS / 2);
    const to = Date.now();
    const captureAfter = await captureCount(link.server, server.localUrl, server.authorization);
    await Promise.all([local.stop(), remote.stop()]);
    const seconds = (to - from) / 1000;
    // What the capture made meanwhile: a loaded machine's ffmpeg makes fewer than the 30 it is set to.
    const captureFps = ((captureAfter.frames - captureBefore.frames) * 1000) / (captureAfter.frameAt - captureBefore.frameAt);

    // First local arrival of each JPEG (the test pattern's gradient moves every frame, so a hash is a frame).
    const localAt = new Map<string, number>();
    for (const frame of local.frames) if (!localAt.has(frame.hash)) localAt.set(frame.hash, frame.at);
    const remoteFrames = within(remote.frames, from, to);
    const lags = remoteFrames.flatMap((f) => {
      const at = localAt.get(f.hash);
      return at === undefined ? [] : [(f.at - at) / 1000];
    });
    const localFps = within(local.frames, from, to).length / seconds;
    const remoteFps = remoteFrames.length / seconds;
    const remoteBytesPerSecond = remoteFrames.reduce((sum, f) => sum + f.bytes, 0) / seconds;
    const median = lags.length ? percentile(lags, 50) : NaN;
    const p95 = lags.length ? percentile(lags, 95) : NaN;

    t.diagnostic(`window ${seconds.toFixed(1)} s after ${WARM_UP_MS / 1000} s of warm-up, link ${link.rateMbit} Mbit/s`);
    const max = lags.length ? Math.max(...lags) : NaN;
    t.diagnostic(`remote lag median ${median.toFixed(3)} s, p95 ${p95.toFixed(3)} s, max ${max.toFixed(3)} s (${lags.length} of ${remoteFrames.length} remote frames matched)`);
    t.diagnostic(`fps capture ${captureFps.toFixed(1)}, local ${localFps.toFixed(1)}, remote ${remoteFps.toFixed(1)}; remote ${(remoteBytesPerSecond / 1000).toFixed(0)} kB/s (${((remoteBytesPerSecond * 8) / 1e6).toFixed(2)} Mbit/s)`);
    t.diagnostic(`server send queues mid-window (bytes unacknowledged per viewer socket): ${JSON.stringify(queues)}`);
    t.diagnostic((await link.shaperStats()).replace(/\s+/g, ' '));

    assert.equal(local.errors(), '', 'the local viewer saw a well-formed stream');
    assert.equal(remote.errors(), '', 'the remote viewer saw a well-formed stream');
    // The lag is a statement about frames seen on both paths; most remote frames must be among them.
    assert.ok(lags.length >= remoteFrames.length / 2 && lags.length > 0, `only ${lags.length} of ${remoteFrames.length} remote frames were also seen locally`);
    assert.ok(p95 <= 0.5, `the remote viewer's frames arrive at most 0.5 s after the local ones (p95 ${p95.toFixed(3)} s, median ${median.toFixed(3)} s)`);
    assert.ok(remoteFps >= 8, `the remote viewer gets what 2 Mbit/s carries, at least 8 fps (got ${remoteFps.toFixed(1)})`);
    // Full rate is the frames the capture made: 30 fps here, fewer when the machine is too busy to make them.
    // A local reader that falls more than a few frames behind (descheduled on a loaded machine) is handed
    // the latest frame instead: 26 of 31 fps were seen so, with the slow viewer at 10. Not dragged down to
    // the slow viewer's rate is what this checks; the quiet-machine figure (30 of 30) is in bench/.
    assert.ok(localFps >= 0.8 * captureFps, `the local viewer keeps full rate, ${captureFps.toFixed(1)} fps (got ${localFps.toFixed(1)})`);
  });

  it('plays the H.264 view in Chromium over 2 Mbit/s: chosen by Auto, 1280 wide, delay at most 1 s, within its bitrate', { timeout: 180_000 }, async (t) => {
    const BITRATE = 1000;
    const link = await createShapedLink(t, { rateMbit: 2 });
    const server = await startServerIn(t, link, { web: { h264: { bitrate: BITRATE } } });
    const browser = await launchChromiumIn(t, link.viewer);
    const context = await browser.newContext({ httpCredentials: { username: 'alice', password: 'wonderland' } });
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (error) => errors.push(error.message));
    page.on('console', (message) => {
      // Chrome says so of the server's Cross-Origin-Opener-Policy on plain HTTP to an address: not a page error.
      if (message.type() === 'error' && !/Cross-Origin-Opener-Policy header has been ignored/.test(message.text())) errors.push(message.text());
    });
    const view = () =>
      page.evaluate(() => {
        const video = document.getElementById('live-video') as HTMLVideoElement;
        const stats = document.getElementById('stats')!;
        return {
          mode: document.querySelector<HTMLElement>('figure.viewer')!.dataset.mode,
          label: stats.querySelector('.stat-mode')?.textContent ?? '',
          title: stats.title,
          delayMs: stats.dataset.delayMs === undefined ? undefined : Number(stats.dataset.delayMs),
          kbps: Number(stats.dataset.kbps ?? NaN),
          videoWidth: video.videoWidth,
          currentTime: video.currentTime,
        };
      });

    // Auto starts with MJPEG; the 1280x720 test pattern's MJPEG needs about 5 Mbit/s.
    await page.goto(`${server.remoteUrl}/`);
    await page.waitForFunction(() => document.querySelector<HTMLElement>('figure.viewer')?.dataset.mode === 'h264', undefined, { timeout: 60_000 });
    // The camera's rate as measured (30 fps, fewer on a busy machine).
    assert.match((await view()).title, /Auto: slow link: .* of the camera's [\d.]+ fps came through/);
    await page.waitForFunction(() => (document.getElementById('live-video') as HTMLVideoElement).currentTime > 1, undefined, { timeout: 30_000 });

    await sleep(WARM_UP_MS);
    const samples = [];
    for (let i = 0; i < WINDOW_MS / 1000; i++) {
      samples.push(await view());
      await sleep(1000);
    }
    const delays = samples.map((s) => s.delayMs);
    const meanKbps = samples.reduce((sum, s) => sum + s.kbps, 0) / samples.length;
    t.diagnostic(`H.264 delay (page's 2 s medians) ${delays.join(' ')} ms; ${meanKbps.toFixed(0)} kbit/s for a set ${BITRATE}`);
    t.diagnostic(`shown: ${samples.at(-1)?.label}; ${samples.at(-1)?.title}`);

    assert.equal(samples.at(-1)?.label, 'H.264 (auto)', 'the page says it plays H.264, chosen by Auto');
    assert.equal(samples.at(-1)?.videoWidth, 1280, "the camera's width");
    const [firstSample] = samples;
    const lastSample = samples.at(-1);
    assert.ok(firstSample && lastSample);
    assert.ok(lastSample.currentTime > firstSample.currentTime + 1, 'the video advances');
    assert.ok(delays.every((d) => d !== undefined && d <= 1000), `the delay the page measures stays at most 1 s (${delays.join(' ')} ms)`);
    assert.ok(meanKbps <= BITRATE * 1.25, `the stream stays within its bitrate + 25% (${meanKbps.toFixed(0)} kbit/s)`);
    assert.deepEqual(errors, [], 'no script or CSP errors');
  });
});
