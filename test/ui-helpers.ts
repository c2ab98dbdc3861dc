// The real Homebridge UI (homebridge-config-ui-x) for the tests: started alone on a free loopback
// port with a temp storage folder, an admin user of its own, and this repository linked into a
// temp plugin folder, so it finds the plugin as it finds an installed one; and the steps a person
// takes in Chromium to open the plugin's settings.
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { pbkdf2Sync, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import type { Frame, Page } from 'playwright-core';

import { freeTcpPort, sleep, tempDir, waitForExit } from './helpers';

const ROOT = join(__dirname, '..');
const UI_MAIN = join(ROOT, 'node_modules', 'homebridge-config-ui-x', 'dist', 'main.js');

export const UI_ADMIN = { username: 'admin', password: 'test-admin-password' };

export interface HomebridgeUi {
  url: string;
  port: number;
  /** The Homebridge storage folder (config.json, auth.json, webcam-server/users). */
  storage: string;
  configPath: string;
  /** Everything the UI (and the plugin's server.js, through it) printed. */
  output(): string;
  /** The plugin's block in config.json as it is on disk now. */
  pluginConfig(): Record<string, unknown> | undefined;
  stop(): Promise<void>;
}

/** The admin user in homebridge-config-ui-x's auth.json format (pbkdf2-sha512, 1000 rounds). */
function authFile(username: string, password: string): string {
  const salt = randomBytes(32).toString('hex');
  const hashedPassword = pbkdf2Sync(password, salt, 1000, 64, 'sha512').toString('hex');
  return JSON.stringify([{ id: 1, username, name: 'Test Admin', hashedPassword, salt, admin: true, otpActive: false }]);
}

/** Starts the Homebridge UI with `platform` as this plugin's config block; stopped after the test. */
export async function startHomebridgeUi(
  t: { after: (fn: () => Promise<void> | void) => void },
  platform: Record<string, unknown>,
  env: Record<string, string> = {},
): Promise<HomebridgeUi> {
  const dir = tempDir();
  const storage = join(dir, 'storage');
  const plugins = join(dir, 'node_modules');
  mkdirSync(storage);
  mkdirSync(plugins);
  // The UI lists packages named homebridge-* with the homebridge-plugin keyword in this folder.
  symlinkSync(ROOT, join(plugins, 'homebridge-webcam-server'), 'dir');
  writeFileSync(join(storage, 'auth.json'), authFile(UI_ADMIN.username, UI_ADMIN.password));
  const port = await freeTcpPort();
  const configPath = join(storage, 'config.json');
  writeFileSync(
    configPath,
    JSON.stringify(
      {
        bridge: { name: 'Homebridge Test', username: '0E:57:3C:11:22:33', port: await freeTcpPort(), pin: '031-45-154' },
        accessories: [],
        platforms: [{ platform: 'config', name: 'Config', port, host: '127.0.0.1' }, { platform: 'WebcamServer', ...platform }],
      },
      null,
      2,
    ),
  );
  const child: ChildProcess = spawn(process.execPath, [UI_MAIN], {
    cwd: dir,
    env: {
      ...process.env,
      UIX_CONFIG_PATH: configPath,
      UIX_STORAGE_PATH: storage,
      UIX_CUSTOM_PLUGIN_PATH: plugins,
      // Only the plugin folder above: no `npm -g prefix` call, no plugins of the machine.
      UIX_STRICT_PLUGIN_RESOLUTION: '1',
      UIX_INSECURE_MODE: '1',
      UIX_LOG_NO_TIMESTAMPS: '1',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // Even when the test process dies half-way, the UI goes with it (its server.js child follows:
  // it ends when the UI's IPC channel closes).
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  child.once('exit', () => process.off('exit', killOnExit));
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    try {
      await waitForExit(child, 10_000);
    } catch {
      child.kill('SIGKILL');
      await waitForExit(child, 5_000);
    }
  };
  t.after(stop);

  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the Homebridge UI exited (${child.exitCode}):\n${output}`);
    try {
      const response = await fetch(`${url}/api/auth/settings`);
      if (response.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`the Homebridge UI did not start within 60 s:\n${output}`);
    await sleep(200);
  }
  return {
    url,
    port,
    storage,
    configPath,
    output: () => output,
    /** The plugin's block as saved; undefined while the UI is rewriting the file (it is briefly gone or half-written). */
    pluginConfig: () => {
      try {
        const config = JSON.parse(readFileSync(configPath, 'utf8')) as { platforms?: Array<Record<string, unknown>> };
        return config.platforms?.find((p) => p.platform === 'WebcamServer');
      } catch {
        return undefined;
      }
    },
    stop,
  };
}

/** Logs in through the UI's own login form. */
export async function logIn(page: Page, ui: HomebridgeUi): Promise<void> {
  await page.goto(`${ui.url}/login`);
  await page.fill('#form-username', UI_ADMIN.username);
  await page.fill('#form-pass', UI_ADMIN.password);
  await page.click('button[type=submit]');
  await page.waitForURL((url) => !url.pathname.startsWith('/login'), { timeout: 20_000 });
}

/**
 * Opens the plugin's settings from the Plugins page (the card's menu, "Plugin Config"), as a
 * person does; answers the custom UI's frame once its page has loaded.
 */
export async function openPluginSettings(page: Page, ui: HomebridgeUi): Promise<Frame> {
  await page.goto(`${ui.url}/plugins`);
  const card = page.locator('app-plugin-card', { hasText: 'homebridge-webcam-server' });
  await card.locator('a[aria-label="Plugin Actions Dropdown"]').click();
  await card.locator('button.dropdown-item', { hasText: 'Plugin Config' }).click();
  const iframe = page.locator('.modal iframe');
  await iframe.waitFor({ timeout: 20_000 });
  const frame = await (await iframe.elementHandle()).contentFrame();
  if (!frame) throw new Error('the custom UI frame has no content');
  return frame;
}
