// Finds the ffmpeg binary and learns what it can do. The order is the user's `videoProcessor`,
// then the static build shipped by ffmpeg-for-homebridge (when its install script could download
// one), then `ffmpeg` on PATH. The probe runs once per binary and is cached.
import { execFile } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export interface FfmpegInfo {
  path: string;
  /** The version word from `ffmpeg -version`, e.g. `5.1.6-0+deb12u1`. */
  version: string;
  /** Encoder names from `ffmpeg -encoders` (libx264, mjpeg, libopus, ...). */
  encoders: Set<string>;
}

export class FfmpegNotFoundError extends Error {
  constructor(tried: string[]) {
    super(
      `No usable ffmpeg found (tried: ${tried.join('; ')}). ` +
        'Install one (on Debian or Raspberry Pi OS: sudo apt-get install ffmpeg), ' +
        'or set "videoProcessor" in the plugin config to the full path of an ffmpeg binary.',
    );
    this.name = 'FfmpegNotFoundError';
  }
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Looks a bare command name up on PATH, the way a shell would. */
export function whichSync(command: string, pathEnv = process.env.PATH ?? ''): string | undefined {
  if (command.includes('/')) return isExecutable(command) ? command : undefined;
  for (const dir of pathEnv.split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, command);
    if (isExecutable(candidate)) return candidate;
  }
  return undefined;
}

/** The binary shipped by ffmpeg-for-homebridge, when its install script managed to download it. */
function bundledFfmpeg(): string | undefined {
  try {
    // The package exports the path of its binary, or undefined when the download failed. Loaded
    // lazily with require so a broken install of it cannot stop the plugin from loading.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const bundled = require('ffmpeg-for-homebridge') as string | undefined;
    return bundled && isExecutable(bundled) ? bundled : undefined;
  } catch {
    return undefined;
  }
}

export interface ResolvedFfmpeg {
  path: string;
  /** Set when the configured `videoProcessor` could not be used and another binary was taken. */
  fallback?: string;
}

/**
 * Picks the ffmpeg binary: `configured` (the `videoProcessor` option) when given, else
 * ffmpeg-for-homebridge's, else `ffmpeg` on PATH. Throws FfmpegNotFoundError naming all three.
 */
export function resolveFfmpeg(configured?: string, pathEnv = process.env.PATH ?? ''): ResolvedFfmpeg {
  const tried: string[] = [];
  if (configured) {
    const found = whichSync(configured, pathEnv);
    if (found) return { path: found };
    tried.push(`videoProcessor "${configured}" (not found or not executable)`);
  } else {
    tried.push('videoProcessor (not set)');
  }
  const fallback = (path: string): ResolvedFfmpeg => ({
    path,
    fallback: configured
      ? `"videoProcessor" ${configured} was not found or is not executable: using ${path} instead. Fix the path in the plugin config, or remove it to use this one.`
      : undefined,
  });
  const bundled = bundledFfmpeg();
  if (bundled) return fallback(bundled);
  tried.push('ffmpeg-for-homebridge (no binary downloaded)');
  const onPath = whichSync('ffmpeg', pathEnv);
  if (onPath) return fallback(onPath);
  tried.push('ffmpeg on PATH (not found)');
  throw new FfmpegNotFoundError(tried);
}

/** resolveFfmpeg's path alone. */
export function resolveFfmpegPath(configured?: string, pathEnv = process.env.PATH ?? ''): string {
  return resolveFfmpeg(configured, pathEnv).path;
}

/** Parses `ffmpeg -encoders` output into encoder names. */
export function parseEncoders(output: string): Set<string> {
  const names = new Set<string>();
  let inList = false;
  for (const line of output.split('\n')) {
    if (/^\s*-{6}\s*$/.test(line)) {
      inList = true;
      continue;
    }
    if (!inList) continue;
    const name = /^\s*[VAS][F.][S.][X.][B.][D.]\s+(\S+)/.exec(line)?.[1];
    if (name) names.add(name);
  }
  return names;
}

/** Parses the version word from `ffmpeg -version`. */
export function parseVersion(output: string): string {
  return /ffmpeg version (\S+)/.exec(output)?.[1] ?? 'unknown';
}

const probes = new Map<string, Promise<FfmpegInfo>>();

/** Runs `-version` and `-encoders` once per binary path. */
export function probeFfmpeg(path: string): Promise<FfmpegInfo> {
  let probe = probes.get(path);
  if (!probe) {
    probe = (async () => {
      const run = async (flag: string) =>
        (await execFileAsync(path, ['-hide_banner', flag], { timeout: 15_000, maxBuffer: 8 * 1024 * 1024 })).stdout;
      const [versionOut, encodersOut] = await Promise.all([run('-version'), run('-encoders')]);
      return { path, version: parseVersion(versionOut), encoders: parseEncoders(encodersOut) };
    })();
    probe.catch(() => probes.delete(path));
    probes.set(path, probe);
  }
  return probe;
}

/** resolveFfmpeg + probeFfmpeg, with an error that says what failed; `fallback` says when videoProcessor was passed over. */
export async function findFfmpeg(configured?: string): Promise<FfmpegInfo & { fallback?: string }> {
  const { path, fallback } = resolveFfmpeg(configured);
  try {
    return { ...(await probeFfmpeg(path)), fallback };
  } catch (error) {
    throw new Error(`ffmpeg at ${path} did not run (${(error as Error).message}). Check the binary, or set "videoProcessor".`, {
      cause: error,
    });
  }
}
