// The plugin's settings in the real Homebridge UI (homebridge-config-ui-x, started alone) driven
// by headless Chromium as a person would: log in, open the plugin's settings from the Plugins page,
// see the form drawn from config.schema.json, find webcams (none on this machine, then a C920
// stand-in), watch the preview, tune controls, add / change / delete a web user that a real server
// of this plugin then accepts or refuses, send a test email (refused by an SES stand-in, then to the
// SES emulator after fixing the endpoint in the form), and save. With UI_SCREENSHOTS=DIR it also
// saves the screenshots the README shows.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { delimiter, join, resolve } from 'node:path';
import { describe, it } from 'node:test';

import type { Frame, Locator, Page } from 'playwright-core';
import { chromium } from 'playwright-core';

import { SesEmulator } from './alert-helpers';
import { basic, CHROMIUM, CHROMIUM_ARGS, get, sleep, startTestServer, tempDir } from './helpers';
import { logIn, openPluginSettings, startHomebridgeUi } from './ui-helpers';

const skip = CHROMIUM || process.env.CI ? false : 'Chromium is not installed (apt-get install chromium)';
const ROOT = join(__dirname, '..');
const STAND_INS = [join(__dirname, 'fixtures', 'ui', 'bin'), join(__dirname, 'fixtures', 'controls', 'bin')].join(delimiter);
const C920_ID = 'usb-046d_HD_Pro_Webcam_C920_8A2B3C4D-video-index0';
const SHOTS = process.env.UI_SCREENSHOTS ? resolve(process.env.UI_SCREENSHOTS) : undefined;

/** Answers like SES does when the sender is not verified. */
async function refusingSes(t: { after: (fn: () => Promise<void>) => void }): Promise<string> {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(400, { 'content-type': 'text/xml' });
      res.end(
        '<ErrorResponse xmlns="http://ses.amazonaws.com/doc/2010-12-01/"><Error><Type>Sender</Type><Code>MessageRejected</Code>' +
          '<Message>Email address is not verified. The following identities failed the check in region US-WEST-2: cam@example.com</Message>' +
          '</Error><RequestId>c0ffee00-0000-4000-8000-000000000000</RequestId></ErrorResponse>',
      );
    });
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  t.after(() => new Promise<void>((done) => server.close(() => done())));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** Status of a request to the plugin's web server with these credentials, once it is `want` (the file is re-read within a second). */
async function statusFor(url: string, user: string, password: string, want: number): Promise<number> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    const { status } = await get(`${url}/api/cameras`, { authorization: basic(user, password) });
    if (status === want || Date.now() > deadline) return status;
    await sleep(100);
  }
}

async function shot(page: Page, name: string): Promise<void> {
  if (!SHOTS) return;
  mkdirSync(SHOTS, { recursive: true });
  await sleep(300);
  // The modal as far as the window shows it (a long form goes on below).
  const box = await page.locator('.modal-dialog').first().boundingBox();
  const view = page.viewportSize();
  if (!box || !view) return;
  const height = Math.min(box.height, view.height - box.y);
  await page.screenshot({ path: join(SHOTS, name), clip: { x: box.x, y: box.y, width: box.width, height }, animations: 'disabled' });
}

/** Clicks the title of a collapsed panel of the settings form. */
async function expand(page: Page, title: string): Promise<void> {
  await page.locator('.modal').getByText(title, { exact: true }).first().click();
}

function userRow(frame: Frame, name: string): Locator {
  return frame.locator(`tr[data-user="${name}"]`);
}

describe('the Homebridge UI', { skip, timeout: 240_000 }, () => {
  it('shows the settings form and the custom UI: webcams, preview, controls, users, test email', async (t) => {
    const dir = tempDir();
    const devDir = join(dir, 'dev');
    const sysDir = join(dir, 'sys');
    const controlsDir = join(dir, 'controls');
    for (const folder of [devDir, sysDir, controlsDir]) mkdirSync(folder);

    const emulator = await SesEmulator.start(t);
    const refusing = await refusingSes(t);
    const server = await startTestServer(t, { users: { alice: 'wonderland' } });
    const ses = { region: 'us-west-2', from: 'cam@example.com', to: ['me@example.com'], accessKeyId: 'AKIATEST', secretAccessKey: 'secret', endpoint: refusing };
    const ui = await startHomebridgeUi(
      t,
      {
        name: 'Webcam Server',
        cameras: [
          { name: 'Porch', source: 'testsrc', width: 320, height: 240, fps: 10 },
          { name: 'Desk', source: 'testsrc', width: 320, height: 240, fps: 10, controlsDevice: 'video0', controls: { Contrast: 40 } },
        ],
        web: { usersFile: server.usersFile, trustProxy: ['127.0.0.1'] },
        alerts: { ses },
      },
      {
        PATH: `${STAND_INS}${delimiter}${process.env.PATH}`,
        FAKE_CONTROLS_DIR: controlsDir,
        WEBCAM_SERVER_UI_DEV_DIR: devDir,
        WEBCAM_SERVER_UI_SYS_DIR: sysDir,
      },
    );

    const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    t.after(() => browser.close());
    const page = await browser.newPage({ viewport: { width: 1100, height: 1400 } });
    // Errors of the custom UI's page (the Homebridge UI's own page logs some of its own).
    const errors: string[] = [];
    page.on('console', (message) => {
      if (message.type() === 'error' && message.location().url.includes('/plugins/settings-ui/')) errors.push(message.text());
    });
    await logIn(page, ui);
    const frame = await openPluginSettings(page, ui);

    // The settings form, drawn from config.schema.json below the custom UI's tabs.
    await frame.locator('#tab-settings.active').waitFor();
    const modal = page.locator('.modal');
    await modal.getByText('Cameras', { exact: true }).first().waitFor({ timeout: 20_000 });
    const values = await modal.locator('form input').evaluateAll((inputs) => inputs.map((input) => (input as HTMLInputElement).value));
    for (const value of ['Webcam Server', 'Porch', 'Desk', 'testsrc', '320', '240']) assert.ok(values.includes(value), `the form shows ${value}`);
    const schema = JSON.parse(readFileSync(join(ROOT, 'config.schema.json'), 'utf8')) as { schema: { properties: { cameras: { items: { properties: { source: { pattern: string } } } } } } };
    const source = modal.locator('input[name="source"]').first();
    assert.equal(await source.getAttribute('pattern'), schema.schema.properties.cameras.items.properties.source.pattern, 'the schema\'s checks reach the form');
    // A value that fails the check gets the schema's words (validationMessages), not the regex.
    await source.fill('video0');
    await source.blur();
    const sourceError = modal.getByText('Must be a device such as /dev/video0, the word testsrc, or a stream URL', { exact: false }).first();
    await sourceError.waitFor({ timeout: 10_000 });
    assert.doesNotMatch(await modal.innerText(), /Must match pattern/, 'no raw pattern shown');
    await source.fill('testsrc');
    await source.blur();
    await sourceError.waitFor({ state: 'detached', timeout: 10_000 });
    for (const title of ['Motion detection', 'HomeKit', 'Sound', 'Web server', 'Email alerts', 'Advanced']) {
      assert.ok(await modal.getByText(title, { exact: true }).first().isVisible(), `the "${title}" panel`);
    }
    await expand(page, 'HomeKit');
    await modal.getByText('Live streams at once', { exact: true }).first().waitFor();
    // Lists of choices offer the choices only: no empty "None" (the fields are required, with a default).
    const choices = (name: string) => modal.locator(`select[name="${name}"]`).first().locator('option').allInnerTexts();
    assert.deepEqual(await choices('encoder'), ['libx264 (software, any machine)', 'h264_v4l2m2m (Raspberry Pi 4 hardware)']);
    await expand(page, 'Camera controls (brightness, focus, exposure …)');
    assert.deepEqual(await choices('controlsTool'), ['Automatic (uvcdynctrl, else v4l2-ctl)', 'uvcdynctrl', 'v4l2-ctl (v4l-utils)']);
    await shot(page, 'homebridge-ui-settings.png');

    // Webcams: none here (the empty state says what to do), then a C920 stand-in after "Look again".
    await frame.click('#tab-cameras');
    const empty = frame.locator('#devices-empty');
    await empty.waitFor();
    assert.match(await empty.innerText(), /No webcam found: .*Plug the webcam in.*testsrc/s);
    assert.equal(await modal.locator('input[name="source"]').count(), 0, 'the settings form is hidden on the other tabs');
    for (const node of ['video0', 'video1']) {
      writeFileSync(join(devDir, node), '');
      mkdirSync(join(sysDir, node));
      writeFileSync(join(sysDir, node, 'name'), 'HD Pro Webcam C920\n');
    }
    mkdirSync(join(devDir, 'v4l', 'by-id'), { recursive: true });
    symlinkSync('../../video0', join(devDir, 'v4l', 'by-id', C920_ID));
    await frame.click('#devices-scan');
    // The folder stands in for /dev: the devices are named as on a real machine.
    const c920 = frame.locator('[data-device="/dev/video0"]');
    await c920.waitFor();
    assert.match(await c920.innerText(), /HD Pro Webcam C920[\s\S]*by-id[\s\S]*MJPEG \(Motion-JPEG\): 1920×1080/);
    assert.match(await frame.locator('[data-device="/dev/video1"]').innerText(), /gives no picture.*use the other one/);

    // The preview of the selected camera (Porch, the test pattern): a real frame, refreshed.
    const previewWidth = () => frame.locator('#preview').evaluate((img: HTMLImageElement) => img.naturalWidth);
    await frame.waitForFunction(() => (document.getElementById('preview') as HTMLImageElement | null)?.naturalWidth === 320, undefined, { timeout: 20_000 });
    // testsrc's first frame is the same every time: the caption tells the refreshes apart.
    const first = await frame.locator('#preview-status').innerText();
    assert.match(first, /^Live preview, updated /);
    await frame.waitForFunction((before) => document.getElementById('preview-status')?.textContent !== before, first, { timeout: 10_000 });
    assert.equal(await previewWidth(), 320);
    assert.equal(await frame.locator('#live-link').getAttribute('href'), 'http://127.0.0.1:8181/cameras/porch/', 'a link to the live page');
    assert.match(await frame.locator('[data-code="CONTROLS_NOT_CONFIGURED"]').innerText(), /reads the test pattern, not a webcam/);

    // Controls of Desk (its controls device is the C920 stand-in): set one, keep it in the config.
    await frame.selectOption('#camera-select', { label: 'Desk' });
    const brightness = frame.locator('[data-control="Brightness"] input[type="range"]');
    await brightness.waitFor();
    await brightness.fill('150');
    await frame.locator('#controls-keep:not([disabled])').waitFor();
    const calls = readFileSync(join(controlsDir, 'calls.jsonl'), 'utf8');
    assert.match(calls, /"--set=Brightness","--","150"/, 'the tool set the value');
    await frame.waitForFunction(() => (document.getElementById('preview') as HTMLImageElement | null)?.naturalWidth === 320);
    await shot(page, 'homebridge-ui-cameras.png');
    await frame.click('#controls-keep');

    // Use the C920 for a new camera (the form gets it; Save below writes it).
    await c920.locator('select').nth(1).selectOption('new');
    await c920.getByRole('button', { name: 'Use' }).click();
    await frame.locator('#camera-select option', { hasText: 'HD Pro Webcam C920' }).waitFor({ state: 'attached' });

    // Users: the plugin's users file, as the running web server reads it.
    await frame.click('#tab-users');
    await userRow(frame, 'alice').waitFor();
    assert.equal(await frame.locator('#users-file').innerText(), server.usersFile);
    await frame.fill('#user-add-name', 'bob');
    await frame.fill('#user-add-password', 'builder-1');
    await frame.click('#user-add-submit');
    await userRow(frame, 'bob').waitFor();
    assert.match(readFileSync(server.usersFile, 'utf8'), /^bob\t/m);
    assert.equal(await statusFor(server.url, 'bob', 'builder-1', 200), 200, 'the web server accepts the new user');
    await shot(page, 'homebridge-ui-users.png');

    await userRow(frame, 'bob').getByRole('button', { name: 'Change password' }).click();
    await userRow(frame, 'bob').locator('input[type="password"]').fill('builder-2');
    await userRow(frame, 'bob').getByRole('button', { name: 'Save password' }).click();
    await frame.locator('#users-message .alert-success', { hasText: 'password of "bob" was changed' }).waitFor();
    assert.equal(await statusFor(server.url, 'bob', 'builder-1', 401), 401, 'the old password no longer works');
    assert.equal(await statusFor(server.url, 'bob', 'builder-2', 200), 200, 'the new one does');

    await userRow(frame, 'bob').getByRole('button', { name: 'Delete' }).click();
    await userRow(frame, 'bob').getByRole('button', { name: 'Yes, delete' }).click();
    await userRow(frame, 'bob').waitFor({ state: 'detached' });
    assert.doesNotMatch(readFileSync(server.usersFile, 'utf8'), /^bob\t/m);
    assert.equal(await statusFor(server.url, 'bob', 'builder-2', 401), 401, 'a deleted user is refused');
    assert.equal(await statusFor(server.url, 'alice', 'wonderland', 200), 200, 'the others still get in');
    const html = await frame.content();
    assert.doesNotMatch(html, /\$2[aby]\$|JDJ[hiy]JD/, 'no password hash reaches the page');

    // Test email: SES refuses (the sender is not verified), then the endpoint is fixed in the form.
    await frame.click('#tab-email');
    assert.match(await frame.locator('#email-summary').innerText(), /AWS SES \(us-west-2\) from cam@example\.com to me@example\.com/);
    await frame.click('#email-test');
    const refused = frame.locator('#email-result .alert-danger');
    await refused.waitFor({ timeout: 30_000 });
    assert.match(await refused.innerText(), /SES refused the email: not verified in us-west-2: cam@example\.com\. Verify the sender/);

    await frame.click('#tab-settings');
    await expand(page, 'Email alerts');
    await expand(page, 'AWS SES');
    const endpoint = modal.locator('input[name="endpoint"]');
    await endpoint.fill(emulator.endpoint);
    await endpoint.blur();
    await sleep(600);
    await frame.click('#tab-email');
    await frame.click('#email-test');
    const sent = frame.locator('#email-result .alert-success');
    await sent.waitFor({ timeout: 30_000 });
    assert.match(await sent.innerText(), /Sent through SES \(us-west-2, http:\/\/127\.0\.0\.1:\d+\) to me@example\.com\. Message id: \S+/);
    const email = await emulator.waitForEmail();
    assert.equal(email.subject, '[Webcam Server] Test email');
    await shot(page, 'homebridge-ui-email.png');

    // Save: what the form shows, what the custom UI added, and what the form has no field for.
    await frame.click('#tab-settings');
    await modal.locator('input[name="source"]').first().waitFor();
    await page.locator('.modal-footer button', { hasText: 'Save' }).click();
    const deadline = Date.now() + 10_000;
    let saved = ui.pluginConfig();
    while ((saved?.alerts as { ses?: { endpoint?: string } } | undefined)?.ses?.endpoint !== emulator.endpoint && Date.now() < deadline) {
      await sleep(200);
      saved = ui.pluginConfig();
    }
    assert.ok(saved, `the UI saved the plugin's config to ${ui.configPath}`);
    const cameras = saved.cameras as Array<Record<string, unknown>>;
    assert.deepEqual(
      cameras.map((camera) => [camera.name, camera.source]),
      [
        ['Porch', 'testsrc'],
        ['Desk', 'testsrc'],
        ['HD Pro Webcam C920', `/dev/v4l/by-id/${C920_ID}`],
      ],
    );
    const [, desk, webcam] = cameras;
    assert.deepEqual([webcam?.inputFormat, webcam?.width, webcam?.height, webcam?.fps], ['mjpeg', 1920, 1080, 30]);
    assert.deepEqual(desk?.controls, { Contrast: 40, Brightness: 150 }, 'kept from the controls panel, next to what was there');
    const web = saved.web as Record<string, unknown>;
    assert.deepEqual([web.usersFile, web.trustProxy], [server.usersFile, ['127.0.0.1']], 'a value the form has no field for survives');
    assert.equal((saved.alerts as { ses: { endpoint: string } }).ses.endpoint, emulator.endpoint);
    assert.deepEqual(errors, [], 'no script errors in the custom UI');

    // Leave nothing behind: the UI's child process for server.js ends with it.
    const serverJs = join(dirnameOfPlugin(ui.storage), 'homebridge-ui', 'server.js');
    assert.ok(processesRunning(serverJs) > 0, 'server.js ran as the UI\'s child');
    await browser.close();
    await ui.stop();
    const until = Date.now() + 8_000;
    while (processesRunning(serverJs) > 0 && Date.now() < until) await sleep(200);
    assert.equal(processesRunning(serverJs), 0, 'server.js stopped with the UI');
  });
});

/** The plugin as the UI sees it: the link in the temp plugin folder next to the storage folder. */
function dirnameOfPlugin(storage: string): string {
  return join(storage, '..', 'node_modules', 'homebridge-webcam-server');
}

/** How many processes run `file` (from ps, matching the whole command line). */
function processesRunning(file: string): number {
  if (!existsSync('/proc')) return 0;
  const out = execFileSync('ps', ['-eo', 'args='], { encoding: 'utf8' });
  return out.split('\n').filter((line) => line.includes(file)).length;
}
