// The server side of the Homebridge UI (src/ui, which homebridge-ui/server.js serves): finding
// webcams (recorded v4l2-ctl and ffmpeg listings, a fake /dev with a C920 stand-in, and this
// machine's real, empty /dev), preview frames from real ffmpeg, users in the plugin's users file,
// camera controls through the C920 stand-in, and test emails through the SES emulator and a
// refusing SES stand-in. Every failure a user can meet is checked for a message that says what to do.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { delimiter, join } from 'node:path';
import { describe, it } from 'node:test';

import sharp from 'sharp';

import { readUsersFile } from '../src/users/users-file';
import { parseFfmpegFormats, parseV4l2Formats, scanDevices } from '../src/ui/devices';
import type { UiHandler } from '../src/ui/handlers';
import { createUiHandlers, UiError } from '../src/ui/handlers';
import { previewArgs } from '../src/ui/preview';
import { usersFilePath } from '../src/ui/users';
import { SesEmulator } from './alert-helpers';
import { freeTcpPort, isCompleteJpeg, messageOf, nth, startTestServer, tempDir, writeUsers } from './helpers';

const FIXTURES = join(__dirname, 'fixtures', 'ui');
const STAND_INS = `${join(FIXTURES, 'bin')}${delimiter}${join(__dirname, 'fixtures', 'controls', 'bin')}`;
const C920_ID = 'usb-046d_HD_Pro_Webcam_C920_8A2B3C4D-video-index0';

/** Calls a handler and answers what the page would get: the data, or the error's code and message. */
async function call(handlers: Record<string, UiHandler>, path: string, body: unknown): Promise<unknown> {
  const handler = handlers[path];
  assert.ok(handler, `no handler for ${path}`);
  return handler(body);
}

/** The width of a JPEG. */
async function probeWidth(jpeg: Buffer): Promise<number | undefined> {
  return (await sharp(jpeg).metadata()).width;
}

async function failure(promise: Promise<unknown>): Promise<UiError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof UiError, `a UiError, not ${String(error)}`);
    return error;
  }
  assert.fail('expected a failure');
}

/** A /dev and /sys/class/video4linux with a C920 (video0) and its metadata node (video1). */
function fakeDevices(dir: string): { devDir: string; sysDir: string } {
  const devDir = join(dir, 'dev');
  const sysDir = join(dir, 'sys');
  mkdirSync(join(devDir, 'v4l', 'by-id'), { recursive: true });
  for (const node of ['video0', 'video1']) {
    writeFileSync(join(devDir, node), '');
    mkdirSync(join(sysDir, node), { recursive: true });
    writeFileSync(join(sysDir, node, 'name'), 'HD Pro Webcam C920\n');
  }
  symlinkSync('../../video0', join(devDir, 'v4l', 'by-id', C920_ID));
  return { devDir, sysDir };
}

describe('webcam detection', () => {
  it('reads formats, sizes and rates from v4l2-ctl --list-formats-ext, MJPEG first', () => {
    const formats = parseV4l2Formats(readFileSync(join(FIXTURES, 'v4l2-ctl-c920-list-formats-ext.txt'), 'utf8'));
    assert.deepEqual(
      formats.map((f) => [f.inputFormat, f.fourcc, f.description, f.compressed, f.sizes.length]),
      [
        ['mjpeg', 'MJPG', 'Motion-JPEG', true, 17],
        ['yuyv422', 'YUYV', 'YUYV 4:2:2', false, 19],
      ],
    );
    assert.deepEqual(formats[0]?.sizes[0], { width: 1920, height: 1080, fps: [30, 24, 20, 15, 10, 7.5, 5] }, 'largest first, fastest first');
    assert.deepEqual(formats[1]?.sizes.find((s) => s.width === 1280), { width: 1280, height: 720, fps: [10, 7.5, 5] });
    const stepwise = parseV4l2Formats("\t[0]: 'YU12' (Planar YUV 4:2:0)\n\t\tSize: Stepwise 32x32 - 2592x1944 with step 2/2\n");
    assert.deepEqual(stepwise[0]?.range, { minWidth: 32, minHeight: 32, maxWidth: 2592, maxHeight: 1944 });
    assert.equal(stepwise[0].inputFormat, 'yuv420p');
  });

  it("reads ffmpeg's -list_formats all when v4l2-ctl is not installed", () => {
    const formats = parseFfmpegFormats(readFileSync(join(FIXTURES, 'ffmpeg-c920-list-formats.txt'), 'utf8'));
    assert.deepEqual(
      formats.map((f) => [f.inputFormat, f.description, f.compressed, f.sizes.length, f.sizes[0]]),
      [
        ['mjpeg', 'Motion-JPEG', true, 17, { width: 1920, height: 1080, fps: [] }],
        ['yuyv422', 'YUYV 4:2:2', false, 19, { width: 2304, height: 1536, fps: [] }],
      ],
    );
    const pi = parseFfmpegFormats(readFileSync(join(FIXTURES, 'ffmpeg-picamera-list-formats.txt'), 'utf8'));
    assert.deepEqual(pi.map((f) => f.inputFormat), ['mjpeg', 'yuv420p', 'h264']);
    assert.deepEqual(pi[0]?.range, { minWidth: 32, maxWidth: 2592, minHeight: 32, maxHeight: 1944 });
  });

  it('lists a fake C920 with its card name, stable name and formats; the metadata node says to use the other', async () => {
    const { devDir, sysDir } = fakeDevices(tempDir());
    const scan = await scanDevices({ devDir, sysDir, v4l2Ctl: join(FIXTURES, 'bin', 'v4l2-ctl') });
    assert.equal(scan.formatTool, 'v4l2-ctl');
    assert.equal(scan.hint, undefined);
    assert.deepEqual(
      scan.devices.map((d) => [d.path, d.name, d.byId, d.formats.length]),
      [
        [join(devDir, 'video0'), 'HD Pro Webcam C920', join(devDir, 'v4l', 'by-id', C920_ID), 2],
        [join(devDir, 'video1'), 'HD Pro Webcam C920', undefined, 0],
      ],
    );
    assert.equal(nth(scan.devices, 0, 'the devices').problem, undefined);
    assert.match(scan.devices[1]?.problem ?? '', /gives no picture .*use the other one/);
  });

  it('explains a node that is no camera (the real v4l2-ctl, then ffmpeg when v4l2-ctl is missing)', async () => {
    const { devDir, sysDir } = fakeDevices(tempDir());
    const real = await scanDevices({ devDir, sysDir });
    assert.match(real.devices[0]?.problem ?? '', /is not a video capture device/);
    const ffmpeg = await scanDevices({ devDir, sysDir, v4l2Ctl: '/nonexistent/v4l2-ctl', ffmpeg: 'ffmpeg' });
    assert.equal(ffmpeg.formatTool, 'ffmpeg');
    assert.match(ffmpeg.devices[0]?.problem ?? '', /is not a video capture device/);
    const neither = await scanDevices({ devDir, sysDir, v4l2Ctl: '/nonexistent/v4l2-ctl' });
    assert.match(neither.hint ?? '', /install v4l-utils .* or ffmpeg/);
  });

  it("leaves out a Raspberry Pi's own codec nodes, which are no cameras", async () => {
    const { devDir, sysDir } = fakeDevices(tempDir());
    for (const [node, name] of [['video10', 'bcm2835-codec-decode'], ['video13', 'bcm2835-isp'], ['video19', 'rpi-hevc-dec'], ['video20', 'pispbe']] as const) {
      writeFileSync(join(devDir, node), '');
      mkdirSync(join(sysDir, node), { recursive: true });
      writeFileSync(join(sysDir, node, 'name'), `${name}\n`);
    }
    const scan = await scanDevices({ devDir, sysDir, v4l2Ctl: join(FIXTURES, 'bin', 'v4l2-ctl') });
    assert.deepEqual(scan.devices.map((d) => d.path), [join(devDir, 'video0'), join(devDir, 'video1')]);
    rmSync(join(devDir, 'video0'));
    rmSync(join(devDir, 'video1'));
    const onlyCodecs = await scanDevices({ devDir, sysDir, v4l2Ctl: join(FIXTURES, 'bin', 'v4l2-ctl') });
    assert.deepEqual(onlyCodecs.devices, []);
    assert.match(onlyCodecs.hint ?? '', /4 of the board's own video codec nodes are not cameras/);
  });

  it('on a machine without webcams, says so and what to do', async () => {
    const empty = await scanDevices({ devDir: tempDir() });
    assert.deepEqual(empty.devices, []);
    assert.match(empty.hint ?? '', /No webcam found: .*Plug the webcam in .*testsrc/);
    if (!['video0', 'video1', 'video2'].some((node) => existsSync(`/dev/${node}`))) {
      const handlers = createUiHandlers({ storagePath: tempDir() });
      const scan = (await call(handlers, '/devices', {})) as Awaited<ReturnType<typeof scanDevices>>;
      assert.deepEqual(scan.devices, [], 'this machine has no /dev/video*');
      assert.match(scan.hint ?? '', /No webcam found/);
    }
  });
});

describe('preview', () => {
  it('reads the source as the capture does, then writes one small JPEG', () => {
    assert.deepEqual(previewArgs({ source: '/dev/video0', inputFormat: 'mjpeg', width: 1920, height: 1080, fps: 30, quality: 5 }), [
      '-hide_banner', '-loglevel', 'error', '-nostdin',
      '-f', 'v4l2', '-input_format', 'mjpeg', '-video_size', '1920x1080', '-framerate', '30', '-i', '/dev/video0',
      '-ss', '0.5', '-an', '-frames:v', '1', '-vf', "scale='min(640,iw)':-2", '-c:v', 'mjpeg', '-pix_fmt', 'yuvj420p', '-q:v', '5', '-f', 'mjpeg', 'pipe:1',
    ]);
    assert.ok(!previewArgs({ source: 'testsrc', inputFormat: 'mjpeg', width: 320, height: 240, fps: 10, quality: 5 }).includes('-re'), 'no waiting for real time');
  });

  it("takes the running plugin's snapshot (with its preview token) rather than opening the webcam again", async (t) => {
    const storagePath = tempDir();
    const server = await startTestServer(t, { stateDir: join(storagePath, 'webcam-server') });
    const handlers = createUiHandlers({ storagePath });
    const camera = { name: 'Test Cam', source: '/dev/video0', width: 320, height: 240, fps: 15 };
    const config = { web: { host: '127.0.0.1', port: server.port }, cameras: [camera] };
    const frame = (await call(handlers, '/preview', { camera, index: 0, config })) as { jpeg: string; from: string };
    assert.equal(frame.from, 'plugin', 'the picture came from the plugin, not from /dev/video0');
    assert.ok(isCompleteJpeg(Buffer.from(frame.jpeg, 'base64')));
    const unindexed = (await call(handlers, '/preview', { camera, config })) as { from: string };
    assert.equal(unindexed.from, 'plugin', 'without its index, the camera is found in the config');
    // Another camera name, or no plugin listening: the preview reads the source itself.
    const other = await call(handlers, '/preview', { camera: { name: 'Other', source: 'testsrc', width: 160, height: 120, fps: 5 }, config }).then(
      (answer) => (answer as { from: string }).from,
      messageOf,
    );
    assert.equal(other, 'source');
  });

  it("shows a renamed duplicate's own picture, not the plugin's camera of that name", async (t) => {
    const storagePath = tempDir();
    // The plugin runs "Test Cam" at 320x240 (its id: test-cam).
    const server = await startTestServer(t, { stateDir: join(storagePath, 'webcam-server') });
    const handlers = createUiHandlers({ storagePath });
    const running = { name: 'Test Cam', source: 'testsrc', width: 320, height: 240, fps: 15 };
    // In the form, a second camera (160x120) was renamed to "Test Cam" too: the plugin would disable it.
    const duplicate = { name: 'Test Cam', source: 'testsrc', width: 160, height: 120, fps: 5 };
    const config = { web: { host: '127.0.0.1', port: server.port }, cameras: [running, duplicate] };
    const status = (await call(handlers, '/status', { config })) as { cameraIds: Array<string | null>; problems: string[]; web: unknown };
    assert.deepEqual(status.cameraIds, ['test-cam', null], 'the ids the plugin gives them');
    assert.deepEqual(status.web, { port: server.port, tls: false });
    assert.match(status.problems.join('\n'), /cameras\[1\] \("Test Cam"\) has the address \/cameras\/test-cam\/ of cameras\[0\] \("Test Cam"\) already/);
    const own = (await call(handlers, '/preview', { camera: duplicate, index: 1, config })) as { jpeg: string; from: string };
    assert.equal(own.from, 'source', 'not the running camera of the same name');
    assert.equal(await probeWidth(Buffer.from(own.jpeg, 'base64')), 160, "the duplicate's own picture");
    const first = (await call(handlers, '/preview', { camera: running, index: 0, config })) as { jpeg: string; from: string };
    assert.equal(first.from, 'plugin');
    assert.equal(await probeWidth(Buffer.from(first.jpeg, 'base64')), 320);
  });

  it('grabs a frame of the test pattern with real ffmpeg; a missing device and a missing ffmpeg are explained', async () => {
    const storagePath = tempDir();
    const handlers = createUiHandlers({ storagePath });
    const camera = { name: 'Porch', source: 'testsrc', width: 320, height: 240, fps: 10 };
    const frame = (await call(handlers, '/preview', { camera })) as { jpeg: string; at: string };
    assert.ok(isCompleteJpeg(Buffer.from(frame.jpeg, 'base64')));

    const missing = await failure(call(handlers, '/preview', { camera: { name: 'Gone', source: '/dev/video42' } }));
    assert.equal(missing.code, 'PREVIEW_FAILED');
    assert.match(missing.message, /\/dev\/video42 does not exist: is the webcam plugged in\?/);

    // A webcam already open elsewhere (the plugin's own capture, under Homebridge): an ffmpeg
    // stand-in says what ffmpeg says then.
    const busyFfmpeg = join(storagePath, 'ffmpeg-busy');
    writeFileSync(busyFfmpeg, '#!/bin/sh\necho "[video4linux2,v4l2 @ 0x55d0] Cannot open video device /dev/video0: Device or resource busy" >&2\nexit 1\n', { mode: 0o755 });
    const busy = await failure(call(handlers, '/preview', { config: { videoProcessor: busyFfmpeg }, camera: { name: 'Desk', source: '/dev/video0' } }));
    assert.equal(busy.code, 'PREVIEW_BUSY');
    assert.match(busy.message, /\/dev\/video0 is busy: only one program can open a webcam.*The live page shows the picture/);

    const bad = await failure(call(handlers, '/preview', { camera: { name: 'Odd', source: 'video0' } }));
    assert.equal(bad.code, 'CAMERA_INVALID');
    assert.match(bad.message, /source "video0" must be a device such as \/dev\/video0, the word testsrc, or a stream URL/);

    const noFfmpeg = createUiHandlers({ storagePath, env: { PATH: tempDir() } });
    const none = await failure(call(noFfmpeg, '/preview', { camera }));
    assert.equal(none.code, 'NO_FFMPEG');
    assert.match(none.message, /No usable ffmpeg found .*sudo apt-get install ffmpeg/);
    const status = (await call(noFfmpeg, '/status', { config: { videoProcessor: '/opt/nothing/ffmpeg', cameras: [{ name: 'X' }] } })) as {
      ffmpeg: { ok: boolean; message?: string };
      problems: string[];
    };
    assert.equal(status.ffmpeg.ok, false);
    assert.match(status.ffmpeg.message ?? '', /videoProcessor "\/opt\/nothing\/ffmpeg" \(not found or not executable\)/);
    assert.match(status.problems.join('\n'), /has no "source"/, "the config's problems, as the plugin will log them");
  });
});

describe('users from the UI', () => {
  it('lists, adds, changes and deletes users in the plugin users file; never hands out a hash', async () => {
    const storagePath = tempDir();
    const handlers = createUiHandlers({ storagePath, bcryptCost: 4 });
    const file = join(storagePath, 'webcam-server', 'users');
    assert.equal(usersFilePath(storagePath), file);
    assert.equal(usersFilePath(storagePath, 'other/users'), join(storagePath, 'other', 'users'));
    assert.equal(usersFilePath(storagePath, '/etc/webcam/users'), '/etc/webcam/users');

    const empty = (await call(handlers, '/users/list', {})) as { file: string; exists: boolean; writable: boolean; users: string[] };
    assert.deepEqual([empty.file, empty.exists, empty.writable, empty.users], [file, false, true, []]);

    const added = await call(handlers, '/users/add', { name: ' dexter ', password: 'lab-1' });
    assert.deepEqual((added as { users: string[] }).users, ['dexter']);
    assert.doesNotMatch(JSON.stringify(added), /\$2[aby]\$|JDJ/, 'no hash, plain or base64');
    const first = (await readUsersFile(file)).users.get('dexter');
    assert.match(first ?? '', /^\$2b\$04\$/);

    assert.equal((await failure(call(handlers, '/users/add', { name: 'dexter', password: 'x' }))).code, 'USER_EXISTS');
    assert.equal((await failure(call(handlers, '/users/add', { name: 'a:b', password: 'x' }))).code, 'USER_NAME_INVALID');
    assert.equal((await failure(call(handlers, '/users/add', { name: 'dee', password: '' }))).code, 'PASSWORD_EMPTY');

    await call(handlers, '/users/password', { name: 'dexter', password: 'lab-2' });
    assert.notEqual((await readUsersFile(file)).users.get('dexter'), first);
    assert.equal((await failure(call(handlers, '/users/password', { name: 'mandark', password: 'x' }))).code, 'USER_NOT_FOUND');

    const afterDelete = (await call(handlers, '/users/delete', { name: 'dexter' })) as { users: string[] };
    assert.deepEqual(afterDelete.users, []);
    assert.equal(readFileSync(file, 'utf8'), '');
  });

  it('uses web.usersFile, keeps a damaged file untouched, and explains a file it cannot write', async () => {
    const dir = tempDir();
    const handlers = createUiHandlers({ storagePath: dir, bcryptCost: 4 });
    const own = join(dir, 'flask-cam', 'users');
    mkdirSync(join(dir, 'flask-cam'));
    await writeUsers(own, { rita: 'x' });
    const config = { web: { usersFile: own } };
    assert.deepEqual(((await call(handlers, '/users/list', { config })) as { users: string[] }).users, ['rita']);

    writeFileSync(own, `${readFileSync(own, 'utf8')}garbage line\n`);
    const damaged = await failure(call(handlers, '/users/add', { config, name: 'bob', password: 'b' }));
    assert.equal(damaged.code, 'USERS_FILE_DAMAGED');
    assert.match(damaged.message, /line 2: expected "name<TAB>base64\(bcrypt hash\)".*Fix or remove those lines first/);
    assert.match(readFileSync(own, 'utf8'), /garbage line/);

    // A folder that cannot exist (its parent is a file): what root meets too, unlike permissions.
    writeFileSync(join(dir, 'plain-file'), '');
    const blocked = { web: { usersFile: join(dir, 'plain-file', 'users') } };
    const list = (await call(handlers, '/users/list', { config: blocked })) as { writable: boolean; notWritable?: string };
    assert.equal(list.writable, false);
    assert.match(list.notWritable ?? '', /cannot be created: a part of the path .* is not a folder\. Check "Users file" under Web server/);
    const refused = await failure(call(handlers, '/users/add', { config: blocked, name: 'bob', password: 'b' }));
    assert.equal(refused.code, 'USERS_NOT_WRITABLE');
    assert.match(refused.message, /is not a folder/);
  });
});

describe('camera controls from the UI', () => {
  it('lists and sets the controls of a C920 stand-in, and explains each case without controls', async (t) => {
    const dir = tempDir();
    const env = { ...process.env, PATH: `${STAND_INS}${delimiter}${process.env.PATH}`, FAKE_CONTROLS_DIR: dir };
    const saved = { PATH: process.env.PATH, FAKE_CONTROLS_DIR: process.env.FAKE_CONTROLS_DIR };
    // The drivers run the tools by name on this process's PATH.
    process.env.PATH = env.PATH;
    process.env.FAKE_CONTROLS_DIR = dir;
    t.after(() => {
      process.env.PATH = saved.PATH;
      if (saved.FAKE_CONTROLS_DIR === undefined) delete process.env.FAKE_CONTROLS_DIR;
      else process.env.FAKE_CONTROLS_DIR = saved.FAKE_CONTROLS_DIR;
    });
    const handlers = createUiHandlers({ storagePath: dir, env });
    const camera = { name: 'Desk', source: 'testsrc', controlsDevice: 'video0' };
    const listed = (await call(handlers, '/controls/list', { camera })) as { device: string; controls: Array<{ name: string; value: number | null }> };
    assert.equal(listed.device, 'video0');
    assert.ok(listed.controls.some((c) => c.name === 'Brightness'));
    const set = (await call(handlers, '/controls/set', { camera, values: { Brightness: 140 } })) as typeof listed;
    assert.equal(set.controls.find((c) => c.name === 'Brightness')?.value, 140);
    const invalid = await failure(call(handlers, '/controls/set', { camera, values: { Brightness: 9999 } }));
    assert.equal(invalid.code, 'CONTROLS_INVALID');

    const testPattern = await failure(call(handlers, '/controls/list', { camera: { name: 'Pattern', source: 'testsrc' } }));
    assert.equal(testPattern.code, 'CONTROLS_NOT_CONFIGURED');
    assert.match(testPattern.message, /reads the test pattern, not a webcam.*Set "Controls device"/);

    process.env.PATH = tempDir();
    const noTool = await failure(call(createUiHandlers({ storagePath: dir }), '/controls/list', { camera: { ...camera, name: 'Desk 2' } }));
    assert.equal(noTool.code, 'CONTROLS_NO_TOOL');
    assert.match(noTool.message, /sudo apt-get install uvcdynctrl/);
  });
});

/** Answers every request as SES does when the sender is not verified (SES's Query API error). */
async function refusingSes(t: { after: (fn: () => Promise<void>) => void }): Promise<string> {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(400, { 'content-type': 'text/xml', 'x-amzn-requestid': 'c0ffee00-0000-4000-8000-000000000000' });
      res.end(
        '<ErrorResponse xmlns="http://ses.amazonaws.com/doc/2010-12-01/"><Error><Type>Sender</Type><Code>MessageRejected</Code>' +
          '<Message>Email address is not verified. The following identities failed the check in region US-WEST-2: cam@example.com</Message>' +
          '</Error><RequestId>c0ffee00-0000-4000-8000-000000000000</RequestId></ErrorResponse>',
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe('test email from the UI', () => {
  const ses = (endpoint: string) => ({ region: 'us-west-2', from: 'cam@example.com', to: ['me@example.com'], accessKeyId: 'AKIATEST', secretAccessKey: 'secret', endpoint });

  it('sends through the SES emulator with the config as it is in the form', async (t) => {
    const emulator = await SesEmulator.start(t);
    const handlers = createUiHandlers({ storagePath: tempDir() });
    const sent = (await call(handlers, '/alerts/test', { config: { name: 'Cabin', alerts: { ses: ses(emulator.endpoint) } } })) as { via: string; to: string[]; messageId: string };
    assert.match(sent.via, /^SES \(us-west-2/);
    assert.deepEqual(sent.to, ['me@example.com']);
    const email = await emulator.waitForEmail();
    assert.equal(email.subject, '[Cabin] Test email');
  });

  it('explains SES refusing, SES out of reach and alerts not set up', async (t) => {
    const handlers = createUiHandlers({ storagePath: tempDir() });
    const refused = await failure(call(handlers, '/alerts/test', { config: { alerts: { ses: ses(await refusingSes(t)) } } }));
    assert.equal(refused.code, 'ALERT_SEND_FAILED');
    assert.match(refused.message, /SES refused the email: not verified in us-west-2: cam@example\.com\. Verify the sender/);

    const away = await failure(call(handlers, '/alerts/test', { config: { alerts: { ses: ses(`http://127.0.0.1:${await freeTcpPort()}`) } } }));
    assert.match(away.message, /SES could not be reached/);

    const none = await failure(call(handlers, '/alerts/test', { config: {} }));
    assert.equal(none.code, 'ALERTS_NOT_SET_UP');
    assert.match(none.message, /fill in AWS SES .* or SMTP under Settings › Email alerts/);
    const half = await failure(call(handlers, '/alerts/test', { config: { alerts: { ses: { region: 'us-west-2' } } } }));
    assert.match(half.message, /not set up correctly: "alerts.ses" has no "from" \(set the sender, an address verified in SES/);
  });
});
