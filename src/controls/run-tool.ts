// Runs a controls tool (uvcdynctrl or v4l2-ctl) with an argument array, never a shell: bounded in
// time and output, in the C locale so its messages parse, and registered so none outlives Node.
import { execFile } from 'node:child_process';

import { track } from '../media/processes';
import type { ControlsTool } from './types';
import { ControlsError, INSTALL_HINT } from './types';

export interface ToolResult {
  stdout: string;
  stderr: string;
  /** The exit code; null when the tool was killed (timeout). */
  code: number | null;
}

/** The tool is not installed (or not on PATH). */
export class ToolMissingError extends Error {
  constructor(readonly command: string) {
    super(`${command} is not installed`);
    this.name = 'ToolMissingError';
  }
}

export interface RunToolOptions {
  timeoutMs?: number;
}

/** Resolves with the tool's output whatever its exit code; rejects only when it cannot run. */
export function runTool(command: string, args: readonly string[], options: RunToolOptions = {}): Promise<ToolResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      command,
      args,
      {
        timeout: options.timeoutMs ?? 5_000,
        killSignal: 'SIGKILL',
        maxBuffer: 1024 * 1024,
        encoding: 'utf8',
        env: { ...process.env, LC_ALL: 'C', LANG: 'C' },
      },
      (error, stdout, stderr) => {
        if (!error) {
          resolve({ stdout, stderr, code: 0 });
          return;
        }
        if (error.code === 'ENOENT') reject(new ToolMissingError(command));
        else if (typeof error.code === 'number') resolve({ stdout, stderr, code: error.code });
        else if (error.killed || error.signal) resolve({ stdout, stderr, code: null });
        else reject(new Error(error.message, { cause: error }));
      },
    );
    track(child);
  });
}

/** The tool's own words about a failure: its ERROR lines, else the last lines it printed. */
export function toolMessage(result: ToolResult): string {
  const lines = `${result.stdout}\n${result.stderr}`
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean);
  const errors = lines.filter((line) => /error|cannot|unable|failed|invalid/i.test(line));
  const chosen = (errors.length > 0 ? errors : lines).slice(-2).join(' ');
  if (result.code === null) return `timed out${chosen ? ` (${chosen})` : ''}`;
  return chosen || `exit code ${result.code}`;
}

/** Runs a controls tool for a driver: a missing tool or one that cannot start becomes a ControlsError. */
export async function runControlsTool(tool: ControlsTool, command: string, args: readonly string[]): Promise<ToolResult> {
  try {
    return await runTool(command, args);
  } catch (error) {
    if (error instanceof ToolMissingError) {
      throw new ControlsError('no-tool', `${tool} is not installed: ${INSTALL_HINT[tool]}`, { cause: error });
    }
    throw new ControlsError('tool-failed', `${tool} could not run: ${(error as Error).message}`, { cause: error });
  }
}

/** What both drivers share: the device as their tool names it, and running the tool on it (`--device=DEVICE` first). */
export abstract class DeviceTool {
  constructor(
    readonly tool: ControlsTool,
    readonly device: string,
    /** The tool's command (default: its name, on PATH). */
    private readonly command: string = tool,
  ) {}

  protected run(args: readonly string[]): Promise<ToolResult> {
    return runControlsTool(this.tool, this.command, [`--device=${this.device}`, ...args]);
  }
}
