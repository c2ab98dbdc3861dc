// Pure rules for camera controls: matching a requested name to a discovered control, and checking
// a value against its type, range and step. Nothing reaches a tool without passing through here.
import type { ControlInfo } from './types';

/**
 * The form both tools' names reduce to: `Focus, Auto` (uvcdynctrl) and `focus_auto` (v4l2-ctl)
 * are both `focus_auto`, so a config written for one tool works with the other.
 */
export function canonicalName(name: string): string {
  return name
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '_')
    .replace(/^_+|_+$/g, '');
}

/** `white_balance_temperature_auto` -> `White balance temperature auto`. */
export function humanize(name: string): string {
  const words = name.replace(/_+/g, ' ').trim();
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/**
 * Linux 5.19 renamed several UVC controls (`Focus, Auto` became `Focus, Automatic Continuous`);
 * a config written for either kernel finds its control on the other. Canonical names, old: new.
 */
const RENAMED: Record<string, string> = {
  white_balance_temperature_auto: 'white_balance_automatic',
  exposure_auto: 'auto_exposure',
  exposure_absolute: 'exposure_time_absolute',
  exposure_auto_priority: 'exposure_dynamic_framerate',
  focus_auto: 'focus_automatic_continuous',
};
const ALIASES = new Map<string, string>(Object.entries(RENAMED).flatMap(([old, renamed]) => [[old, renamed], [renamed, old]]));

/** The discovered control a name means: exact, then ignoring case, then by canonical name or its rename. */
export function findControl<T extends ControlInfo>(controls: readonly T[], name: string): T | undefined {
  const exact = controls.find((c) => c.name === name);
  if (exact) return exact;
  const lower = name.toLowerCase();
  const folded = controls.filter((c) => c.name.toLowerCase() === lower);
  if (folded.length === 1) return folded[0];
  const canonical = canonicalName(name);
  if (!canonical) return undefined;
  for (const wanted of [canonical, ALIASES.get(canonical)]) {
    if (!wanted) continue;
    const matches = controls.filter((c) => canonicalName(c.name) === wanted);
    if (matches.length === 1) return matches[0];
  }
  return undefined;
}

/** A value for a human: `2 (60 Hz)` for menus, `on`/`off` for switches. */
export function describeValue(control: ControlInfo, value: number | null): string {
  if (value === null) return 'unknown';
  if (control.type === 'boolean') return value ? 'on (1)' : 'off (0)';
  const choice = control.choices?.find((c) => c.value === value);
  return choice ? `${value} (${choice.label})` : String(value);
}

/** What a control accepts, for error messages and the CLI. */
export function describeRange(control: ControlInfo): string {
  if (control.type === 'boolean') return '0 or 1 (or true/false)';
  if (control.type === 'menu' && control.choices?.length) {
    return `one of ${control.choices.map((c) => `${c.value} (${c.label})`).join(', ')}`;
  }
  const step = control.step > 1 ? ` in steps of ${control.step}` : '';
  return `a whole number from ${control.min} to ${control.max}${step}`;
}

/** Checks one value; returns the number to send, or a message naming the problem. */
export function checkValue(control: ControlInfo, raw: unknown): number | string {
  const problem = (why: string) => `"${control.name}": ${why}; it takes ${describeRange(control)}.`;
  if (control.readOnly) return `"${control.name}" is read-only on this device.`;
  let value: number;
  if (typeof raw === 'boolean') {
    if (control.type !== 'boolean') return problem(`${raw} is not a number`);
    value = raw ? 1 : 0;
  } else if (typeof raw === 'number') {
    if (!Number.isInteger(raw)) return problem(`${raw} is not a whole number`);
    value = raw;
  } else if (typeof raw === 'string' && control.type === 'menu') {
    const label = raw.trim().toLowerCase();
    const choice = control.choices?.find((c) => c.label.toLowerCase() === label);
    if (!choice) return problem(`"${raw.slice(0, 64)}" is not one of its choices`);
    value = choice.value;
  } else {
    const shown = typeof raw === 'string' ? `"${raw.slice(0, 64)}"` : raw === null ? 'null' : typeof raw;
    return problem(`${shown} is not a ${control.type === 'menu' ? 'choice' : 'number'}`);
  }

  if (control.type === 'boolean') {
    return value === 0 || value === 1 ? value : problem(`${value} is out of range`);
  }
  if (control.type === 'menu' && control.choices?.length) {
    return control.choices.some((c) => c.value === value) ? value : problem(`${value} is not one of its choices`);
  }
  if (value < control.min || value > control.max) return problem(`${value} is out of range`);
  if (control.step > 1 && (value - control.min) % control.step !== 0) {
    const below = value - ((value - control.min) % control.step);
    return problem(`${value} is between steps (nearest: ${below} or ${Math.min(below + control.step, control.max)})`);
  }
  return value;
}

export interface ControlChange {
  control: ControlInfo;
  value: number;
}

export interface CheckedRequest {
  changes: ControlChange[];
  /** One message per bad entry; when any is present nothing may be applied. */
  errors: string[];
}

/** Checks a `{ name: value }` request against the discovered controls, all entries at once. */
export function checkRequest(controls: readonly ControlInfo[], request: Record<string, unknown>): CheckedRequest {
  const changes: ControlChange[] = [];
  const errors: string[] = [];
  const seen = new Set<string>();
  for (const [name, raw] of Object.entries(request)) {
    const control = findControl(controls, name);
    if (!control) {
      const known = controls.map((c) => c.name);
      errors.push(
        `No control "${name.slice(0, 64)}" on this device. Controls: ${known.length > 0 ? known.join('; ') : 'none'}.`,
      );
      continue;
    }
    if (seen.has(control.name)) {
      errors.push(`"${control.name}" is given twice.`);
      continue;
    }
    seen.add(control.name);
    const value = checkValue(control, raw);
    if (typeof value === 'string') errors.push(value);
    else changes.push({ control, value });
  }
  // Modes first: a camera ignores "Exposure (Absolute)" while "Exposure, Auto" is still automatic,
  // so switches and menus are set before the ranges they unlock.
  const rank = (change: ControlChange) => (change.control.type === 'integer' ? 1 : 0);
  changes.sort((a, b) => rank(a) - rank(b));
  return { changes, errors };
}
