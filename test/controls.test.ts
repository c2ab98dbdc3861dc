// Camera controls below the web server: the parsers against recorded output of uvcdynctrl and
// v4l2-ctl for a Logitech C920, the checks every value passes, and the drivers run for real:
// the Debian tools with no camera attached, and stand-ins (test/fixtures/controls/bin) that
// answer like a C920 and record each command line.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { CameraControls, deviceNames } from '../src/controls/camera-controls';
import { canonicalName, checkRequest, checkValue, findControl } from '../src/controls/policy';
import type { ControlInfo } from '../src/controls/types';
import { ControlsError } from '../src/controls/types';
import { parseUvcControls, UvcDynCtrl } from '../src/controls/uvcdynctrl';
import { parseV4l2Controls, V4l2Ctl } from '../src/controls/v4l2-ctl';
import { commandFailure, execFileAsync, recordingLog, tempDir } from './helpers';

const FIXTURES = join(__dirname, 'fixtures', 'controls');
const FAKE = { uvcdynctrl: join(FIXTURES, 'bin', 'uvcdynctrl'), 'v4l2-ctl': join(FIXTURES, 'bin', 'v4l2-ctl') };
const fixture = (name: string) => readFileSync(join(FIXTURES, name), 'utf8');
const C920 = parseUvcControls(fixture('uvcdynctrl-c920-clist.txt'));

/** Points the stand-ins at a fresh folder; returns a reader of the command lines they got. */
function fakeTools(): () => Array<{ tool: string; args: string[] }> {
  const dir = tempDir();
  process.env.FAKE_CONTROLS_DIR = dir;
  return () => {
    const file = join(dir, 'calls.jsonl');
    if (!existsSync(file)) return [];
    return readFileSync(file, 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { tool: string; args: string[] });
  };
}


describe('uvcdynctrl output', () => {
  it('parses every control of the C920 recording with type, range, step, default and flags', () => {
    assert.equal(C920.length, 21);
    const byName = new Map(C920.map((c) => [c.name, c]));
    assert.deepEqual(byName.get('Brightness'), {
      name: 'Brightness', label: 'Brightness', type: 'integer', min: 0, max: 255, step: 1, default: 128,
      choices: undefined, readOnly: false, writeOnly: false, inactive: false,
    });
    assert.deepEqual(
      [byName.get('Pan (Absolute)')?.min, byName.get('Pan (Absolute)')?.max, byName.get('Pan (Absolute)')?.step],
      [-36000, 36000, 3600],
    );
    assert.equal(byName.get('Focus, Auto')?.type, 'boolean');
    assert.equal(byName.get('Focus (absolute)')?.step, 5);
    assert.deepEqual(byName.get('Power Line Frequency')?.choices, [
      { label: 'Disabled', value: 0 }, { label: '50 Hz', value: 1 }, { label: '60 Hz', value: 2 },
    ]);
    assert.deepEqual(byName.get('Exposure, Auto')?.choices?.map((c) => c.value), [1, 3]);
    assert.equal(byName.get('LED1 Frequency')?.type, 'integer', 'Byte is a number');
  });

  it('reads flags, skips Raw controls and reports "No controls found." as none', () => {
    const text = [
      'Listing available controls for device video1:',
      '  Sensor Info',
      '    ID      : 0x0a046d00,',
      '    Type    : Raw,',
      '    Flags   : { CAN_READ },',
      '    Values  : [ 0 .. 0, step size: 0 ],',
      '    Default : 0',
      '  Firmware Version',
      '    ID      : 0x0a046d01,',
      '    Type    : Word,',
      '    Flags   : { CAN_READ },',
      '    Values  : [ 0 .. 65535, step size: 1 ],',
      '    Default : 0',
      '',
    ].join('\n');
    const controls = parseUvcControls(text);
    assert.deepEqual(controls.map((c) => [c.name, c.readOnly]), [['Firmware Version', true]]);
    assert.deepEqual(parseUvcControls('Listing available controls for device video0:\nNo controls found.\n'), []);
  });
});

describe('v4l2-ctl output', () => {
  it('parses controls, values, menus and flags of the C920 recording', () => {
    const controls = parseV4l2Controls(fixture('v4l2-ctl-c920-list-ctrls-menus.txt'));
    assert.equal(controls.length, 17);
    const byName = new Map(controls.map((c) => [c.name, c]));
    assert.deepEqual(byName.get('brightness'), {
      name: 'brightness', label: 'Brightness', type: 'integer', min: 0, max: 255, step: 1, default: 128,
      readOnly: false, writeOnly: false, inactive: false, value: 128,
    });
    assert.deepEqual(byName.get('power_line_frequency')?.choices?.map((c) => c.label), ['Disabled', '50 Hz', '60 Hz']);
    assert.equal(byName.get('power_line_frequency')?.value, 2);
    assert.deepEqual(byName.get('auto_exposure')?.choices?.map((c) => c.value), [1, 3]);
    assert.equal(byName.get('focus_absolute')?.inactive, true);
    assert.equal(byName.get('focus_automatic_continuous')?.type, 'boolean');
    assert.equal(byName.get('pan_absolute')?.min, -36000);
  });
});

describe('control checks', () => {
  const brightness = findControl(C920, 'Brightness')!;
  const focus = findControl(C920, 'Focus (absolute)')!;
  const autoFocus = findControl(C920, 'Focus, Auto')!;
  const powerLine = findControl(C920, 'Power Line Frequency')!;

  it('finds controls by exact, case-folded, canonical and renamed names', () => {
    assert.equal(findControl(C920, 'brightness')?.name, 'Brightness');
    assert.equal(findControl(C920, 'focus_auto')?.name, 'Focus, Auto');
    assert.equal(canonicalName('Exposure (Absolute)'), 'exposure_absolute');
    // A config written for a 6.x kernel finds the 4.x name, and the other way round.
    assert.equal(findControl(C920, 'Focus, Automatic Continuous')?.name, 'Focus, Auto');
    const v4l2 = parseV4l2Controls(fixture('v4l2-ctl-c920-list-ctrls-menus.txt'));
    assert.equal(findControl(v4l2, 'Focus, Auto')?.name, 'focus_automatic_continuous');
    assert.equal(findControl(v4l2, 'Exposure (Absolute)')?.name, 'exposure_time_absolute');
    assert.equal(findControl(C920, 'Nope'), undefined);
    assert.equal(findControl(C920, '!!!'), undefined);
  });

  it('accepts values of the right type, in range and on a step', () => {
    assert.equal(checkValue(brightness, 140), 140);
    assert.equal(checkValue(autoFocus, false), 0);
    assert.equal(checkValue(autoFocus, 1), 1);
    assert.equal(checkValue(powerLine, 1), 1);
    assert.equal(checkValue(powerLine, '50 hz'), 1, 'a menu takes its label');
    assert.equal(checkValue(focus, 25), 25);
  });

  it('names the problem for wrong types, ranges, steps and choices', () => {
    const cases: Array<[ControlInfo, unknown, RegExp]> = [
      [brightness, 256, /"Brightness": 256 is out of range; it takes a whole number from 0 to 255/],
      [brightness, -1, /out of range/],
      [brightness, 1.5, /1.5 is not a whole number/],
      [brightness, '140', /"140" is not a number/],
      [brightness, true, /true is not a number/],
      [brightness, null, /null is not a number/],
      [brightness, { value: 1 }, /object is not a number/],
      [brightness, 1e9, /out of range/],
      [focus, 12, /12 is between steps \(nearest: 10 or 15\)/],
      [autoFocus, 2, /2 is out of range; it takes 0 or 1/],
      [powerLine, 3, /3 is not one of its choices; it takes one of 0 \(Disabled\), 1 \(50 Hz\), 2 \(60 Hz\)/],
      [powerLine, '70 Hz', /"70 Hz" is not one of its choices/],
      [{ ...brightness, readOnly: true }, 1, /read-only/],
    ];
    for (const [control, value, expected] of cases) {
      const result = checkValue(control, value);
      assert.equal(typeof result, 'string', `${control.name} ${JSON.stringify(value)}`);
      assert.match(result as string, expected);
    }
  });

  it('checks a whole request, modes before the values they unlock', () => {
    const ok = checkRequest(C920, { 'Exposure (Absolute)': 300, 'Exposure, Auto': 1, Brightness: 90 });
    assert.deepEqual(ok.errors, []);
    assert.deepEqual(ok.changes.map((c) => [c.control.name, c.value]), [['Exposure, Auto', 1], ['Exposure (Absolute)', 300], ['Brightness', 90]]);
    const bad = checkRequest(C920, { Brightness: 90, Sparkle: 3, Contrast: 999 });
    assert.equal(bad.errors.length, 2);
    assert.match(bad.errors[0] ?? '', /No control "Sparkle" on this device\. Controls: Brightness; Contrast;/);
    assert.match(bad.errors[1] ?? '', /"Contrast": 999 is out of range/);
    assert.match(checkRequest(C920, { brightness: 1, Brightness: 2 }).errors[0] ?? '', /given twice/);
  });
});

describe('drivers', () => {
  it('real uvcdynctrl with no camera: a no-device error naming the fix', { skip: !existsSync('/usr/bin/uvcdynctrl') && !process.env.CI && 'uvcdynctrl not installed' }, async () => {
    const error = await new UvcDynCtrl('video0').list(true).then(() => undefined, (e: unknown) => e);
    assert.ok(error instanceof ControlsError);
    assert.equal(error.problem, 'no-device');
    assert.match(error.message, /uvcdynctrl cannot open video0: is the webcam plugged in\?.*controlsDevice/);
  });

  it('real v4l2-ctl with no camera: a no-device error naming the fix', { skip: !existsSync('/usr/bin/v4l2-ctl') && !process.env.CI && 'v4l2-ctl not installed' }, async () => {
    const error = await new V4l2Ctl('/dev/video0').list().then(() => undefined, (e: unknown) => e);
    assert.ok(error instanceof ControlsError);
    assert.equal(error.problem, 'no-device');
    assert.match(error.message, /v4l2-ctl cannot open \/dev\/video0/);
  });

  it('a missing tool is a no-tool error with the install command', async () => {
    const error = await new UvcDynCtrl('video0', '/nonexistent/uvcdynctrl').list(true).then(() => undefined, (e: unknown) => e);
    assert.ok(error instanceof ControlsError);
    assert.equal(error.problem, 'no-tool');
    assert.match(error.message, /sudo apt-get install uvcdynctrl/);
  });

  it('uvcdynctrl stand-in: lists, reads and sets with exact command lines, negatives after --', async () => {
    const calls = fakeTools();
    const uvc = new UvcDynCtrl('video0', FAKE.uvcdynctrl);
    const controls = await uvc.list(true);
    assert.equal(controls.find((c) => c.name === 'Brightness')?.value, 128);
    const pan = controls.find((c) => c.name === 'Pan (Absolute)')!;
    await uvc.set(pan, -3600);
    assert.deepEqual(calls().at(-1), { tool: 'uvcdynctrl', args: ['--device=video0', '--set=Pan (Absolute)', '--', '-3600'] });
    assert.equal((await uvc.read([pan])).get('Pan (Absolute)'), -3600);
    assert.deepEqual(calls()[0]?.args, ['--device=video0', '--clist', '--verbose']);
    assert.deepEqual(calls()[1]?.args, ['--device=video0', '--get=Brightness']);
  });

  it('v4l2-ctl stand-in: one call lists every value; sets with --set-ctrl', async () => {
    const calls = fakeTools();
    const v4l2 = new V4l2Ctl('/dev/video0', FAKE['v4l2-ctl']);
    const controls = await v4l2.list();
    await v4l2.set(controls.find((c) => c.name === 'zoom_absolute')!, 250);
    assert.equal((await v4l2.list()).find((c) => c.name === 'zoom_absolute')?.value, 250);
    assert.deepEqual(calls().map((c) => c.args), [
      ['--device=/dev/video0', '--list-ctrls-menus'],
      ['--device=/dev/video0', '--set-ctrl=zoom_absolute=250'],
      ['--device=/dev/video0', '--list-ctrls-menus'],
    ]);
  });
});

describe('CameraControls', () => {
  it('names devices for each tool, following links', () => {
    assert.deepEqual(deviceNames('video0'), { uvcdynctrl: 'video0', 'v4l2-ctl': '/dev/video0' });
    assert.deepEqual(deviceNames('/dev/video2'), { uvcdynctrl: 'video2', 'v4l2-ctl': '/dev/video2' });
  });

  it('applies the config at start (modes first), logs bad entries and runs nothing for them', async () => {
    const calls = fakeTools();
    const log = recordingLog();
    const controls = new CameraControls({
      device: 'video0',
      tool: 'auto',
      config: { 'Focus (absolute)': 30, 'Focus, Auto': false, Sparkle: 1, Brightness: 300 },
      log,
      commands: FAKE,
    });
    await controls.applyConfig();
    const sets = calls().filter((c) => c.args.some((a) => a.startsWith('--set')));
    assert.deepEqual(sets.map((c) => c.args), [
      ['--device=video0', '--set=Focus, Auto', '--', '0'],
      ['--device=video0', '--set=Focus (absolute)', '--', '30'],
    ]);
    assert.ok(log.lines.some((l) => /^warn Config "controls": No control "Sparkle"/.test(l)), log.lines.join('\n'));
    assert.ok(log.lines.some((l) => /^warn Config "controls": "Brightness": 300 is out of range/.test(l)));
    assert.ok(log.lines.some((l) => l === 'info Camera controls set from the config: Focus, Auto = off (0), Focus (absolute) = 30.'));
  });

  it('imports the mapping file (uvcdynctrl -i) before it applies the values', async () => {
    const calls = fakeTools();
    const log = recordingLog();
    const controls = new CameraControls({ device: 'video0', tool: 'auto', config: { 'LED1 Mode': 0 }, mappingFile: '/usr/share/uvcdynctrl/data/046d/logitech.xml', log, commands: FAKE });
    await controls.applyConfig();
    const args = calls().map((c) => c.args);
    assert.deepEqual(args[0], ['--device=video0', '--import=/usr/share/uvcdynctrl/data/046d/logitech.xml']);
    assert.deepEqual(args.at(-1), ['--device=video0', '--set=LED1 Mode', '--', '0']);
    assert.ok(log.lines.some((l) => /^info Imported the control mapping \/usr\/share\/uvcdynctrl\/data\/046d\/logitech\.xml/.test(l)), log.lines.join('\n'));
  });

  it('falls back to v4l2-ctl when uvcdynctrl is missing (auto), and a config for uvcdynctrl still applies', async () => {
    const calls = fakeTools();
    const controls = new CameraControls({
      device: 'video0',
      tool: 'auto',
      config: { 'Focus, Auto': 0, 'Zoom, Absolute': 200 },
      log: recordingLog(),
      commands: { uvcdynctrl: '/nonexistent/uvcdynctrl', 'v4l2-ctl': FAKE['v4l2-ctl'] },
    });
    await controls.applyConfig();
    assert.deepEqual(calls().filter((c) => c.args.some((a) => a.startsWith('--set'))).map((c) => c.args[1]), [
      '--set-ctrl=focus_automatic_continuous=0',
      '--set-ctrl=zoom_absolute=200',
    ]);
    const listed = await controls.list();
    assert.equal(listed.find((c) => c.name === 'zoom_absolute')?.value, 200);
  });

  it('says which state it is in: no tool at all, not configured, a device without controls', async (t) => {
    const none = new CameraControls({ device: 'video0', tool: 'auto', config: {}, log: recordingLog(), commands: { uvcdynctrl: '/nonexistent/a', 'v4l2-ctl': '/nonexistent/b' } });
    await assert.rejects(none.list(), (e: ControlsError) => e.problem === 'no-tool' && /Neither uvcdynctrl nor v4l2-ctl is installed.*apt-get install uvcdynctrl.*v4l-utils/.test(e.message));

    const log = recordingLog();
    const unconfigured = new CameraControls({ device: undefined, tool: 'auto', config: { Brightness: 1 }, log });
    await assert.rejects(unconfigured.list(), (e: ControlsError) => e.problem === 'not-configured' && /controlsDevice/.test(e.message));
    await unconfigured.applyConfig();
    await unconfigured.applyConfig();
    assert.equal(log.lines.filter((l) => /no device to tune: set "controlsDevice"/.test(l)).length, 1, 'warned once');

    fakeTools();
    process.env.FAKE_CONTROLS_MODE = 'no-controls';
    t.after(() => delete process.env.FAKE_CONTROLS_MODE);
    const empty = new CameraControls({ device: 'video0', tool: 'uvcdynctrl', config: {}, log: recordingLog(), commands: FAKE });
    assert.deepEqual(await empty.list(), []);
  });

  it('shares one read between callers and runs tool calls one at a time', async () => {
    const calls = fakeTools();
    const controls = new CameraControls({ device: 'video0', tool: 'uvcdynctrl', config: {}, log: recordingLog(), commands: FAKE });
    const [a, b, c] = await Promise.all([controls.list(), controls.list(), controls.list()]);
    assert.equal(a, b);
    assert.equal(b, c);
    assert.equal(calls().filter((call) => call.args.includes('--clist')).length, 1);
    const [applied] = await Promise.all([controls.apply({ Brightness: 10 }), controls.apply({ Contrast: 20 })]);
    assert.equal(applied.find((x) => x.name === 'Brightness')?.value, 10);
    const after = await controls.list();
    assert.deepEqual([after.find((x) => x.name === 'Brightness')?.value, after.find((x) => x.name === 'Contrast')?.value], [10, 20]);
  });
});

describe('webcam-server controls', () => {
  const CLI = join(__dirname, '..', 'src', 'cli.ts');
  const cli = (args: string[], env: NodeJS.ProcessEnv = {}) =>
    execFileAsync(process.execPath, ['--import', 'tsx', CLI, 'controls', ...args], { env: { ...process.env, ...env } }).then(
      ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
      commandFailure,
    );

  it('prints the controls with values and ranges, and sets through the same checks', async () => {
    const calls = fakeTools();
    const env = { PATH: `${join(FIXTURES, 'bin')}:${process.env.PATH}`, FAKE_CONTROLS_DIR: process.env.FAKE_CONTROLS_DIR };
    const listed = await cli([], env);
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, /^Controls of video0:\n/);
    assert.match(listed.stdout, /^ {2}Power Line Frequency +2 \(60 Hz\) +0=Disabled, 1=50 Hz, 2=60 Hz +default 2 \(60 Hz\)$/m);
    assert.match(listed.stdout, /^ {2}Focus \(absolute\) +0 +0\.\.250 step 5 +default 0$/m);

    const set = await cli(['--set', 'Focus, Auto=off', '--set', 'Pan (Absolute)=-3600'], env);
    assert.equal(set.code, 0, set.stderr);
    assert.match(set.stdout, /^ {2}Pan \(Absolute\) +-3600 /m);
    assert.deepEqual(calls().filter((c) => c.args.some((a) => a.startsWith('--set'))).map((c) => c.args.slice(1)), [
      ['--set=Focus, Auto', '--', '0'],
      ['--set=Pan (Absolute)', '--', '-3600'],
    ]);

    const bad = await cli(['--set', 'Brightness=999'], env);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /"Brightness": 999 is out of range; it takes a whole number from 0 to 255/);
    const json = await cli(['--json', '--tool', 'v4l2-ctl'], env);
    assert.equal((JSON.parse(json.stdout) as unknown[]).length, 17);
  });

  it('with the real uvcdynctrl and no camera: exit 1 and how to find the device', { skip: !existsSync('/usr/bin/uvcdynctrl') && !process.env.CI && 'uvcdynctrl not installed' }, async () => {
    const result = await cli(['--device', 'video3', '--tool', 'uvcdynctrl']);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /uvcdynctrl cannot open video3: is the webcam plugged in\? \(uvcdynctrl -l lists/);
    assert.equal((await cli(['--tool', 'nope'])).code, 1);
  });
});
