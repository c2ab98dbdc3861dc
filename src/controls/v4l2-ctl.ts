// The v4l2-ctl driver (Debian package `v4l-utils`), for where uvcdynctrl is missing or fails: one
// `--list-ctrls-menus` call gives every control with its value; `--set-ctrl=name=value` writes.
import { humanize } from './policy';
import type { ToolResult } from './run-tool';
import { DeviceTool, toolMessage } from './run-tool';
import type { ControlInfo, ControlState, ControlsDriver } from './types';
import { ControlsError } from './types';

const V4L2_TYPES: Record<string, ControlInfo['type'] | undefined> = {
  int: 'integer',
  bool: 'boolean',
  menu: 'menu',
  intmenu: 'menu',
  // button, int64, bitmask, str and the compound types are not offered.
};

/**
 * Controls from `v4l2-ctl --list-ctrls-menus`: one line a control,
 * `   brightness 0x00980900 (int)    : min=0 max=255 step=1 default=128 value=128 flags=...`,
 * menu entries below their control as `\t\t\t\t1: 50 Hz`, and section titles in between.
 */
export function parseV4l2Controls(stdout: string): ControlState[] {
  const controls: ControlState[] = [];
  let menu: ControlState | undefined;
  // Every group below takes part in its pattern's every match.
  for (const line of stdout.split('\n')) {
    const head = /^\s*([A-Za-z0-9_]+) 0x[0-9a-f]+ \((\w+)\)\s*: (.*)$/.exec(line);
    if (head) {
      menu = undefined;
      const [, name = '', kind = '', rest = ''] = head;
      const type = V4L2_TYPES[kind];
      if (!type) continue;
      const fields = new Map<string, string>();
      for (const [, key = '', value = ''] of rest.matchAll(/(\w+)=(\S+)/g)) fields.set(key, value);
      const number = (key: string, fallback: number) => {
        const value = Number.parseInt(fields.get(key) ?? '', 10);
        return Number.isFinite(value) ? value : fallback;
      };
      const flags = new Set((fields.get('flags') ?? '').split(','));
      const value = number('value', Number.NaN);
      const control: ControlState = {
        name,
        label: humanize(name),
        type,
        min: number('min', 0),
        max: number('max', 1),
        step: Math.max(1, number('step', 1)),
        default: number('default', 0),
        readOnly: flags.has('read-only'),
        writeOnly: flags.has('write-only'),
        inactive: flags.has('inactive'),
        value: Number.isFinite(value) ? value : null,
      };
      if (type === 'menu') {
        control.choices = [];
        menu = control;
      }
      controls.push(control);
      continue;
    }
    const item = /^\s+(-?\d+): (.*?)\s*$/.exec(line);
    if (item && menu) {
      const [, value = '', label = ''] = item;
      menu.choices?.push({ value: Number(value), label });
      continue;
    }
    if (line.trim()) menu = undefined;
  }
  return controls;
}

/** `Cannot open device /dev/video0, exiting.` is v4l2-ctl's answer for a missing device. */
function failure(device: string, what: string, result: ToolResult): ControlsError {
  const message = toolMessage(result);
  if (/cannot open device|no such file|no such device/i.test(message)) {
    return new ControlsError(
      'no-device',
      `v4l2-ctl cannot open ${device}: is the webcam plugged in? (v4l2-ctl --list-devices lists the devices: name one in "controlsDevice", or --device on the command line.)`,
    );
  }
  return new ControlsError('tool-failed', `v4l2-ctl could not ${what} on ${device}: ${message}`);
}

export class V4l2Ctl extends DeviceTool implements ControlsDriver {
  /** `device`: `/dev/video0` (v4l2-ctl wants the path). */
  constructor(device: string, command?: string) {
    super('v4l2-ctl', device, command);
  }

  async list(): Promise<ControlState[]> {
    const result = await this.run(['--list-ctrls-menus']);
    if (result.code !== 0) throw failure(this.device, 'list the controls', result);
    return parseV4l2Controls(result.stdout);
  }

  async read(controls: ControlInfo[]): Promise<Map<string, number>> {
    const wanted = new Set(controls.map((c) => c.name));
    const values = new Map<string, number>();
    for (const control of await this.list()) {
      if (wanted.has(control.name) && control.value !== null) values.set(control.name, control.value);
    }
    return values;
  }

  async set(control: ControlInfo, value: number): Promise<void> {
    const result = await this.run([`--set-ctrl=${control.name}=${value}`]);
    // Some versions report a refused value on stderr and still exit 0.
    if (result.code !== 0 || /failed|error/i.test(result.stderr)) throw failure(this.device, `set "${control.name}" to ${value}`, result);
  }
}
