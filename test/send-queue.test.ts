// A viewer's unacknowledged bytes from /proc/self/net/tcp, which the MJPEG writer asks before each
// frame. (The writer's behaviour on a slow link is tested through a shaped link: slow-link.test.ts.
// On loopback a viewer that stops reading fills its own receive buffer first, with frames that
// count as acknowledged, so loopback cannot show it.)
import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, it } from 'node:test';

import { connectionKey, mayQueueFrame, parseProcAddress, parseProcNetTcp, queueLimit, SendQueueProbe } from '../src/web/send-queue';

describe('send queue probe', () => {
  it('reads addresses as the kernel prints them (IPv4, IPv6, IPv4-mapped)', () => {
    assert.deepEqual(parseProcAddress('0100007F:1FF5'), ['127.0.0.1', 8181]);
    assert.deepEqual(parseProcAddress('0201E70A:0050'), ['10.231.1.2', 80]);
    assert.deepEqual(parseProcAddress('00000000000000000000000001000000:1FF5'), ['::1', 8181]);
    assert.deepEqual(parseProcAddress('0000000000000000FFFF00000100007F:D431'), ['127.0.0.1', 54321], 'IPv4-mapped, as Node names it');
    assert.equal(parseProcAddress('garbage'), undefined);
  });

  it("takes each connection's tx_queue, and answers it for a socket", () => {
    const text = [
      '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
      '   0: 0100007F:1FF5 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0',
      '   1: 0100007F:1FF5 0100007F:D431 01 0001E240:00000000 01:00000014 00000000     0        0 2 1 0000000000000000 20 4 30 10 -1',
    ].join('\n');
    const table = new Map<string, number>();
    parseProcNetTcp(text, table);
    assert.equal(table.get(connectionKey('127.0.0.1', 8181, '127.0.0.1', 54321)), 123_456);
    const probe = new SendQueueProbe({ read: (path) => (path.endsWith('tcp') ? text : '') });
    assert.equal(probe.unacked({ localAddress: '::ffff:127.0.0.1', localPort: 8181, remoteAddress: '::ffff:127.0.0.1', remotePort: 54321 }), 123_456);
    assert.equal(probe.unacked({ localAddress: '127.0.0.1', localPort: 8181, remoteAddress: '127.0.0.1', remotePort: 1 }), undefined);
    // What is written between two readings counts at once: a second frame cannot follow the first on a stale reading.
    const viewer = { localAddress: '127.0.0.1', localPort: 8181, remoteAddress: '127.0.0.1', remotePort: 54321 };
    const cached = new SendQueueProbe({ maxAgeMs: 60_000, read: (path) => (path.endsWith('tcp') ? text : '') });
    assert.equal(cached.unacked(viewer), 123_456);
    cached.noteWritten(viewer, 40_000);
    assert.equal(cached.unacked(viewer), 163_456);
    assert.equal(probe.unacked({ localAddress: undefined, localPort: undefined, remoteAddress: undefined, remotePort: undefined }), undefined, 'a unix socket');
    const none = new SendQueueProbe({
      read: () => {
        throw new Error('ENOENT');
      },
    });
    assert.equal(none.unacked({ localAddress: '127.0.0.1', localPort: 1, remoteAddress: '127.0.0.1', remotePort: 2 }), undefined);
    assert.equal(none.supported, false, 'not Linux: nothing is gated');
    assert.equal(mayQueueFrame(undefined, 1000), true);
    assert.equal(mayQueueFrame(999, 1000), true);
    assert.equal(mayQueueFrame(1000, 1000), false);
  });

  it("measures each connection's delivery rate and keeps its limit to what it delivers in a moment; reads /proc only when a viewer may be over it", () => {
    let unacked = 0;
    let now = 0;
    let reads = 0;
    const row = () => `   1: 0100007F:1FF5 0100007F:D431 01 ${unacked.toString(16).padStart(8, '0')}:00000000 01:00000014 00000000     0        0 2 1`;
    const probe = new SendQueueProbe({
      now: () => now,
      read: (path) => {
        if (path.endsWith('tcp')) reads++;
        return path.endsWith('tcp') ? `header\n${row()}` : '';
      },
    });
    const viewer = { localAddress: '127.0.0.1', localPort: 8181, remoteAddress: '127.0.0.1', remotePort: 54321 };
    const policy = { defaultBytes: 32_768, minBytes: 8_192, maxBytes: 65_536, seconds: 0.06 };
    assert.equal(queueLimit(undefined, policy), 32_768, 'until measured');
    assert.equal(queueLimit(125, policy), 8_192, '1 Mbit/s: the floor');
    assert.equal(queueLimit(500, policy), 30_000, '4 Mbit/s: 60 ms of it');
    assert.equal(queueLimit(10_000, policy), 65_536, 'a fast link: the ceiling');

    assert.equal(probe.mayQueue(viewer, policy), true, 'nothing on its way');
    assert.equal(reads, 1);
    // A 100 KB frame goes out; 12.5 KB of it are acknowledged every 100 ms (1 Mbit/s).
    probe.noteWritten(viewer, 100_000);
    unacked = 100_000;
    now = 20;
    assert.equal(probe.mayQueue(viewer, policy), false);
    for (let step = 1; step <= 6; step++) {
      now = 20 + step * 100;
      unacked = 100_000 - step * 12_500;
      probe.mayQueue(viewer, policy);
    }
    assert.ok(Math.abs((probe.rate(viewer) ?? 0) - 125_000) < 1, `measured ${probe.rate(viewer)} bytes/s`);
    // 25 KB left: over the 8 KiB this link gets, though under the default 32 KiB.
    assert.equal(probe.mayQueue(viewer, policy), false);
    now += 200;
    unacked = 0;
    const before = reads;
    assert.equal(probe.mayQueue(viewer, policy), true);
    assert.equal(reads, before + 1);
    // Known to be under its limit: no reading needed (acknowledgements only shrink the queue).
    probe.noteWritten(viewer, 1_000);
    now += 100;
    assert.equal(probe.mayQueue(viewer, policy), true);
    assert.equal(reads, before + 1, 'no new reading');
  });

  it('finds a real connection of this process', async (t) => {
    const server = net.createServer((socket) => {
      socket.on('error', () => {}); // the client goes first
      socket.write(Buffer.alloc(1000));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.after(() => server.close());
    const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
    await new Promise((resolve) => client.once('connect', resolve));
    t.after(() => client.destroy());
    const probe = new SendQueueProbe();
    assert.equal(typeof probe.unacked(client), 'number');
  });
});

