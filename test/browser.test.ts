// Headless Chromium (Debian's, driven by playwright-core) logs in with basic auth and watches the
// live page: the image is the camera's, it changes over time, and the kiosk page shows it too.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { CHROMIUM, messageOf, openLoggedInPage, startTestServer } from './helpers';

// Skipped only outside CI: CI installs Chromium, so there a missing browser is a failure.
const skip = CHROMIUM || process.env.CI ? false : 'Chromium is not installed (apt-get install chromium)';

describe('live page in Chromium', { skip }, () => {
  it('logs in, shows the camera and a moving live image', async (t) => {
    const server = await startTestServer(t, {
      cameras: [
        // No clock over this one: only the picture itself can make two screenshots differ.
        { name: 'Garden <Cam>', source: 'testsrc', width: 320, height: 240, fps: 10 },
        { name: 'Clock', source: 'testsrc', width: 160, height: 120, fps: 5, timestamp: true },
      ],
    });
    const { browser, page, errors } = await openLoggedInPage(t);

    // Without credentials Chromium gets no page (Playwright reports the refused challenge).
    const refused = await browser.newContext({ httpCredentials: { username: 'alice', password: 'wrong' } });
    const denied = await (await refused.newPage()).goto(server.url + '/').then(
      (res) => `status ${res?.status()}`,
      messageOf,
    );
    assert.match(denied, /status 401|ERR_INVALID_AUTH_CREDENTIALS/);

    // With two cameras / is the grid (test/live-page.test.ts): this is the first camera's own page.
    const response = await page.goto(server.url + '/cameras/garden-cam/');
    assert.equal(response?.status(), 200);
    // From the first frame on, the badge says what the page sees (it was built while the capture was idle).
    // (A string, so the bundler's helpers do not end up in the page.)
    const badgeLag = page.evaluate<number>(`new Promise((resolve) => {
      const img = document.getElementById('live');
      const badge = document.getElementById('state');
      let framesBehind = 0;
      let framesSeen = 0;
      requestAnimationFrame(function tick() {
        if (img.naturalWidth > 0) {
          framesSeen++;
          if (badge.textContent !== 'streaming') framesBehind++;
        }
        if (framesSeen >= 240) resolve(framesBehind);
        else requestAnimationFrame(tick);
      });
    })`);
    const live = page.locator('#live');
    // Read in one step: each MJPEG frame is a new blob URL, 0 wide while it decodes.
    const size = await page.waitForFunction(() => {
      const img = document.getElementById('live') as HTMLImageElement | null;
      return img !== null && img.naturalWidth > 0 ? [img.naturalWidth, img.naturalHeight] : false;
    });
    assert.deepEqual(await size.jsonValue(), [320, 240]);
    assert.equal(await page.locator('#clock').isHidden(), true, 'no clock unless configured');

    const first = await live.screenshot();
    await page.waitForTimeout(1200);
    const second = await live.screenshot();
    assert.notDeepEqual(first, second, 'the live image changed');
    assert.ok((await badgeLag) <= 3, 'the badge reads "streaming" as soon as the picture moves, not after the next poll');
    assert.deepEqual(errors, [], 'no script or CSP errors');

    const kiosk = await page.context().newPage();
    await kiosk.goto(server.url + '/cameras/clock/kiosk');
    await kiosk.waitForFunction(() => ((document.getElementById('live') as HTMLImageElement | null)?.naturalWidth ?? 0) > 0);
    assert.equal(await kiosk.evaluate(() => getComputedStyle(document.body).backgroundColor), 'rgb(0, 0, 0)');
    await kiosk.waitForFunction(() => document.getElementById('clock')?.hidden === false);
    assert.match((await kiosk.locator('#clock').textContent()) ?? '', /\d{1,2}:\d{2}:\d{2}/);
  });
});
