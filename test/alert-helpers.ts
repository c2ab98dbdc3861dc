// Real parts for the alert tests: the SES emulator (aws-ses-v2-local) as a child process on a
// loopback port that a test can stop and start again, and a tiny DNS server on 127.0.0.1 that
// answers `myip.opendns.com` with whatever address the test sets.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { join } from 'node:path';

import dnsPacket from 'dns-packet';

import { freeTcpPort, sleep, waitForExit } from './helpers';

export interface StoredEmail {
  messageId: string;
  from: string;
  destination: { to: string[] };
  subject: string;
  body: { text?: string; html?: string };
  attachments: Array<{ content: string; contentType: string; filename?: string; size: number }>;
}

const CLI = join(__dirname, '..', 'node_modules', 'aws-ses-v2-local', 'dist', 'cli.js');

export class SesEmulator {
  private child?: ChildProcess;

  private constructor(readonly port: number) {}

  static async start(t: { after: (fn: () => Promise<void>) => void }): Promise<SesEmulator> {
    const emulator = new SesEmulator(await freeTcpPort());
    await emulator.resume();
    t.after(() => emulator.stop());
    return emulator;
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** (Re)starts the emulator on its port; resolves when it answers. Its store starts empty. */
  async resume(): Promise<void> {
    const child = spawn(process.execPath, [CLI, '--host', '127.0.0.1', '--port', String(this.port)], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const deadline = Date.now() + 15_000;
    while (!output.includes('server running')) {
      if (child.exitCode !== null) throw new Error(`aws-ses-v2-local exited: ${output}`);
      if (Date.now() > deadline) throw new Error(`aws-ses-v2-local did not start: ${output}`);
      await sleep(50);
    }
  }

  async stop(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (!child || child.exitCode !== null) return;
    child.kill('SIGTERM');
    await waitForExit(child, 5_000);
  }

  async emails(): Promise<StoredEmail[]> {
    const response = await fetch(`${this.endpoint}/store`);
    return ((await response.json()) as { emails: StoredEmail[] }).emails;
  }

  /** Waits for an email; returns the first one stored. */
  async waitForEmail(timeoutMs = 20_000): Promise<StoredEmail> {
    const [first] = await this.waitForEmails(1, timeoutMs);
    assert.ok(first);
    return first;
  }

  /** Waits until at least `n` emails are stored; returns them. */
  async waitForEmails(n: number, timeoutMs = 20_000): Promise<StoredEmail[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const emails = await this.emails();
      if (emails.length >= n) return emails;
      if (Date.now() > deadline) throw new Error(`${emails.length} of ${n} emails within ${timeoutMs} ms: ${emails.map((e) => e.subject).join('; ')}`);
      await sleep(100);
    }
  }
}

/** Answers A questions for one name with `address`; anything else gets NXDOMAIN. */
export class TinyDns {
  address: string;
  readonly questions: string[] = [];
  private constructor(
    private readonly socket: dgram.Socket,
    readonly name: string,
    address: string,
  ) {
    this.address = address;
  }

  static async start(t: { after: (fn: () => Promise<void>) => void }, name: string, address: string): Promise<TinyDns> {
    const socket = dgram.createSocket('udp4');
    const server = new TinyDns(socket, name, address);
    socket.on('message', (message, remote) => {
      let query: dnsPacket.Packet;
      try {
        query = dnsPacket.decode(message);
      } catch {
        return;
      }
      const question = query.questions?.[0];
      if (!question) return;
      server.questions.push(`${question.type} ${question.name}`);
      const known = question.type === 'A' && question.name.toLowerCase() === name;
      const answer = dnsPacket.encode({
        type: 'response',
        id: query.id,
        flags: dnsPacket.AUTHORITATIVE_ANSWER | (known ? 0 : 3), // rcode 3: NXDOMAIN
        questions: [question],
        answers: known ? [{ type: 'A', name: question.name, ttl: 0, data: server.address }] : [],
      });
      socket.send(answer, remote.port, remote.address);
    });
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
    t.after(async () => {
      await new Promise<void>((resolve) => socket.close(() => resolve()));
    });
    return server;
  }

  get resolver(): string {
    return `127.0.0.1:${this.socket.address().port}`;
  }
}
