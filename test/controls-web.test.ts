// Camera controls end to end: the real server with a testsrc picture whose controls device is a
// stand-in uvcdynctrl answering like a Logitech C920 (test/fixtures/controls/bin, put first on
// PATH), and the real Debian uvcdynctrl with no camera. Checks the command lines the tool gets
// from the config at start, from the API and from the page's sliders in headless Chromium, and
// that a bad request runs nothing.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { delimiter, join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { basic, childProcessesNamed, CHROMIUM, messageOf, MjpegClient, openLoggedInPage, sleep, startTestServer, tempDir } from './helpers';

const FAKE_BIN = join(__dirname, 'fixtures', 'controls', 'bin');
const auth = { authorization: basic('alice', 'wonderland') };
const json = { ...auth, 'content-type': 'application/json' };

interface Call {
  tool: string;
  args: string[];
}

function readCalls(dir: string): Call[] {
  const file = join(dir, 'calls.jsonl');
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as Call);
}

const setCalls = (dir: string) => readCalls(dir).filter((c) => c.args.some((a) => a.startsWith('--set')));

/** The config's values, as the tool gets them each time the capture (re)starts. */
const CONFIG_SETS = [
  ['--device=video0', '--set=Focus, Auto', '--', '0'],
  ['--device=video0', '--set=Brightness', '--', '140'],
].map((args) => args.join('\0'));

/**
 * The set calls after the first `from`, less the config's values: a capture restart (its stall
 * watchdog on a loaded machine) applies those again between the page's own calls.
 */
const pageSetCalls = (dir: string, from: number) => setCalls(dir).slice(from).filter((c) => !CONFIG_SETS.includes(c.args.join('\0')));

async function waitFor<T>(what: string, probe: () => T | undefined, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** The longest wait for work that spawns the stand-in tool once per control. */
const SPAWNS_MS = 120_000;

describe('controls with a C920 stand-in on PATH', () => {
  const savedPath = process.env.PATH;
  let dir = '';
  before(() => {
    process.env.PATH = `${FAKE_BIN}${delimiter}${savedPath}`;
  });
  after(() => {
    process.env.PATH = savedPath;
  });

  const start = async (t: Parameters<typeof startTestServer>[0]) => {
    dir = tempDir();
    process.env.FAKE_CONTROLS_DIR = dir;
    return startTestServer(t, {
      cameras: [
        {
          name: 'Porch',
          source: 'testsrc',
          width: 320,
          height: 240,
          fps: 15,
          controlsDevice: 'video0',
          controls: { Brightness: 140, 'Focus, Auto': false },
        },
      ],
    });
  };

  it('applies the config when the capture starts, then serves and sets values over the API', async (t) => {
    const { app } = await start(t);
    assert.deepEqual(setCalls(dir), [], 'nothing is set before the camera starts');
    const snapshot = await app.inject({ url: '/cameras/porch/snapshot.jpg', headers: auth });
    assert.equal(snapshot.statusCode, 200);
    const applied = await waitFor('the config values', () => (setCalls(dir).length >= 2 ? setCalls(dir) : undefined));
    assert.deepEqual(applied.map((c) => c.args), [
      ['--device=video0', '--set=Focus, Auto', '--', '0'],
      ['--device=video0', '--set=Brightness', '--', '140'],
    ]);

    const listed = await app.inject({ url: '/api/cameras/porch/controls', headers: auth });
    assert.equal(listed.statusCode, 200);
    assert.equal(listed.headers['cache-control'], 'no-store');
    const controls = listed.json<Array<Record<string, unknown>>>();
    assert.equal(controls.length, 21);
    assert.deepEqual(controls.find((c) => c.name === 'Brightness'), {
      name: 'Brightness', label: 'Brightness', type: 'integer', value: 140, min: 0, max: 255, step: 1, default: 128, readOnly: false, inactive: false,
    });
    assert.equal(controls.find((c) => c.name === 'Focus, Auto')?.value, 0);

    const put = await app.inject({ method: 'PUT', url: '/api/cameras/porch/controls', headers: json, payload: { 'Pan (Absolute)': -7200, 'Power Line Frequency': '50 Hz' } });
    assert.equal(put.statusCode, 200, put.body);
    assert.deepEqual(setCalls(dir).slice(2).map((c) => c.args), [
      ['--device=video0', '--set=Power Line Frequency', '--', '1'],
      ['--device=video0', '--set=Pan (Absolute)', '--', '-7200'],
    ]);
    const after = put.json<Array<{ name: string; value: number }>>();
    assert.equal(after.find((c) => c.name === 'Pan (Absolute)')?.value, -7200, 'answers the new values');
    assert.equal(after.find((c) => c.name === 'Power Line Frequency')?.value, 1);
  });

  it('applies the config again when the capture comes back (a webcam unplugged forgets its settings)', async (t) => {
    const { app } = await start(t);
    const viewer = new MjpegClient(`http://127.0.0.1:${(app.server.address() as AddressInfo).port}/cameras/porch/stream.mjpg`, auth.authorization);
    await viewer.open();
    t.after(() => viewer.close());
    await viewer.waitForParts(1);
    await waitFor('the first application', () => (setCalls(dir).length >= 2 ? true : undefined));
    const listsBefore = readCalls(dir).filter((c) => c.args.includes('--clist')).length;
    const [capture] = await childProcessesNamed(process.pid, 'ffmpeg');
    assert.ok(capture, 'the capture ffmpeg runs');
    process.kill(capture, 'SIGKILL');
    await waitFor('the second application', () => (setCalls(dir).length >= 4 ? true : undefined), 15_000);
    assert.deepEqual(setCalls(dir).slice(2).map((c) => c.args.slice(1)), [
      ['--set=Focus, Auto', '--', '0'],
      ['--set=Brightness', '--', '140'],
    ]);
    const listsAfter = readCalls(dir).filter((c) => c.args.includes('--clist')).length;
    assert.equal(listsAfter, listsBefore + 1, 'the controls are discovered again (the device may be another one)');
  });

  it('refuses bad requests with a 400 naming the problem, and runs no tool at all', async (t) => {
    const { app } = await start(t);
    const first = await app.inject({ url: '/api/cameras/porch/controls', headers: auth });
    assert.equal(first.statusCode, 200);
    const callsBefore = readCalls(dir).length;
    const bad: Array<[string, unknown, RegExp]> = [
      ['unknown name', { Sparkle: 1 }, /No control "Sparkle" on this device/],
      ['wrong type (string)', { Brightness: '90' }, /"Brightness": "90" is not a number/],
      ['wrong type (boolean)', { Brightness: true }, /true is not a number/],
      ['null', { Brightness: null }, /null is not a number/],
      ['nested object', { Brightness: { $gt: 1 } }, /object is not a number/],
      ['out of range', { Brightness: 256 }, /256 is out of range; it takes a whole number from 0 to 255/],
      ['huge', { Brightness: 1e9 }, /out of range/],
      ['fraction', { Brightness: 1.5 }, /not a whole number/],
      ['between steps', { 'Focus (absolute)': 12 }, /between steps/],
      ['bad choice', { 'Exposure, Auto': 2 }, /not one of its choices/],
      ['one bad among good ones', { Contrast: 10, Saturation: -5 }, /"Saturation": -5 is out of range/],
      ['empty', {}, /fewer than 1 items|must NOT have fewer than 1 properties/],
      ['array', [1, 2], /must be object/],
    ];
    for (const [what, payload, expected] of bad) {
      const res = await app.inject({ method: 'PUT', url: '/api/cameras/porch/controls', headers: json, payload: JSON.stringify(payload) });
      assert.equal(res.statusCode, 400, what);
      assert.match(res.json<{ message: string }>().message, expected, what);
    }
    const notJson = await app.inject({ method: 'PUT', url: '/api/cameras/porch/controls', headers: { ...auth, 'content-type': 'text/plain' }, payload: 'Brightness=1' });
    // A form or text body (what a foreign page can send without CORS) is not a JSON object.
    assert.equal(notJson.statusCode, 400);
    const broken = await app.inject({ method: 'PUT', url: '/api/cameras/porch/controls', headers: json, payload: '{"Brightness": ' });
    assert.equal(broken.statusCode, 400);
    const tooMany = Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`c${i}`, 1]));
    assert.equal((await app.inject({ method: 'PUT', url: '/api/cameras/porch/controls', headers: json, payload: tooMany })).statusCode, 400);
    const longName = { ['x'.repeat(500)]: 1 };
    assert.equal((await app.inject({ method: 'PUT', url: '/api/cameras/porch/controls', headers: json, payload: longName })).statusCode, 400);
    assert.equal(readCalls(dir).length, callsBefore, 'no tool ran for any bad request');

    const unknownCamera = await app.inject({ method: 'PUT', url: '/api/cameras/nope/controls', headers: json, payload: { Brightness: 1 } });
    assert.equal(unknownCamera.statusCode, 404);
    const anonymous = await app.inject({ method: 'PUT', url: '/api/cameras/porch/controls', headers: { 'content-type': 'application/json' }, payload: { Brightness: 1 } });
    assert.equal(anonymous.statusCode, 401);
    assert.equal(readCalls(dir).length, callsBefore);
  });

  it('page sliders, switches and lists in Chromium send exactly the chosen values', { skip: !CHROMIUM && !process.env.CI && 'Chromium is not installed' }, async (t) => {
    const server = await start(t);
    const { page, errors } = await openLoggedInPage(t);
    // Showing the table runs the tool once per control (22 processes of the Node stand-in, ~1 s of CPU):
    // on a loaded machine that took over 30 s. The waits bound a hang, they do not time the page.
    page.setDefaultTimeout(SPAWNS_MS);
    await page.goto(server.url + '/cameras/porch/');
    const row = (name: string) => page.locator(`#controls-table tr[data-control="${name}"]`);
    await row('Brightness').waitFor();
    assert.equal(await page.locator('#controls-table tbody tr').count(), 21);
    // The page's stream started the capture, so the config's values arrive; once they have, a
    // fresh page shows them (its first read may have come before they were applied).
    await waitFor('the config values', () => (setCalls(dir).length >= 2 ? true : undefined), SPAWNS_MS);
    await page.reload();
    await row('Brightness').waitFor();
    await page.waitForFunction(() => document.querySelector('#controls-table tr[data-control="Brightness"] .current')?.textContent === '140', undefined, { timeout: SPAWNS_MS });

    const mark = setCalls(dir).length;
    await row('Brightness').locator('input[type="range"]').fill('200');
    await row('Focus, Auto').locator('input[type="checkbox"]').check();
    await row('Power Line Frequency').locator('select').selectOption({ label: '50 Hz' });
    await row('Pan (Absolute)').locator('input[type="range"]').fill('-3600');
    // Each change runs the tool once (a process each): bounded generously for a busy machine.
    await waitFor('the page changes', () => (pageSetCalls(dir, mark).length >= 4 ? true : undefined), SPAWNS_MS).catch((error: unknown) => {
      throw new Error(`${messageOf(error)}; the tool ran ${JSON.stringify(setCalls(dir).slice(mark))}; page errors ${JSON.stringify(errors)}`);
    });
    assert.deepEqual(pageSetCalls(dir, mark).map((c) => c.args), [
      ['--device=video0', '--set=Brightness', '--', '200'],
      ['--device=video0', '--set=Focus, Auto', '--', '1'],
      ['--device=video0', '--set=Power Line Frequency', '--', '1'],
      ['--device=video0', '--set=Pan (Absolute)', '--', '-3600'],
    ]);
    await page.waitForFunction(() => document.querySelector('#controls-table tr[data-control="Pan (Absolute)"] .current')?.textContent === '-3600', undefined, { timeout: SPAWNS_MS });
    assert.equal(await row('Brightness').locator('.current').textContent(), '200');
    assert.equal(await row('Power Line Frequency').locator('.current').textContent(), '50 Hz');

    // The Default button sends the default value.
    await row('Brightness').locator('button').click();
    await waitFor('the default', () => (pageSetCalls(dir, mark).length >= 5 ? true : undefined), SPAWNS_MS);
    assert.deepEqual(pageSetCalls(dir, mark).at(-1)?.args, ['--device=video0', '--set=Brightness', '--', '128']);

    // The stream rate cap changes the MJPEG stream the page reads, and is remembered. (MJPEG
    // chosen: on a busy machine Auto may find the frames too few and turn to H.264.)
    await page.locator('input[name="mode"][value="mjpeg"]').check();
    const capped = page.waitForRequest((request) => /\/stream\.mjpg\?fps=5$/.test(request.url()), { timeout: 10_000 });
    await page.locator('#rate').selectOption('5');
    await capped;
    const cappedAgain = page.waitForRequest((request) => /\/stream\.mjpg\?fps=5$/.test(request.url()), { timeout: 10_000 });
    await page.reload();
    await cappedAgain;
    assert.deepEqual(errors, [], 'no script or CSP errors');
  });
});

describe('controls with the real uvcdynctrl and no camera', { skip: !existsSync('/usr/bin/uvcdynctrl') && !process.env.CI && 'uvcdynctrl is not installed' }, () => {
  it('answers a clear 503 state, not a 500, for a missing device and for a camera with nothing to tune', async (t) => {
    const { app } = await startTestServer(t, {
      cameras: [
        { name: 'Porch', source: 'testsrc', width: 160, height: 120, fps: 5, controlsDevice: 'video0', controlsTool: 'uvcdynctrl' },
        { name: 'Pattern', source: 'testsrc', width: 160, height: 120, fps: 5 },
      ],
    });
    const missing = await app.inject({ url: '/api/cameras/porch/controls', headers: auth });
    assert.equal(missing.statusCode, 503);
    assert.deepEqual(Object.keys(missing.json<object>()).sort(), ['code', 'error', 'message']);
    assert.equal(missing.json<{ code: string }>().code, 'CONTROLS_NO_DEVICE');
    assert.match(missing.json<{ message: string }>().message, /uvcdynctrl cannot open video0: is the webcam plugged in\?/);
    const put = await app.inject({ method: 'PUT', url: '/api/cameras/porch/controls', headers: json, payload: { Brightness: 1 } });
    assert.equal(put.statusCode, 503);

    const none = await app.inject({ url: '/api/cameras/pattern/controls', headers: auth });
    assert.equal(none.statusCode, 503);
    assert.equal(none.json<{ code: string }>().code, 'CONTROLS_NOT_CONFIGURED');
    assert.match(none.json<{ message: string }>().message, /Set "controlsDevice"/);
  });

  it('shows the state on the page in Chromium', { skip: !CHROMIUM && !process.env.CI && 'Chromium is not installed' }, async (t) => {
    const server = await startTestServer(t, {
      cameras: [{ name: 'Porch', source: 'testsrc', width: 160, height: 120, fps: 5, controlsDevice: 'video0', controlsTool: 'uvcdynctrl' }],
    });
    const { page } = await openLoggedInPage(t);
    await page.goto(server.url + '/');
    await page.waitForFunction(() => document.getElementById('controls-state')?.classList.contains('problem'));
    assert.match((await page.locator('#controls-state').textContent()) ?? '', /uvcdynctrl cannot open video0: is the webcam plugged in\?/);
    assert.equal(await page.locator('#controls-table').isHidden(), true);
  });
});
