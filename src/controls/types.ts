// What a camera control is, whichever tool found it (uvcdynctrl or v4l2-ctl), the shape every
// driver has, and the errors the rest of the package shows to users.

/** `integer` for ranges, `boolean` for switches, `menu` for a list of named choices. */
export type ControlType = 'integer' | 'boolean' | 'menu';

export interface ControlChoice {
  value: number;
  label: string;
}

/** A control as the device describes it. */
export interface ControlInfo {
  /** The name the tool uses: the key in the config, in PUT bodies and on the tool's command line. */
  name: string;
  /** A readable title for the page (equal to `name` for uvcdynctrl). */
  label: string;
  type: ControlType;
  min: number;
  max: number;
  step: number;
  default: number;
  /** The named values of a `menu` control. */
  choices?: ControlChoice[];
  /** The device does not accept writes. */
  readOnly: boolean;
  /** The device cannot report a value (only set it). */
  writeOnly: boolean;
  /** Ignored by the device right now, e.g. exposure time while exposure is automatic (v4l2-ctl says so). */
  inactive: boolean;
}

/** A control with its current value; null when it could not be read. */
export interface ControlState extends ControlInfo {
  value: number | null;
}

export type ControlsTool = 'uvcdynctrl' | 'v4l2-ctl';
export const CONTROLS_TOOLS = ['auto', 'uvcdynctrl', 'v4l2-ctl'] as const;
export type ControlsToolChoice = (typeof CONTROLS_TOOLS)[number];

/** One tool bound to one device. Names and values reach it only after validation. */
export interface ControlsDriver {
  readonly tool: ControlsTool;
  /** The device as this tool names it (`video0` or `/dev/video0`). */
  readonly device: string;
  /** The controls with their current values (`withValues` false: definitions only, where that is cheaper). */
  list(withValues: boolean): Promise<ControlState[]>;
  /** Reads the current values of the given controls. */
  read(controls: ControlInfo[]): Promise<Map<string, number>>;
  set(control: ControlInfo, value: number): Promise<void>;
}

/**
 * Why controls are not available, each with its own fix:
 * - `no-tool`: neither tool is installed;
 * - `no-device`: the device does not exist or cannot be opened;
 * - `not-configured`: the camera has no device to tune (a URL or testsrc source without `controlsDevice`);
 * - `tool-failed`: the tool ran and refused (its message is passed on);
 * - `invalid`: the request names an unknown control or a value out of range (nothing was run).
 */
export type ControlsProblem = 'no-tool' | 'no-device' | 'not-configured' | 'tool-failed' | 'invalid';

const STATUS: Record<ControlsProblem, number> = {
  'no-tool': 503,
  'no-device': 503,
  'not-configured': 503,
  'tool-failed': 502,
  invalid: 400,
};

export class ControlsError extends Error {
  readonly statusCode: number;
  /** The message is meant for users: the web server shows it even for 5xx answers. */
  readonly expose = true;
  readonly code: string;

  constructor(
    readonly problem: ControlsProblem,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'ControlsError';
    this.statusCode = STATUS[problem];
    this.code = `CONTROLS_${problem.toUpperCase().replace(/-/g, '_')}`;
  }
}

/** How to install each tool on Debian and Raspberry Pi OS. */
export const INSTALL_HINT: Record<ControlsTool, string> = {
  uvcdynctrl: 'sudo apt-get install uvcdynctrl',
  'v4l2-ctl': 'sudo apt-get install v4l-utils',
};
