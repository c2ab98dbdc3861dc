// A viewer's unacknowledged bytes from /proc/self/net/tcp, which the MJPEG writer asks before each
// frame. (The writer's behaviour on a slow link is tested through a shaped link: slow-link.test.ts.
// On loopback a viewer that stops reading fills its own receive buffer first, with frames that
// count as acknowledged, so loopback cannot show it.)
import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, it } from 'node:test';

import { connectionKey, mayQueueFrame, parseProcAddress, parseProcNetTcp, SendQueueProbe } from '../src/web/send-queue';

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

