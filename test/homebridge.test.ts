// The plugin inside a real Homebridge (child process, built package from dist/): it loads,
// serves the live page with users from the storage folder, survives a config with no camera,
// and leaves no ffmpeg behind when Homebridge stops (the capture; no H.264 encoder while nobody watches).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { basic, childProcessesNamed, freeTcpPort, get, homebridgeCommand, MjpegClient, sleep, tempDir, waitForExit, writeUsers } from './helpers';

const ROOT = join(__dirname, '..');
const HOMEBRIDGE = homebridgeCommand();


async function startHomebridge(t: { after: (fn: () => void) => void }, platform: Record<string, unknown>) {
  const storage = tempDir();
  const bridgePort = await freeTcpPort();
  const config = {
    bridge: { name: 'Webcam Test Bridge', username: '0E:AA:BB:CC:DD:EE', port: bridgePort, pin: '031-45-154', advertiser: 'ciao', bind: ['lo'] },
    platforms: [{ platform: 'WebcamServer', name: 'Webcam Server', ...platform }],
  };
  writeFileSync(join(storage, 'config.json'), JSON.stringify(config));
  const child = spawn(HOMEBRIDGE.node, [HOMEBRIDGE.homebridge, '-D', '-Q', '-U', storage, '-P', ROOT], { env: { ...process.env, FORCE_COLOR: '0' } });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  t.after(() => {
    child.kill('SIGKILL');
  });
  const waitFor = async (pattern: RegExp, timeoutMs = 20_000) => {
    const deadline = Date.now() + timeoutMs;
    while (!pattern.test(output)) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`no ${pattern} in Homebridge output:\n${output}`);
      await sleep(100);
    }
  };
  return { child, storage, waitFor, output: () => output };
}

describe(`under Homebridge ${HOMEBRIDGE.version}`, { skip: existsSync(join(ROOT, 'dist', 'index.js')) ? false : 'run `npm run build` first' }, () => {
  it('loads the plugin, serves the camera, and stops every ffmpeg with Homebridge', async (t) => {
    const webPort = await freeTcpPort();
    const hb = await startHomebridge(t, {
      cameras: [{ name: 'Porch', source: 'testsrc', width: 320, height: 240, fps: 10 }],
      web: { host: '127.0.0.1', port: webPort },
    });
    mkdirSync(join(hb.storage, 'webcam-server'), { recursive: true });
    await writeUsers(join(hb.storage, 'webcam-server', 'users'), { alice: 'wonderland' });
    await hb.waitFor(/Web server listening on http:\/\/127\.0\.0\.1:\d+/);
    assert.match(hb.output(), /Loaded plugin: homebridge-webcam-server/);
    assert.match(hb.output(), new RegExp(`Homebridge v${HOMEBRIDGE.version}\\.`));

    const url = `http://127.0.0.1:${webPort}`;
    assert.equal((await get(`${url}/healthz`)).status, 200);
    assert.equal((await get(`${url}/`)).status, 401);
    const viewer = new MjpegClient(`${url}/cameras/porch/stream.mjpg`, basic('alice', 'wonderland'));
    await viewer.open();
    await viewer.waitForParts(3);
    // One capture opens the camera, and nothing else runs: no H.264 encoder while no HomeKit
    // viewer watches and nothing records (homekit.warmEncoder is off by default).
    const ffmpegs = await childProcessesNamed(hb.child.pid!, 'ffmpeg');
    const commands = ffmpegs.map((pid) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' '));
    assert.equal(commands.filter((c) => /testsrc/.test(c)).length, 1, `one capture, run by Homebridge: ${commands.join(' | ')}`);
    assert.equal(commands.filter((c) => /libx264/.test(c)).length, 0, `no H.264 encoder: ${commands.join(' | ')}`);
    assert.equal(ffmpegs.length, 1);

    hb.child.kill('SIGTERM');
    await waitForExit(hb.child, 15_000);
    const stillAlive = () => ffmpegs.filter((pid) => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    });
    for (let i = 0; i < 20 && stillAlive().length > 0; i++) await sleep(100);
    assert.deepEqual(stillAlive(), [], 'every ffmpeg ended with Homebridge');
    viewer.close();
  });

  it('keeps Homebridge running when the config has no usable camera', async (t) => {
    const hb = await startHomebridge(t, { cameras: [{ name: 'Broken' }] });
    await hb.waitFor(/is running on port/);
    await hb.waitFor(/"Broken"\) has no "source"/);
    await hb.waitFor(/No usable camera configured/);
    await sleep(500);
    assert.equal(hb.child.exitCode, null, 'Homebridge is still up');
  });
});
