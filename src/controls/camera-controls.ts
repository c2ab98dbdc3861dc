// One camera's controls: picks the tool (uvcdynctrl, else v4l2-ctl), discovers the device's
// controls, applies the config's values whenever the capture starts, and serves the web API's
// reads and writes. Calls to the tools run one at a time per camera; reads from several viewers
// share one call.
import { realpathSync } from 'node:fs';

import type { Log } from '../log';
import { checkRequest, describeValue } from './policy';
import type { ControlInfo, ControlState, ControlsDriver, ControlsTool, ControlsToolChoice } from './types';
import { ControlsError, INSTALL_HINT } from './types';
import { UvcDynCtrl } from './uvcdynctrl';
import { V4l2Ctl } from './v4l2-ctl';

export interface CameraControlsOptions {
  /** `video0`, `/dev/video0` or a link to one (/dev/v4l/by-id/...); undefined: nothing to tune. */
  device?: string;
  tool: ControlsToolChoice;
  /** Values applied whenever the capture starts. */
  config: Record<string, number | boolean>;
  /** A Logitech-style XML mapping imported with `uvcdynctrl -i` before the values are applied. */
  mappingFile?: string;
  log: Log;
  /** Commands to run instead of the names on PATH. */
  commands?: Partial<Record<ControlsTool, string>>;
  /** How long read values are reused (several viewers polling share one read). Default 1 s. */
  valuesMaxAgeMs?: number;
}

/** The device as each tool names it: uvcdynctrl `video0`, v4l2-ctl `/dev/video0`. Links are followed. */
export function deviceNames(device: string): Record<ControlsTool, string> {
  let path = device.startsWith('/') ? device : `/dev/${device}`;
  try {
    path = realpathSync(path);
  } catch {
    // not there (yet): the tools will say so
  }
  return { uvcdynctrl: path.startsWith('/dev/') ? path.slice('/dev/'.length) : path, 'v4l2-ctl': path };
}

/** What the web API needs of a camera's controls. */
export interface ControlsApi {
  list(): Promise<ControlState[]>;
  apply(request: Record<string, unknown>): Promise<ControlState[]>;
}

export class CameraControls implements ControlsApi {
  private driver?: ControlsDriver;
  private definitions?: ControlInfo[];
  private queue: Promise<unknown> = Promise.resolve();
  private cached?: { at: number; values: Promise<ControlState[]> };
  private lastWarning = '';

  constructor(private readonly options: CameraControlsOptions) {}

  /** False when the camera has no device to tune (a URL or testsrc without `controlsDevice`). */
  get configured(): boolean {
    return this.options.device !== undefined;
  }

  /** The controls with their current values. */
  list(): Promise<ControlState[]> {
    const maxAge = this.options.valuesMaxAgeMs ?? 1_000;
    if (this.cached && Date.now() - this.cached.at <= maxAge) return this.cached.values;
    const values = this.exclusive(() => this.readAll());
    this.cached = { at: Date.now(), values };
    values.catch(() => {
      if (this.cached?.values === values) this.cached = undefined;
    });
    return values;
  }

  /**
   * Checks every entry of `{ name: value }` against the discovered controls, then sets them (modes
   * before the values they unlock) and answers the new values. Nothing runs when any entry is bad.
   */
  apply(request: Record<string, unknown>): Promise<ControlState[]> {
    const result = this.exclusive(async () => {
      const { driver, controls } = await this.discover();
      const { changes, errors } = checkRequest(controls, request);
      if (errors.length > 0) throw new ControlsError('invalid', errors.join(' '));
      const done: string[] = [];
      for (const { control, value } of changes) {
        try {
          await driver.set(control, value);
        } catch (error) {
          if (done.length > 0 && error instanceof ControlsError) {
            error.message += ` (already set: ${done.join(', ')})`;
          }
          throw error;
        }
        done.push(`${control.name} = ${describeValue(control, value)}`);
      }
      if (done.length > 0) this.options.log.info(`Camera controls changed: ${done.join(', ')}.`);
      this.cached = undefined;
      return this.readAll();
    });
    return result;
  }

  /**
   * Applies the config's values (after importing the mapping file, if any). Called whenever the
   * capture starts, so values come back after the webcam is unplugged and plugged in again.
   * Never throws: problems are logged with their fix.
   */
  async applyConfig(): Promise<void> {
    const { config, log } = this.options;
    const names = Object.keys(config);
    if (!this.configured) {
      if (names.length > 0 || this.options.mappingFile) {
        this.warnOnce('"controls" are set but this camera has no device to tune: set "controlsDevice" (e.g. "video0") to the webcam that takes them.');
      }
      return;
    }
    await this.exclusive(async () => {
      this.forget();
      if (this.options.mappingFile) await this.importMappings(this.options.mappingFile);
      const { driver, controls } = await this.discover();
      if (names.length === 0) {
        log.debug(`${controls.length} camera controls available through ${driver.tool} on ${driver.device}.`);
        return;
      }
      const { changes, errors } = checkRequest(controls, config);
      for (const error of errors) log.warn(`Config "controls": ${error}`);
      const done: string[] = [];
      for (const { control, value } of changes) {
        try {
          await driver.set(control, value);
          done.push(`${control.name} = ${describeValue(control, value)}`);
        } catch (error) {
          log.warn(`Config "controls": ${(error as Error).message}`);
        }
      }
      if (done.length > 0) log.info(`Camera controls set from the config: ${done.join(', ')}.`);
      this.lastWarning = '';
    }).catch((error: unknown) => this.warnOnce(`Camera controls not applied: ${(error as Error).message}`));
  }

  /** Forgets the tool's answers; the next call discovers the controls again (new device, new mapping). */
  forget(): void {
    this.driver = undefined;
    this.definitions = undefined;
    this.cached = undefined;
  }

  private warnOnce(message: string): void {
    if (message === this.lastWarning) return;
    this.lastWarning = message;
    this.options.log.warn(message);
  }

  /** Runs `task` after every earlier tool call of this camera has ended. */
  private exclusive<T>(task: () => Promise<T>): Promise<T> {
    const run = this.queue.then(task, task);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async importMappings(file: string): Promise<void> {
    if (this.options.tool === 'v4l2-ctl') {
      this.warnOnce(`"controlsFile" needs uvcdynctrl, but "controlsTool" is "v4l2-ctl": the mapping ${file} is not imported.`);
      return;
    }
    const uvc = new UvcDynCtrl(deviceNames(this.options.device ?? 'video0').uvcdynctrl, this.options.commands?.uvcdynctrl);
    try {
      const message = await uvc.importMappings(file);
      this.options.log.info(`Imported the control mapping ${file}${message ? ` (${message})` : ''}.`);
    } catch (error) {
      this.warnOnce(`${(error as Error).message} (importing mappings usually needs root; the other controls still work).`);
    }
  }

  /** The chosen driver and the controls it found, discovering them (without their values) on first use. */
  private async discover(): Promise<{ driver: ControlsDriver; controls: ControlInfo[] }> {
    if (this.driver && this.definitions) return { driver: this.driver, controls: this.definitions };
    const listed = await this.listFresh(false);
    return { driver: listed.driver, controls: listed.controls };
  }

  private async readAll(): Promise<ControlState[]> {
    if (!this.driver || !this.definitions) return (await this.listFresh()).controls;
    const driver = this.driver;
    const definitions = this.definitions;
    try {
      const values = await driver.read(definitions);
      return definitions.map((control) => ({ ...control, value: values.get(control.name) ?? null }));
    } catch (error) {
      // The device may have gone: discover again next time.
      this.forget();
      throw error;
    }
  }

  /** Tries the tools in order and keeps the first that lists the device's controls. */
  private async listFresh(withValues = true): Promise<{ driver: ControlsDriver; controls: ControlState[] }> {
    const { device, tool, commands } = this.options;
    if (device === undefined) {
      throw new ControlsError(
        'not-configured',
        'This camera has no device to tune: its source is not a V4L2 device. Set "controlsDevice" (e.g. "video0") to the webcam whose controls you want here.',
      );
    }
    const names = deviceNames(device);
    const tools: ControlsTool[] = tool === 'auto' ? ['uvcdynctrl', 'v4l2-ctl'] : [tool];
    const errors: ControlsError[] = [];
    for (const name of tools) {
      const driver = name === 'uvcdynctrl' ? new UvcDynCtrl(names.uvcdynctrl, commands?.uvcdynctrl) : new V4l2Ctl(names['v4l2-ctl'], commands?.['v4l2-ctl']);
      try {
        // uvcdynctrl reads each value with a process of its own: only when they are wanted.
        const controls = await driver.list(withValues);
        this.driver = driver;
        this.definitions = controls.map(({ value, ...info }) => info);
        return { driver, controls };
      } catch (error) {
        if (!(error instanceof ControlsError)) throw error;
        errors.push(error);
      }
    }
    const real = errors.find((e) => e.problem !== 'no-tool');
    if (real) throw real;
    // Every tool tried is missing. One tool: its own error says how to install it.
    const only = tools.length === 1 ? errors.at(0) : undefined;
    if (only) throw only;
    throw new ControlsError(
      'no-tool',
      `Neither uvcdynctrl nor v4l2-ctl is installed, so camera controls are off: ${INSTALL_HINT.uvcdynctrl} (or ${INSTALL_HINT['v4l2-ctl']}).`,
    );
  }
}
