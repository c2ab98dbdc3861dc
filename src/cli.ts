#!/usr/bin/env node
// `webcam-server`: the cameras and web server without Homebridge (`serve`), user management
// with flask-cam's password.py flags (`passwd`), the webcam's controls (`controls`), a test
// email (`alert-test`) and an nginx site for serving it on the internet (`nginx-config`).
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';

import { Command, CommanderError, Option } from 'commander';

import type { PluginConfig } from './config';
import { normalizeConfig } from './config';
import { sendTestAlert } from './alerts/alerts';
import { checkNginxOptions, nginxSite } from './web/nginx';
import { runControlsCommand } from './controls/print';
import { consoleLog } from './log';
import { redactSecrets } from './media/capture-args';
import { WebcamRuntime } from './runtime';
import { writeFileAtomic } from './util/atomic-write';
import { isRecord } from './util/is-record';
import { whenAborted } from './util/lifetime';
import { DEFAULT_PORT, PLATFORM_NAME } from './settings';
import type { PasswdAction } from './users/passwd';
import { EXIT_FAILED, EXIT_USAGE, runPasswd } from './users/passwd';
import { addFirstUser } from './users/user-changes';
import { readUsersFile } from './users/users-file';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { version } = require('../package.json') as { version: string };

/** The platform block from a file holding either the block itself or a whole Homebridge config.json. */
export function loadConfigFile(file: string): unknown {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new Error(`Cannot read the config file ${file}: ${(error as Error).message}`, { cause: error });
  }
  const platforms = (raw as { platforms?: unknown }).platforms;
  if (Array.isArray(platforms)) {
    const block: unknown = platforms.find((p: unknown) => isRecord(p) && p.platform === PLATFORM_NAME);
    if (!block) throw new Error(`${file} looks like a Homebridge config.json but has no "${PLATFORM_NAME}" platform block.`);
    return block;
  }
  return raw;
}

/** Where a config usually is: ./webcam.json, then Homebridge's config.json (user install, then hb-service on a Pi). */
export function findConfigFile(candidates = ['webcam.json', join(homedir(), '.homebridge', 'config.json'), '/var/lib/homebridge/config.json']): string {
  const found = candidates.find((file) => existsSync(file));
  if (!found) throw new Error(`No config file found (tried ${candidates.join(', ')}): give one with --config FILE.`);
  return found;
}

/** The config `serve` uses with no file: /dev/video0 when present, else the test pattern. */
export function defaultServeConfig(): unknown {
  const device = existsSync('/dev/video0');
  return {
    name: 'Webcam Server',
    cameras: [device ? { name: 'Webcam', source: '/dev/video0' } : { name: 'Test pattern', source: 'testsrc' }],
    web: { port: DEFAULT_PORT },
  };
}

/**
 * With no users yet, creates `admin` with a random password (or WEBCAM_SERVER_ADMIN_PASSWORD).
 * On a terminal the password is shown once; otherwise (systemd, a container) it goes to a file
 * readable by its owner only, so it never lands in a log.
 */
async function ensureFirstUser(file: string, log: ReturnType<typeof consoleLog>): Promise<void> {
  const { users, problems } = await readUsersFile(file);
  if (users.size > 0 || problems.length > 0) return;
  const chosen = process.env.WEBCAM_SERVER_ADMIN_PASSWORD;
  const password = chosen || randomBytes(9).toString('base64url');
  // Locked, and only while the file is still empty: a user added meanwhile (passwd, a second
  // server starting) wins, and no first user is made.
  if (!(await addFirstUser(file, 'admin', password))) return;
  const change = `Change it with: webcam-server passwd -m -u admin -f ${file}`;
  if (chosen) {
    log.info(`No users yet: created user "admin" with the password from WEBCAM_SERVER_ADMIN_PASSWORD in ${file}.`);
  } else if (process.stdout.isTTY) {
    log.info(`No users yet: created user "admin" in ${file}.`);
    process.stdout.write(`\n  First user created.  user: admin   password: ${password}\n  This password is shown once. ${change}\n\n`);
  } else {
    const note = `${file}.first-password`;
    await writeFileAtomic(note, `admin\t${password}\n`, { mode: 0o600 });
    log.info(`No users yet: created user "admin"; its password is in ${note} (readable by this user only). ${change}, then delete that file.`);
  }
}

async function serve(options: { config?: string; port?: string; host?: string; users?: string }): Promise<void> {
  const log = consoleLog('webcam-server');
  const raw = options.config ? loadConfigFile(resolve(options.config)) : defaultServeConfig();
  const { config, problems } = normalizeConfig(raw);
  for (const problem of problems) log.warn(`Config: ${problem}`);
  applyOverrides(config, options);
  if (config.cameras.length === 0) throw new Error('No usable camera in the config: add one under "cameras".');

  const usersFile = resolve(options.users ?? config.web.usersFile ?? 'users');
  if (config.web.enabled) await ensureFirstUser(usersFile, log);

  const runtime = new WebcamRuntime({ config, log, usersFile });
  // The first signal ends the server (a second one while it stops changes nothing).
  const lifetime = new AbortController();
  void whenAborted(lifetime.signal, (signal) => {
    log.info(`${String(signal)}: shutting down.`);
    runtime.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  });
  process.on('SIGINT', () => lifetime.abort('SIGINT'));
  process.on('SIGTERM', () => lifetime.abort('SIGTERM'));
  try {
    await runtime.start();
  } catch (error) {
    await runtime.stop();
    throw error;
  }
  const base = runtime.address?.split(' ', 1)[0] ?? '';
  for (const { config: camera } of runtime.cameras) {
    const page = base.startsWith('unix:') ? `${base} /cameras/${camera.id}/` : `${base}/cameras/${camera.id}/`;
    log.info(redactSecrets(`Camera "${camera.name}" (${camera.source}, ${camera.width}x${camera.height} at ${camera.fps} fps): ${page}`));
  }
}

function applyOverrides(config: PluginConfig, options: { port?: string; host?: string }): void {
  if (options.port !== undefined) {
    const port = Number(options.port);
    if (!Number.isInteger(port) || port < 0 || port > 65_535) throw new UsageError(`--port must be 0..65535 (got "${options.port}").`);
    config.web.port = port;
  }
  if (options.host !== undefined) config.web.host = options.host;
}

class UsageError extends Error {}

export function buildProgram(): Command {
  const program = new Command('webcam-server')
    .description('A webcam as a HomeKit camera and a private live web stream.')
    .version(version)
    .exitOverride()
    .configureOutput({ outputError: (text, write) => write(text) });

  program
    .command('serve')
    .description('run the cameras and the web server without Homebridge')
    .option('--config <file>', 'platform config (JSON), or a Homebridge config.json')
    .option('--port <port>', `web port (default ${DEFAULT_PORT})`)
    .option('--host <address>', 'address to listen on (default 0.0.0.0)')
    .option('--users <file>', 'users file (default ./users)')
    .action(serve);

  program
    .command('passwd')
    .description("manage the users file (flask-cam's password.py flags)")
    .addOption(new Option('-a, --add-user [user]', 'add a user'))
    .addOption(new Option('-m, --modify-user [user]', "change a user's password"))
    .addOption(new Option('-d, --delete-user [user]', 'delete a user'))
    .addOption(new Option('-c, --check-password [user]', 'check a password: prints True or False'))
    .addOption(new Option('-l, --list', 'list the user names'))
    .option('-u, --user <user>', 'the user')
    .option('-p, --password <password>', 'the password (asked for when left out)')
    .option('-f, --filepath <file>', 'the users file', 'users')
    .action(async (opts: Record<string, string | boolean | undefined>) => {
      const flags: Array<[string, PasswdAction]> = [
        ['addUser', 'add'],
        ['modifyUser', 'modify'],
        ['deleteUser', 'delete'],
        ['checkPassword', 'check'],
        ['list', 'list'],
      ];
      const chosen = flags.filter(([key]) => opts[key] !== undefined);
      const only = chosen.length === 1 ? chosen.at(0) : undefined;
      if (!only) {
        throw new UsageError('Give exactly one of -a/--add-user, -m/--modify-user, -d/--delete-user, -c/--check-password, -l/--list.');
      }
      const [key, action] = only;
      const named = typeof opts[key] === 'string' ? opts[key] : undefined;
      const user = (opts.user as string | undefined) ?? named;
      if (named && opts.user && named !== opts.user) throw new UsageError(`Two different users given: "${named}" and "${opts.user as string}".`);
      process.exitCode = await runPasswd({
        action,
        user,
        password: opts.password as string | undefined,
        file: opts.filepath as string,
      });
    });
  program
    .command('alert-test')
    .description('send a test email with the alerts settings of the config')
    .option('--config <file>', 'platform config (JSON), or a Homebridge config.json (default: ./webcam.json, then Homebridge\'s)')
    .action(async (opts: { config?: string }) => {
      const file = opts.config ?? findConfigFile();
      const { config, problems } = normalizeConfig(loadConfigFile(resolve(file)));
      const alertProblems = problems.filter((p) => p.includes('alerts'));
      if (!config.alerts) {
        throw new Error(`No usable "alerts" block in ${file}: ${alertProblems.join(' ') || 'add "alerts": { "ses": { "region", "from", "to" } }.'}`);
      }
      for (const problem of alertProblems) process.stderr.write(`webcam-server: config: ${problem}\n`);
      // One try, no retries: say what went wrong and stop (the plugin's alerts are the ones that retry).
      const answer = await sendTestAlert(config.alerts, config.name).catch((error: unknown) => {
        throw new Error(`The test email was not sent: ${(error as Error).message}`, { cause: error });
      });
      process.stdout.write(`Sent through ${answer.via} to ${answer.to.join(', ')}: message id ${answer.messageId}\n`);
    });

  program
    .command('nginx-config')
    .description('print an nginx site that serves this server over the internet (TLS, streams unbuffered)')
    .requiredOption('--port <port>', 'the port nginx listens on, e.g. 9001')
    .requiredOption('--server-name <names>', 'the host name(s) of the site')
    .option('--socket <path>', 'the server\'s unix socket ("web.socket")')
    .option('--upstream <host:port>', 'the server on TCP instead (default 127.0.0.1:8181)')
    .option('--cert <file>', 'TLS certificate (PEM)')
    .option('--key <file>', 'TLS private key (PEM)')
    .action((opts: { port: string; serverName: string; socket?: string; upstream?: string; cert?: string; key?: string }) => {
      const options = { ...opts, port: Number(opts.port) };
      const problems = checkNginxOptions(options);
      if (problems.length > 0) throw new UsageError(problems.join(' '));
      process.stdout.write(nginxSite(options));
    });

  program
    .command('controls')
    .description("list the webcam's controls with values and ranges (uvcdynctrl, else v4l2-ctl)")
    .option('--device <device>', 'the V4L2 device', 'video0')
    .option('--tool <tool>', 'auto, uvcdynctrl or v4l2-ctl', 'auto')
    .option('--set <name=value>', 'set a control first (repeatable), e.g. --set Brightness=140', (value: string, all: string[]) => [...all, value], [])
    .option('--json', 'print JSON')
    .action(async (opts: { device: string; tool: string; set: string[]; json?: boolean }) => {
      process.stdout.write(await runControlsCommand(opts));
    });
  return program;
}

export async function main(argv = process.argv): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      // --help and --version end here with code 0; parse errors are usage errors.
      process.exitCode = error.exitCode === 0 ? 0 : EXIT_USAGE;
      return;
    }
    process.stderr.write(`webcam-server: ${(error as Error).message}\n`);
    process.exitCode = error instanceof UsageError ? EXIT_USAGE : EXIT_FAILED;
    if (argv[2] === 'serve') process.exit(process.exitCode);
  }
}

if (require.main === module) void main();
