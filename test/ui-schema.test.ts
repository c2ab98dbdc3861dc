// config.schema.json, the settings form of the Homebridge UI and the plugin's one description of its
// config: checked with a JSON-schema validator (ajv, as the form fills in defaults) against example
// configs (the valid ones pass; each invalid one fails for its own reason, and the plugin's
// normalizeConfig says so in its own words), every key of the schema reaching the plugin's config,
// its layout against the schema, and the settings page's merge of the form into the config.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import Ajv from 'ajv';
import type { ErrorObject } from 'ajv';
import addFormats from 'ajv-formats';

import { normalizeConfig } from '../src/config';
import { standardSchema } from '../src/config-schema';
import type { SchemaNode } from '../src/config-schema';

type Json = Record<string, unknown>;

const FILE = join(__dirname, '..', 'config.schema.json');
const doc = JSON.parse(readFileSync(FILE, 'utf8')) as { schema: Json; layout: unknown[]; [key: string]: unknown };

// The schema as the form checks it: defaults filled in, no type coercion.
const ajv = new Ajv({ strict: false, allErrors: true, useDefaults: true });
addFormats(ajv);
const validate = ajv.compile(standardSchema(doc.schema as SchemaNode));

function errorsOf(config: unknown): ErrorObject[] {
  return validate(structuredClone(config)) ? [] : (validate.errors ?? []);
}

/** Every leaf path of the schema: `cameras[].motion.enabled`, `web.trustedNetworks` … */
function schemaPaths(node: Json, prefix = ''): string[] {
  if (node.type === 'object' && node.properties) {
    return Object.entries(node.properties as Record<string, Json>).flatMap(([key, child]) => [
      ...(child.type === 'object' && child.properties ? [] : [prefix + key]),
      ...schemaPaths(child, `${prefix}${key}.`),
    ]);
  }
  if (node.type === 'array' && (node.items as Json | undefined)?.type === 'object') return schemaPaths(node.items as Json, `${prefix.slice(0, -1)}[].`);
  return [];
}

/** The value at a schema path (`cameras[].motion.enabled`) of a config, taking the first of a list. */
function valueAt(config: unknown, path: string): unknown {
  let node = config;
  for (const key of path.split('.')) {
    const [name, list] = key.endsWith('[]') ? [key.slice(0, -2), true] : [key, false];
    node = (node as Json | undefined)?.[name];
    if (list) node = (node as unknown[] | undefined)?.[0];
  }
  return node;
}

/** A config that sets every option (each value valid). */
const EVERYTHING = {
  platform: 'WebcamServer',
  name: 'Home',
  videoProcessor: '/usr/bin/ffmpeg',
  cameras: [
    {
      name: 'Porch',
      source: '/dev/video0',
      inputFormat: 'mjpeg',
      width: 1280,
      height: 720,
      fps: 30,
      quality: 5,
      timestamp: true,
      controls: { Brightness: 140, 'Focus, Auto': false },
      controlsDevice: 'video0',
      controlsTool: 'uvcdynctrl',
      controlsFile: '/usr/share/uvcdynctrl/data/046d/logitech.xml',
      motion: { enabled: true, sensitivity: 60, cooldownSeconds: 20 },
      homekit: { enabled: true, unbridge: false, maxStreams: 3, encoder: 'h264_v4l2m2m', warmEncoder: false, recording: { enabled: false } },
      audio: { enabled: true, source: 'dsnoop:CARD=C920,DEV=0' },
    },
  ],
  web: {
    enabled: true,
    host: '127.0.0.1',
    port: 8181,
    socket: '/run/webcam/webcam.sock',
    usersFile: '/var/lib/homebridge/webcam-server/users',
    trustedNetworks: ['192.168.1.0/24', 'fd00::/8'],
    allowedHosts: ['camera.example.org'],
    h264: { bitrate: 800 },
    tls: { cert: '/etc/ssl/cam.pem', key: '/etc/ssl/cam.key' },
    maxFailedLogins: 5,
    lockoutMinutes: 30,
    trustProxy: ['127.0.0.1', '10.0.0.0/8'],
    kioskFrameAncestors: ['https://dash.example.com', "'self'"],
  },
  alerts: {
    ses: { region: 'us-west-2', from: 'Camera <cam@example.com>', to: ['me@example.com'], accessKeyId: 'AKIAEXAMPLE', secretAccessKey: 'secret', endpoint: 'http://127.0.0.1:8005' },
    smtp: { host: 'email-smtp.us-west-2.amazonaws.com', port: 587, username: 'AKIASMTP', password: 'pw', from: 'cam@example.com', fromName: 'Porch camera', to: ['me@example.com'] },
    on: { motion: true, offline: false, publicIpChange: true, failedLogins: 3 },
    cooldownSeconds: 600,
    maxPerHour: 10,
    offlineAfterSeconds: 120,
    failedLoginWindowMinutes: 5,
    publicIp: { resolver: 'resolver1.opendns.com:53', hostname: 'myip.opendns.com', intervalMinutes: 30 },
  },
};

/** What the Homebridge UI's form saves for a new setup (the camera's name and source typed in): every default written out. */
const FORM_DEFAULTS = {
  platform: 'WebcamServer',
  name: 'Webcam Server',
  cameras: [
    {
      name: 'Porch',
      source: '/dev/video0',
      inputFormat: 'mjpeg',
      width: 1280,
      height: 720,
      fps: 30,
      quality: 5,
      timestamp: false,
      controlsTool: 'auto',
      motion: { enabled: true, sensitivity: 50, cooldownSeconds: 30 },
      homekit: { enabled: true, unbridge: true, maxStreams: 2, encoder: 'libx264', warmEncoder: false },
      audio: { enabled: false, source: 'default' },
    },
  ],
  web: { enabled: true, host: '0.0.0.0', port: 8181 },
  alerts: {
    on: { motion: true, offline: true, publicIpChange: true, failedLogins: 5 },
    cooldownSeconds: 300,
    maxPerHour: 20,
    offlineAfterSeconds: 60,
    failedLoginWindowMinutes: 10,
    publicIp: { resolver: 'resolver1.opendns.com', hostname: 'myip.opendns.com', intervalMinutes: 15 },
  },
};

const porch = { name: 'Porch', source: '/dev/video0' };
const sesBlock = { region: 'us-west-2', from: 'cam@example.com', to: ['me@example.com'] };

/** Each invalid config, the error ajv must give (path, keyword, and a detail), and what the plugin says. */
const INVALID: Array<{ why: string; config: Json; path: string; keyword: string; detail?: RegExp; plugin?: RegExp }> = [
  { why: 'a camera without source', config: { name: 'x', cameras: [{ name: 'Porch' }] }, path: '/cameras/0', keyword: 'required', detail: /source/, plugin: /cameras\[0\] \("Porch"\) has no "source": set a device such as \/dev\/video0, the word testsrc, or a stream URL .*; this camera is disabled\./ },
  { why: 'a camera without name', config: { name: 'x', cameras: [{ source: 'testsrc' }] }, path: '/cameras/0', keyword: 'required', detail: /name/, plugin: /cameras\[0\] has no "name": give the camera a name.*; this camera is disabled\./ },
  { why: 'a source that is no device, testsrc or URL', config: { name: 'x', cameras: [{ ...porch, source: 'video0' }] }, path: '/cameras/0/source', keyword: 'pattern', plugin: /cameras\[0\] \("Porch"\)\.source "video0" must be a device such as \/dev\/video0.*; this camera is disabled\./ },
  { why: 'an input format with a space', config: { name: 'x', cameras: [{ ...porch, inputFormat: 'yuyv 422' }] }, path: '/cameras/0/inputFormat', keyword: 'pattern', plugin: /inputFormat "yuyv 422" must be a pixel format name such as mjpeg or yuyv422; using "mjpeg"\./ },
  { why: 'a width below 16', config: { name: 'x', cameras: [{ ...porch, width: 10 }] }, path: '/cameras/0/width', keyword: 'minimum', plugin: /\("Porch"\)\.width must be a whole number from 16 to 7680 \(got 10\); using 1280\./ },
  { why: 'a fractional frame rate', config: { name: 'x', cameras: [{ ...porch, fps: 12.5 }] }, path: '/cameras/0/fps', keyword: 'type', plugin: /\.fps must be a whole number from 1 to 120 \(got 12\.5\); using 30\./ },
  { why: 'a quality of 1', config: { name: 'x', cameras: [{ ...porch, quality: 1 }] }, path: '/cameras/0/quality', keyword: 'minimum', plugin: /\.quality must be a whole number from 2 to 31 \(got 1\); using 5\./ },
  { why: 'a control value that is text', config: { name: 'x', cameras: [{ ...porch, controls: { Brightness: 'high' } }] }, path: '/cameras/0/controls/Brightness', keyword: 'type', plugin: /\.controls\.Brightness must be a number or true\/false \(got "high"\); ignoring it\./ },
  { why: 'a controls device with a space', config: { name: 'x', cameras: [{ ...porch, controlsDevice: 'video 0' }] }, path: '/cameras/0/controlsDevice', keyword: 'pattern', plugin: /\.controlsDevice "video 0" must be a device name such as video0 or \/dev\/video0; ignoring it\./ },
  { why: 'an unknown controls tool', config: { name: 'x', cameras: [{ ...porch, controlsTool: 'magic' }] }, path: '/cameras/0/controlsTool', keyword: 'enum', plugin: /\.controlsTool "magic" must be one of auto, uvcdynctrl, v4l2-ctl; using "auto"\./ },
  { why: 'motion sensitivity above 100', config: { name: 'x', cameras: [{ ...porch, motion: { sensitivity: 101 } }] }, path: '/cameras/0/motion/sensitivity', keyword: 'maximum', plugin: /\.motion\.sensitivity must be a whole number from 0 to 100 \(got 101\); using 50\./ },
  { why: 'nine HomeKit streams', config: { name: 'x', cameras: [{ ...porch, homekit: { maxStreams: 9 } }] }, path: '/cameras/0/homekit/maxStreams', keyword: 'maximum', plugin: /\.homekit\.maxStreams must be a whole number from 1 to 8 \(got 9\); using 2\./ },
  { why: 'an encoder the form does not offer', config: { name: 'x', cameras: [{ ...porch, homekit: { encoder: 'x264 --fast' } }] }, path: '/cameras/0/homekit/encoder', keyword: 'enum', plugin: /\.homekit\.encoder "x264 --fast" must be one of libx264, h264_v4l2m2m; using "libx264"\./ },
  { why: 'HomeKit switched on with text', config: { name: 'x', cameras: [{ ...porch, homekit: { enabled: 'yes' } }] }, path: '/cameras/0/homekit/enabled', keyword: 'type', plugin: /\.homekit\.enabled must be true or false \(got "yes"\); using true\./ },
  { why: 'an ALSA device with a space', config: { name: 'x', cameras: [{ ...porch, audio: { enabled: true, source: 'hw 1' } }] }, path: '/cameras/0/audio/source', keyword: 'pattern', plugin: /\.audio\.source "hw 1" must be an ALSA device name such as default, hw:1,0 .*; using "default"\./ },
  { why: 'port 70000', config: { name: 'x', web: { port: 70000 } }, path: '/web/port', keyword: 'maximum', plugin: /"web\.port" must be a whole number from 0 to 65535 \(got 70000\); using 8181\./ },
  { why: 'a trusted network that is a word', config: { name: 'x', web: { trustedNetworks: ['lan'] } }, path: '/web/trustedNetworks/0', keyword: 'pattern', plugin: /"web\.trustedNetworks" entry "lan" must be an IP address or a CIDR range such as 192\.168\.1\.0\/24; skipping it\./ },
  { why: 'a certificate without its key', config: { name: 'x', web: { tls: { cert: '/c.pem' } } }, path: '/web/tls', keyword: 'dependencies', detail: /key/, plugin: /"web\.tls" needs both "cert" and "key", or neither; serving plain HTTP\./ },
  { why: 'SES without recipients', config: { name: 'x', alerts: { ses: { region: 'us-west-2', from: 'cam@example.com' } } }, path: '/alerts/ses', keyword: 'required', detail: /to/, plugin: /"alerts\.ses" has no "to": add one or more recipients such as me@example\.com; SES is off\./ },
  { why: 'SES with an empty recipient list', config: { name: 'x', alerts: { ses: { ...sesBlock, to: [] } } }, path: '/alerts/ses/to', keyword: 'minItems', plugin: /"alerts\.ses" has no "to": add one or more recipients/ },
  { why: 'a recipient that is no address', config: { name: 'x', alerts: { ses: { ...sesBlock, to: ['me at home'] } } }, path: '/alerts/ses/to/0', keyword: 'pattern', plugin: /"alerts\.ses\.to" entry "me at home" must be an email address such as me@example\.com; skipping it\./ },
  { why: 'a sender that is no address', config: { name: 'x', alerts: { ses: { ...sesBlock, from: 'camera' } } }, path: '/alerts/ses/from', keyword: 'pattern', plugin: /"alerts\.ses\.from" "camera" must be an email address such as camera@example\.com.*; SES is off\./ },
  { why: 'a region name as words', config: { name: 'x', alerts: { ses: { ...sesBlock, region: 'Oregon' } } }, path: '/alerts/ses/region', keyword: 'pattern', plugin: /"alerts\.ses\.region" "Oregon" must be an AWS region such as us-west-2; SES is off\./ },
  { why: 'an access key without its secret', config: { name: 'x', alerts: { ses: { ...sesBlock, accessKeyId: 'AKIA' } } }, path: '/alerts/ses', keyword: 'dependencies', detail: /secretAccessKey/, plugin: /"alerts\.ses" needs both "accessKeyId" and "secretAccessKey", or neither; using neither/ },
  { why: 'an endpoint that is not http(s)', config: { name: 'x', alerts: { ses: { ...sesBlock, endpoint: 'ftp://ses.local' } } }, path: '/alerts/ses/endpoint', keyword: 'pattern', plugin: /"alerts\.ses\.endpoint" "ftp:\/\/ses\.local" must be an http:\/\/ or https:\/\/ URL.*; ignoring it\./ },
  { why: 'SMTP without host', config: { name: 'x', alerts: { smtp: { from: 'cam@example.com', to: ['me@example.com'] } } }, path: '/alerts/smtp', keyword: 'required', detail: /host/, plugin: /"alerts\.smtp" has no "host": set the SMTP server, such as email-smtp\.us-west-2\.amazonaws\.com; SMTP is off\./ },
  { why: 'SMTP port 0', config: { name: 'x', alerts: { smtp: { host: 'mail', port: 0, from: 'cam@example.com', to: ['me@example.com'] } } }, path: '/alerts/smtp/port', keyword: 'minimum', plugin: /"alerts\.smtp\.port" must be a whole number from 1 to 65535 \(got 0\); using 587\./ },
  { why: 'failed logins below 0', config: { name: 'x', alerts: { ses: sesBlock, on: { failedLogins: -1 } } }, path: '/alerts/on/failedLogins', keyword: 'minimum', plugin: /"alerts\.on\.failedLogins" must be a whole number from 0 to 1000 \(got -1\); using 5\./ },
  { why: 'no alerts an hour', config: { name: 'x', alerts: { ses: sesBlock, maxPerHour: 0 } }, path: '/alerts/maxPerHour', keyword: 'minimum', plugin: /"alerts\.maxPerHour" must be a whole number from 1 to 1000 \(got 0\); using 20\./ },
  { why: 'a resolver with a space', config: { name: 'x', alerts: { ses: sesBlock, publicIp: { resolver: 'my resolver' } } }, path: '/alerts/publicIp/resolver', keyword: 'pattern', plugin: /"alerts\.publicIp\.resolver" "my resolver" must be a DNS server as host or host:port.*; using "resolver1\.opendns\.com"\./ },
];

describe('config.schema.json', () => {
  it('is a Homebridge platform schema with a custom UI', () => {
    assert.equal(doc.pluginAlias, 'WebcamServer');
    assert.equal(doc.pluginType, 'platform');
    assert.equal(doc.singular, true);
    assert.equal(doc.customUi, true);
    assert.equal(doc.customUiPath, './homebridge-ui');
  });

  it('accepts valid configs, which the plugin takes without a complaint', () => {
    const valid: Array<[string, Json]> = [
      ['the smallest', { platform: 'WebcamServer', name: 'Webcam Server' }],
      ['every option set', EVERYTHING],
      ['the test pattern and a stream URL, SMTP alerts', {
        name: 'Cabin',
        cameras: [
          { name: 'Pattern', source: 'testsrc', width: 320, height: 240, fps: 10 },
          { name: 'Barn', source: 'rtsp://user:secret@10.0.0.5:554/stream1', inputFormat: 'yuyv422' },
        ],
        alerts: { smtp: { host: 'smtp.example.com', port: 465, from: 'cam@example.com', to: ['a@example.com', 'b@example.org'] } },
      }],
    ];
    for (const [why, config] of valid) {
      assert.deepEqual(errorsOf(config), [], why);
      assert.deepEqual(normalizeConfig(config).problems, [], `${why}: the plugin agrees`);
    }
    assert.deepEqual(errorsOf(FORM_DEFAULTS), [], 'what the form saves for a new setup');
  });

  for (const { why, config, path, keyword, detail, plugin } of INVALID) {
    it(`refuses ${why}`, () => {
      const errors = errorsOf(config);
      const match = errors.find((e) => e.instancePath === path && e.keyword === keyword && (!detail || detail.test(JSON.stringify(e.params))));
      assert.ok(match, `expected ${keyword} at "${path}", got ${JSON.stringify(errors.map((e) => [e.instancePath, e.keyword, e.params]))}`);
      const unrelated = errors.filter((e) => !e.instancePath.startsWith(path) && !(e.keyword === 'if'));
      assert.deepEqual(unrelated, [], 'nothing else is wrong with it');
      if (plugin) assert.match(normalizeConfig(config).problems.join('\n'), plugin, 'the plugin reports it too');
    });
  }

  it("brings every key of the schema into the plugin's config, as it was set", () => {
    const { config, problems } = normalizeConfig(EVERYTHING);
    assert.deepEqual(problems, [], 'the probe config is valid');
    const paths = schemaPaths(doc.schema).filter((path) => path !== 'cameras');
    assert.ok(paths.length > 60, `${paths.length} keys`);
    for (const path of paths) assert.deepEqual(valueAt(config, path), valueAt(EVERYTHING, path), path);
  });
});

describe('config.schema.json layout', () => {
  /** Keys named in the layout (`cameras[].motion.enabled`), and every condition's function body. */
  function walkLayout(items: unknown[], keys: string[], conditions: string[]): void {
    for (const item of items) {
      if (typeof item === 'string') keys.push(item);
      else if (item && typeof item === 'object') {
        const entry = item as Json;
        if (typeof entry.key === 'string') keys.push(entry.key);
        const condition = entry.condition as { functionBody?: string } | undefined;
        if (condition?.functionBody) conditions.push(condition.functionBody);
        if (Array.isArray(entry.items)) walkLayout(entry.items, keys, conditions);
      }
    }
  }
  const keys: string[] = [];
  const conditions: string[] = [];
  walkLayout(doc.layout, keys, conditions);

  it('shows every option of the schema, and only those', () => {
    const named = new Set(keys.map((key) => key.replace(/\[\]$/, '')));
    // Values the form cannot show as fields: a camera's controls (a map of the camera's own names,
    // set from the custom UI's Camera controls panel) and trustProxy (true or a list). The custom
    // UI keeps them in the config when the form changes (homebridge-ui/public/app.js).
    const notInForm = ['cameras[].controls', 'web.trustProxy'];
    const missing = schemaPaths(doc.schema).filter((path) => !named.has(path) && !notInForm.includes(path));
    assert.deepEqual(missing, [], 'options the form would not show');
    const paths = new Set([...schemaPaths(doc.schema), 'cameras', 'cameras[]']);
    assert.deepEqual([...named].filter((key) => !paths.has(key)), [], 'layout keys with no option behind them');
  });

  it('has conditions that run on an empty, a default and a full config', () => {
    assert.ok(conditions.length > 5);
    for (const body of conditions) {
      // The form calls them as functionBody(model, arrayIndices); so does this test.
      // eslint-disable-next-line @typescript-eslint/no-implied-eval
      const condition = new Function('model', 'arrayIndices', body) as (model: unknown, arrayIndices: number[]) => unknown;
      for (const model of [{}, { cameras: [{}] }, FORM_DEFAULTS, EVERYTHING]) {
        assert.equal(typeof condition(model, [0]), 'boolean', `${body} on ${JSON.stringify(model).slice(0, 40)}`);
      }
    }
    const sound = conditions.find((body) => body.includes('audio'));
    assert.ok(sound);
    // eslint-disable-next-line @typescript-eslint/no-implied-eval
    const showSource = new Function('model', 'arrayIndices', sound) as (model: unknown, arrayIndices: number[]) => boolean;
    assert.equal(showSource({ cameras: [{ audio: { enabled: true } }] }, [0]), true, 'the ALSA device shows when sound is on');
    assert.equal(showSource({ cameras: [{}] }, [0]), false, 'and not by default');
  });
});

interface FormMerge {
  layoutKeys(items: unknown[]): Set<string>;
  mergeFormModel(owned: Set<string>, old: Json, model: Json, schema?: Json): Json;
  normalizeForForm(block: Json): Json;
}
// The settings page's own script (a browser script that also loads as a CommonJS module).
// eslint-disable-next-line @typescript-eslint/no-require-imports
const formMerge = require('../homebridge-ui/public/form-merge.js') as FormMerge;

describe("the settings page's merge of the form into the config", () => {
  const owned = formMerge.layoutKeys(doc.layout);
  const old: Json = {
    platform: 'WebcamServer',
    name: 'Home',
    cameras: [
      { name: 'Porch', source: '/dev/video0', controls: { Brightness: 140 } },
      { name: 'Garden', source: 'testsrc', controlsDevice: 'video1', controls: { Zoom: 2 } },
    ],
    web: { port: 8181, usersFile: '/srv/users', trustProxy: ['127.0.0.1'], futureKnob: 3 },
  };

  it('knows the fields the form shows', () => {
    for (const key of ['name', 'cameras[].name', 'cameras[].homekit.warmEncoder', 'web.port', 'alerts.ses.to']) assert.ok(owned.has(key), key);
    for (const key of ['cameras[].controls', 'web.trustProxy', 'platform']) assert.ok(!owned.has(key), key);
  });

  it('takes what the form shows and keeps what it has no field for', () => {
    // The form changed the port, cleared the users file and dropped everything it has no field for.
    const model = { name: 'Home', cameras: [{ name: 'Porch', source: '/dev/video0' }, { name: 'Garden', source: 'testsrc', controlsDevice: 'video1' }], web: { port: 8282 } };
    assert.deepEqual(formMerge.mergeFormModel(owned, old, model), {
      name: 'Home',
      platform: 'WebcamServer',
      cameras: [
        { name: 'Porch', source: '/dev/video0', controls: { Brightness: 140 } },
        { name: 'Garden', source: 'testsrc', controlsDevice: 'video1', controls: { Zoom: 2 } },
      ],
      web: { port: 8282, trustProxy: ['127.0.0.1'], futureKnob: 3 },
    });
  });

  it('follows cameras through a rename (by position) and a removal (by name)', () => {
    const renamed = formMerge.mergeFormModel(owned, old, { name: 'Home', cameras: [{ name: 'Front door', source: '/dev/video0' }, { name: 'Garden', source: 'testsrc' }] });
    assert.deepEqual((renamed.cameras as Json[]).map((c) => c.controls), [{ Brightness: 140 }, { Zoom: 2 }]);
    const removed = formMerge.mergeFormModel(owned, old, { name: 'Home', cameras: [{ name: 'Garden', source: 'testsrc' }] });
    assert.deepEqual((removed.cameras as Json[]).map((c) => [c.name, c.controls]), [['Garden', { Zoom: 2 }]]);
    const added = formMerge.mergeFormModel(owned, old, { name: 'Home', cameras: [{ name: 'Porch' }, { name: 'Garden' }, { name: 'Attic', source: 'testsrc' }] });
    assert.deepEqual((added.cameras as Json[]).map((c) => c.controls), [{ Brightness: 140 }, { Zoom: 2 }, undefined]);
  });

  it("drops the form's alert defaults while neither SES nor SMTP is filled in", () => {
    const defaults = { on: { motion: true }, cooldownSeconds: 300 };
    assert.equal(formMerge.mergeFormModel(owned, {}, { name: 'x', alerts: defaults }, doc.schema).alerts, undefined);
    // The SMTP port has a default the form fills in: alone, it is not SMTP set up.
    assert.equal(formMerge.mergeFormModel(owned, {}, { name: 'x', alerts: { ...defaults, smtp: { port: 587 } } }, doc.schema).alerts, undefined);
    assert.deepEqual(formMerge.mergeFormModel(owned, {}, { name: 'x', alerts: { ...defaults, smtp: { port: 465 } } }, doc.schema).alerts, { ...defaults, smtp: { port: 465 } });
    assert.deepEqual(formMerge.mergeFormModel(owned, {}, { name: 'x', alerts: { ...defaults, ses: { region: 'us-west-2' } } }, doc.schema).alerts, { ...defaults, ses: { region: 'us-west-2' } });
  });

  it("turns flask-cam's SMTP names and comma-separated lists into the form's fields, meaning the same", () => {
    const flaskCam = {
      name: 'Cabin',
      cameras: [{ name: 'Porch', source: 'testsrc', width: '640', height: '480' }],
      web: { kioskFrameAncestors: 'https://dash.example.com' },
      alerts: {
        smtp: { host: 'email-smtp.us-west-2.amazonaws.com', port: '587', sender: 'cam@example.com', sender_name: 'Porch', recipient: 'me@example.com, you@example.com', smtp_username: 'AKIA', smtp_password: 'pw' },
      },
    };
    const normalized = formMerge.normalizeForForm(flaskCam);
    assert.deepEqual((normalized.alerts as { smtp: Json }).smtp, {
      host: 'email-smtp.us-west-2.amazonaws.com',
      port: 587,
      from: 'cam@example.com',
      fromName: 'Porch',
      to: ['me@example.com', 'you@example.com'],
      username: 'AKIA',
      password: 'pw',
    });
    assert.deepEqual(errorsOf(normalized), [], 'the form can hold all of it');
    assert.deepEqual(normalizeConfig(normalized).config, normalizeConfig(flaskCam).config, 'the plugin reads the same config');
  });
});
