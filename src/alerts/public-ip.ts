// Watches the home's public IP address the way flask-cam's cron job did: a DNS question for
// `myip.opendns.com` asked of `resolver1.opendns.com`, which answers with the asker's address.
// The last address is kept in a file, so a restart with the same address sends nothing.
import { promises as dns } from 'node:dns';
import { isIP } from 'node:net';
import { mkdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';

import type { Log } from '../log';
import { writeFileAtomic } from '../util/atomic-write';

export interface PublicIpOptions {
  /** `host` or `host:port` of the DNS server to ask. */
  resolver: string;
  hostname: string;
  intervalMs: number;
  /** Where the last address is kept. */
  stateFile: string;
  log: Log;
  onChange: (previous: string, current: string) => void;
}

/** `resolver1.opendns.com` -> { host, port 53 }; `127.0.0.1:5353`, `[::1]:53` too. */
export function parseResolver(text: string): { host: string; port: number } {
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  if (bracketed) {
    const [, host = '', port = '53'] = bracketed; // the host's group takes part in every match
    return { host, port: Number(port) };
  }
  const [host = '', port = '53'] = text.split(':'); // split gives at least one piece
  return { host, port: Number(port) };
}

/** Asks `resolver` for `hostname`'s A record: the public IPv4 address as the resolver sees us. */
export async function lookupPublicIp(resolver: string, hostname: string, timeoutMs = 5_000): Promise<string> {
  const { host, port } = parseResolver(resolver);
  const address = isIP(host) ? host : (await dns.lookup(host, { family: 4 })).address;
  const server = new dns.Resolver({ timeout: timeoutMs, tries: 2 });
  server.setServers([isIP(address) === 6 ? `[${address}]:${port}` : `${address}:${port}`]);
  const [first] = await server.resolve4(hostname);
  if (!first) throw new Error(`${resolver} gave no address for ${hostname}`);
  return first;
}

export class PublicIpWatcher {
  private timer?: NodeJS.Timeout;
  private lastProblem = '';
  private running?: Promise<void>;

  constructor(private readonly options: PublicIpOptions) {}

  start(): void {
    void this.check();
    this.timer = setInterval(() => void this.check(), this.options.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** One check (also run on the interval); never throws. Concurrent calls share one check. */
  check(): Promise<void> {
    this.running ??= this.checkOnce().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async checkOnce(): Promise<void> {
    const { resolver, hostname, stateFile, log } = this.options;
    let current: string;
    try {
      current = await lookupPublicIp(resolver, hostname);
    } catch (error) {
      const problem = `Public IP check failed (asking ${resolver} for ${hostname}): ${(error as Error).message}. Retrying in ${Math.round(this.options.intervalMs / 60_000)} min.`;
      if (problem !== this.lastProblem) log.warn(problem);
      this.lastProblem = problem;
      return;
    }
    this.lastProblem = '';
    const previous = await readFile(stateFile, 'utf8').then(
      (text) => text.trim(),
      () => '',
    );
    if (previous === current) return;
    try {
      await mkdir(dirname(stateFile), { recursive: true });
      await writeFileAtomic(stateFile, `${current}\n`, { mode: 0o600 });
    } catch (error) {
      log.warn(`Cannot keep the public IP in ${stateFile} (${(error as Error).message}): a restart may send the alert again.`);
    }
    if (!previous) {
      log.info(`Public IP address: ${current}.`);
      return;
    }
    log.info(`Public IP address changed from ${previous} to ${current}.`);
    this.options.onChange(previous, current);
  }
}
