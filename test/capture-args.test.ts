// The capture command line per source kind, ffmpeg discovery, and config validation.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { controlsDeviceOf, normalizeConfig, slugify } from '../src/config';
import { buildCaptureArgs, buildScaleArgs, explainCaptureError, isHttpUrl, isPassThrough, redactSecrets } from '../src/media/capture-args';
import { FfmpegNotFoundError, parseEncoders, resolveFfmpegPath } from '../src/media/ffmpeg';

const camera = { source: '/dev/video0', inputFormat: 'mjpeg', width: 1280, height: 720, fps: 30, quality: 5 };

/** The value after `flag` in an argument list. */
const after = (args: string[], flag: string) => args[args.indexOf(flag) + 1];

describe('buildCaptureArgs', () => {
  it('passes an MJPEG webcam through untouched', () => {
    const args = buildCaptureArgs(camera);
    assert.equal(after(args, '-f'), 'v4l2');
    assert.equal(after(args, '-input_format'), 'mjpeg');
    assert.equal(after(args, '-video_size'), '1280x720');
    assert.equal(after(args, '-framerate'), '30');
    assert.equal(after(args, '-i'), '/dev/video0');
    assert.equal(after(args, '-c:v'), 'copy');
    assert.ok(isPassThrough(camera));
    assert.deepEqual(args.slice(-3), ['-f', 'mjpeg', 'pipe:1']);
  });

  it('encodes a raw-format webcam to JPEG', () => {
    const args = buildCaptureArgs({ ...camera, inputFormat: 'yuyv422', quality: 7 });
    assert.equal(after(args, '-input_format'), 'yuyv422');
    assert.equal(after(args, '-c:v'), 'mjpeg');
    assert.equal(after(args, '-q:v'), '7');
    assert.ok(!args.includes('copy'));
  });

  it('makes testsrc a real-time moving pattern at the configured size and rate', () => {
    const args = buildCaptureArgs({ ...camera, source: 'testsrc', width: 320, height: 240, fps: 15 });
    assert.ok(args.includes('-re'));
    assert.equal(after(args, '-f'), 'lavfi');
    assert.equal(after(args, '-i'), 'testsrc=size=320x240:rate=15');
  });

  it('reads a URL over TCP for RTSP, scaled to the configured size, each argument whole', () => {
    const url = 'rtsp://user:pa ss@cam.local/stream one';
    const args = buildCaptureArgs({ ...camera, source: url });
    assert.equal(after(args, '-rtsp_transport'), 'tcp');
    assert.equal(after(args, '-i'), url, 'a URL with spaces stays one argument');
    assert.equal(after(args, '-vf'), 'scale=1280:720');
    assert.ok(!buildCaptureArgs({ ...camera, source: 'http://cam/video.mjpg' }).includes('-rtsp_transport'));
  });

  it('keeps a URL\'s frames at the source\'s own rate: no output rate, no constant-rate sync', () => {
    // `-r` made a constant rate against the input's guessed rate (25 fps for MJPEG over http):
    // a 15 fps source came out at 8.8 fps. The cap at the camera's fps is applied in Node.
    const args = buildCaptureArgs({ ...camera, source: 'rtsp://cam.local/live', fps: 15 });
    assert.ok(!args.includes('-r'), args.join(' '));
    assert.equal(after(args, '-fps_mode'), 'vfr');
    assert.equal(after(args, '-enc_time_base'), '-1', 'the source\'s time base: no two frames rounded to one timestamp');
    assert.deepEqual(args.slice(-3), ['-f', 'mjpeg', 'pipe:1']);
  });

  it('scales JPEGs fed on stdin, one out per one in, without the URL', () => {
    const source = 'http://alice:wonderland@10.0.0.2/stream.mjpg';
    const args = buildScaleArgs({ ...camera, source, width: 320, height: 240, quality: 6 });
    assert.equal(after(args, '-f'), 'mpjpeg');
    assert.equal(after(args, '-i'), 'pipe:0');
    assert.ok(!args.includes('-nostdin'), 'it reads stdin');
    assert.equal(after(args, '-vf'), 'scale=320:240');
    assert.equal(after(args, '-fps_mode'), 'passthrough');
    assert.ok(!args.includes('-r') && !args.includes('-use_wallclock_as_timestamps'), args.join(' '));
    assert.equal(after(args, '-q:v'), '6');
    assert.ok(!args.some((arg) => arg.includes('wonderland') || arg.includes('10.0.0.2')), 'the URL is not in the arguments');
    assert.deepEqual(args.slice(-3), ['-f', 'mjpeg', 'pipe:1']);
  });

  it('reads http(s) addresses in Node, other schemes with ffmpeg', () => {
    assert.ok(isHttpUrl('http://cam/stream') && isHttpUrl('HTTPS://cam/stream'));
    assert.ok(!isHttpUrl('rtsp://cam/live') && !isHttpUrl('testsrc') && !isHttpUrl('/dev/video0'));
  });

  it('explains common capture failures', () => {
    assert.match(explainCaptureError('[video4linux2,v4l2 @ 0x1] Cannot open video device /dev/video0: No such file or directory', '/dev/video0'), /is the webcam plugged in/);
    assert.match(explainCaptureError('Cannot open video device /dev/video0: Device or resource busy', '/dev/video0'), /in use by another program/);
    assert.match(explainCaptureError('/dev/video0: Permission denied', '/dev/video0'), /"video" group/);
    assert.match(explainCaptureError('rtsp://***@cam: Connection refused', 'rtsp://cam'), /could not be read/);
    assert.equal(explainCaptureError('something new', '/dev/video0'), '');
  });

  it('hides credentials in log text', () => {
    assert.equal(redactSecrets('-i rtsp://admin:hunter2@10.0.0.2/live'), '-i rtsp://***@10.0.0.2/live');
    assert.equal(redactSecrets('http://cam/no-secret'), 'http://cam/no-secret');
  });
});

describe('resolveFfmpegPath', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ffmpeg-path-'));
  const fake = join(dir, 'ffmpeg');
  writeFileSync(fake, '#!/bin/sh\n');
  chmodSync(fake, 0o755);

  it('prefers videoProcessor, then falls back to ffmpeg on PATH', () => {
    assert.equal(resolveFfmpegPath(fake, '/nonexistent'), fake);
    assert.equal(resolveFfmpegPath(undefined, dir), fake);
    assert.equal(resolveFfmpegPath('/no/such/ffmpeg', dir), fake);
  });

  it('names all three places when there is no ffmpeg', () => {
    assert.throws(
      () => resolveFfmpegPath('/no/such/ffmpeg', '/nonexistent'),
      (error: Error) =>
        error instanceof FfmpegNotFoundError &&
        /videoProcessor "\/no\/such\/ffmpeg"/.test(error.message) &&
        /ffmpeg-for-homebridge/.test(error.message) &&
        /on PATH/.test(error.message) &&
        /apt-get install ffmpeg/.test(error.message),
    );
  });

  it('parses the encoder list', () => {
    const encoders = parseEncoders(' V..... = Video\n ------\n V....D libx264              libx264 H.264\n A....D libopus              Opus\n V....D mjpeg                MJPEG\n');
    assert.deepEqual([...encoders].sort(), ['libopus', 'libx264', 'mjpeg']);
  });
});

describe('normalizeConfig', () => {
  it('fills defaults and gives each camera its slug id', () => {
    const { config, problems } = normalizeConfig({ cameras: [{ name: 'Front Porch!', source: 'testsrc' }, { name: 'Back door', source: '/dev/video1' }] });
    assert.deepEqual(problems, []);
    assert.deepEqual(config.cameras.map((c) => c.id), ['front-porch', 'back-door']);
    const [front, back] = config.cameras;
    assert.ok(front && back);
    assert.equal(front.width, 1280);
    assert.equal(config.web.port, 8181);
    assert.equal(controlsDeviceOf(back), 'video1');
    assert.equal(controlsDeviceOf(front), undefined);
  });

  it('disables only the bad camera and says how to fix it', () => {
    const { config, problems } = normalizeConfig({
      cameras: [{ name: 'No source' }, { name: 'Good', source: 'testsrc', fps: 'fast' }, 'oops', { name: 'Bad', source: 'C:\\cam' }],
    });
    assert.deepEqual(config.cameras.map((c) => c.name), ['Good']);
    assert.equal(config.cameras[0]?.fps, 30);
    assert.ok(problems.some((p) => /"No source"\) has no "source"/.test(p)));
    assert.ok(problems.some((p) => /fps must be a whole number/.test(p)));
    assert.ok(problems.some((p) => /cameras\[2\] must be an object/.test(p)));
    assert.ok(problems.some((p) => /source "C:\\\\cam" must be a device such as \/dev\/video0/.test(p)));
  });

  it('keeps valid trusted networks and names the bad ones', () => {
    const { config, problems } = normalizeConfig({ web: { trustedNetworks: ['192.168.1.0/24', 'fd00::/8', '10.0.0.7', 'lan', 42] } });
    assert.deepEqual(config.web.trustedNetworks, ['192.168.1.0/24', 'fd00::/8', '10.0.0.7']);
    assert.equal(problems.length, 2);
    assert.match(problems[0] ?? '', /"lan" must be an IP address or a CIDR range/);
    assert.match(problems[1] ?? '', /"42" must be an IP address or a CIDR range/);
  });

  it('turns sound off by default and checks the ALSA device name', () => {
    const { config, problems } = normalizeConfig({
      cameras: [
        { name: 'A', source: 'testsrc' },
        { name: 'B', source: 'testsrc', audio: { enabled: true, source: 'hw:1,0' } },
        { name: 'C', source: 'testsrc', audio: { enabled: true, source: 'hw:1; rm -rf /' } },
      ],
    });
    assert.deepEqual(config.cameras.map((c) => [c.audio.enabled, c.audio.source]), [[false, 'default'], [true, 'hw:1,0'], [true, 'default']]);
    assert.match(problems[0] ?? '', /"hw:1; rm -rf \/" must be an ALSA device name/);
  });

  it('slugifies names for URLs', () => {
    assert.equal(slugify('Café Door #2'), 'cafe-door-2');
    assert.equal(slugify('***'), 'camera');
  });
});
