// The uvcdynctrl driver (Debian package `uvcdynctrl`, flask-cam's tool): parses what it prints for
// `-c -v` (controls), reads values with `-g` and writes them with `-s`.
// Every argument is its own array element; names come from the device's own list.
import type { ControlChoice, ControlInfo, ControlState, ControlsDriver } from './types';
import { ControlsError } from './types';
import type { ToolResult } from './run-tool';
import { DeviceTool, toolMessage } from './run-tool';

const UVC_TYPES: Record<string, ControlInfo['type'] | undefined> = {
  Boolean: 'boolean',
  Choice: 'menu',
  Byte: 'integer',
  Word: 'integer',
  Dword: 'integer',
  // Raw controls take hex blobs (`-S`), not values: not offered.
};

/** `'Disabled'[0], '50 Hz'[1]` -> choices. */
function parseChoices(text: string): ControlChoice[] {
  const choices: ControlChoice[] = [];
  // Both groups take part in every match.
  for (const [, label = '', value = ''] of text.matchAll(/'(.*?)'\[(\d+)\]/g)) choices.push({ label, value: Number(value) });
  return choices;
}

/**
 * Controls from `uvcdynctrl -d DEV -c -v`. Each control is a name line indented by two spaces,
 * then `ID`, `Type`, `Flags`, `Values` (`[ min .. max, step size: n ]` or `{ 'Label'[n], ... }`)
 * and `Default` lines indented by four. Raw and unknown types are skipped.
 */
export function parseUvcControls(stdout: string): ControlInfo[] {
  const controls: ControlInfo[] = [];
  let current: { name: string; fields: Map<string, string> } | undefined;
  const finish = () => {
    if (!current) return;
    const control = toControl(current.name, current.fields);
    if (control) controls.push(control);
    current = undefined;
  };
  for (const line of stdout.split('\n')) {
    // Every group below takes part in its pattern's every match.
    const field = /^ {4}(\w+)\s*: (.*?),?\s*$/.exec(line);
    if (field && current) {
      const [, key = '', value = ''] = field;
      current.fields.set(key, value);
      continue;
    }
    const name = /^ {2}(\S.*?)\s*$/.exec(line);
    if (name) {
      finish();
      const [, controlName = ''] = name;
      current = { name: controlName, fields: new Map() };
    }
  }
  finish();
  return controls;
}

function toControl(name: string, fields: Map<string, string>): ControlInfo | undefined {
  const type = UVC_TYPES[fields.get('Type') ?? ''];
  const values = fields.get('Values') ?? '';
  if (!type) return undefined;
  const flags = new Set((fields.get('Flags') ?? '').replace(/[{}]/g, '').split(',').map((f) => f.trim()));
  const defaultValue = Number.parseInt(fields.get('Default') ?? '', 10);
  let min = 0;
  let max = 1;
  let step = 1;
  let choices: ControlChoice[] | undefined;
  const range = /\[\s*(-?\d+)\s*\.\.\s*(-?\d+),\s*step size:\s*(-?\d+)\s*\]/.exec(values);
  if (type === 'menu') {
    choices = parseChoices(values);
    if (choices.length === 0) return undefined;
    min = Math.min(...choices.map((c) => c.value));
    max = Math.max(...choices.map((c) => c.value));
  } else if (range) {
    [min, max, step] = [Number(range[1]), Number(range[2]), Math.max(1, Number(range[3]))];
  } else if (type !== 'boolean') {
    return undefined;
  }
  return {
    name,
    label: name,
    type,
    min,
    max,
    step,
    default: Number.isFinite(defaultValue) ? defaultValue : min,
    choices,
    readOnly: !flags.has('CAN_WRITE'),
    writeOnly: !flags.has('CAN_READ'),
    inactive: false,
  };
}

/** `Unable to open device` is uvcdynctrl's answer for a device that is not there (exit code 5). */
function failure(device: string, what: string, result: ToolResult): ControlsError {
  const message = toolMessage(result);
  if (/unable to open device|device not found|invalid device/i.test(message)) {
    return new ControlsError(
      'no-device',
      `uvcdynctrl cannot open ${device}: is the webcam plugged in? (uvcdynctrl -l lists the devices it sees: name one in "controlsDevice", or --device on the command line.)`,
    );
  }
  return new ControlsError('tool-failed', `uvcdynctrl could not ${what} on ${device}: ${message}`);
}

export class UvcDynCtrl extends DeviceTool implements ControlsDriver {
  /** `device`: `video0` (uvcdynctrl's own naming). */
  constructor(device: string, command?: string) {
    super('uvcdynctrl', device, command);
  }

  async list(withValues: boolean): Promise<ControlState[]> {
    const result = await this.run(['--clist', '--verbose']);
    if (result.code !== 0) throw failure(this.device, 'list the controls', result);
    const controls = parseUvcControls(result.stdout);
    const values = withValues ? await this.read(controls) : new Map<string, number>();
    return controls.map((control) => ({ ...control, value: values.get(control.name) ?? null }));
  }

  /** One `-g` a control (uvcdynctrl has no "all values" listing); unreadable ones are left out. */
  async read(controls: ControlInfo[]): Promise<Map<string, number>> {
    const values = new Map<string, number>();
    for (const control of controls) {
      if (control.writeOnly) continue;
      const result = await this.run([`--get=${control.name}`]);
      const value = Number.parseInt(result.stdout.trim().split('\n').pop() ?? '', 10);
      if (result.code === 0 && Number.isFinite(value)) values.set(control.name, value);
      else if (result.code !== 0 && /unable to open device/i.test(toolMessage(result))) throw failure(this.device, 'read', result);
    }
    return values;
  }

  async set(control: ControlInfo, value: number): Promise<void> {
    // `--` ends the options, so a negative value is not read as one.
    const result = await this.run([`--set=${control.name}`, '--', String(value)]);
    if (result.code !== 0) throw failure(this.device, `set "${control.name}" to ${value}`, result);
  }

  /** Loads a Logitech-style XML mapping (`-i FILE`), as flask-cam's boot script did. */
  async importMappings(file: string): Promise<string> {
    const result = await this.run([`--import=${file}`]);
    const message = toolMessage(result);
    if (result.code !== 0) throw new ControlsError('tool-failed', `uvcdynctrl could not import ${file}: ${message}`);
    return message;
  }
}
