// `webcam-server controls`: the device's controls as a table for a terminal (or JSON), and
// `--set NAME=VALUE` through the same checks as the web API.
import { silentLog } from '../log';
import { CameraControls } from './camera-controls';
import { describeValue } from './policy';
import type { ControlState, ControlsToolChoice } from './types';
import { CONTROLS_TOOLS } from './types';

export interface ControlsCommandOptions {
  device: string;
  tool: string;
  set: string[];
  json?: boolean;
}

/** What a control takes, in a few words. */
function rangeText(control: ControlState): string {
  if (control.type === 'boolean') return 'on/off';
  if (control.type === 'menu') return (control.choices ?? []).map((c) => `${c.value}=${c.label}`).join(', ');
  return `${control.min}..${control.max}${control.step > 1 ? ` step ${control.step}` : ''}`;
}

/** An aligned table: name, current value, range, default, and notes (read-only, inactive). */
export function formatControls(controls: ControlState[]): string {
  if (controls.length === 0) return 'The device reports no adjustable controls.\n';
  const rows = controls.map((c): [name: string, value: string, range: string, byDefault: string, notes: string] => [
    c.name,
    describeValue(c, c.value),
    rangeText(c),
    `default ${describeValue(c, c.default)}`,
    [c.readOnly ? 'read-only' : '', c.inactive ? 'inactive' : ''].filter(Boolean).join(', '),
  ]);
  const width = (column: 0 | 1 | 2 | 3) => Math.max(...rows.map((r) => r[column].length));
  const widths = [width(0), width(1), width(2), width(3)] as const;
  // The last column (the notes) is not padded.
  return rows
    .map(([name, value, range, byDefault, notes]) => {
      const cells = [name.padEnd(widths[0]), value.padEnd(widths[1]), range.padEnd(widths[2]), byDefault.padEnd(widths[3]), notes];
      return `  ${cells.join('  ').trimEnd()}\n`;
    })
    .join('');
}

/** `Brightness=140` -> ['Brightness', 140]; names may hold `=`-free commas and spaces. */
export function parseAssignment(text: string): [string, number | boolean | string] {
  const at = text.lastIndexOf('=');
  if (at <= 0) throw new Error(`--set takes NAME=VALUE (got "${text}").`);
  const name = text.slice(0, at).trim();
  const raw = text.slice(at + 1).trim();
  const value = /^-?\d+$/.test(raw) ? Number(raw) : raw === 'true' || raw === 'on' ? true : raw === 'false' || raw === 'off' ? false : raw;
  return [name, value];
}

/** Runs the command; resolves with the text to print. Errors carry the tool's words and the fix. */
export async function runControlsCommand(options: ControlsCommandOptions): Promise<string> {
  if (!CONTROLS_TOOLS.includes(options.tool as ControlsToolChoice)) {
    throw new Error(`--tool must be one of ${CONTROLS_TOOLS.join(', ')} (got "${options.tool}").`);
  }
  const controls = new CameraControls({ device: options.device, tool: options.tool as ControlsToolChoice, config: {}, log: silentLog });
  const listed =
    options.set.length > 0 ? await controls.apply(Object.fromEntries(options.set.map(parseAssignment))) : await controls.list();
  if (options.json) return `${JSON.stringify(listed, null, 2)}\n`;
  return `Controls of ${options.device}:\n${formatControls(listed)}`;
}
