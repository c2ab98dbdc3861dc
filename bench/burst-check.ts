// A stand-alone check (not part of `npm run bench`) of how src/web/mjpeg.ts copes with frames
// that reach the FrameHub in one synchronous run, as when the JPEG splitter finds several frames
// in one chunk after a stall: a FrameHub fed by hand, `streamMjpeg` on a real HTTP server on
// 127.0.0.1, and one fast client. It sends 60 frames in bursts of 3 (every 100 ms) and counts what
// arrives, for a large and a small frame size.
//
//   node --import tsx bench/burst-check.ts
import { EventEmitter } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { connect } from 'node:net';

import { silentLog } from '../src/log';
import type { CaptureExit, FrameSource } from '../src/media/capture';
import { FrameHub } from '../src/media/frame-hub';
import { streamMjpeg } from '../src/web/mjpeg';
import { MjpegReader } from './multipart';

class ManualSource extends EventEmitter implements FrameSource {
  start(): void {}
  stop(): Promise<void> {
    const exit: CaptureExit = { code: 0, signal: null, stderr: '', requested: true };
    this.emit('exit', exit);
    return Promise.resolve();
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function check(frameBytes: number, bursts = 20, burst = 3): Promise<{ sent: number; received: number }> {
  const source = new ManualSource();
  const hub = new FrameHub({ name: 'burst', createSource: () => source, log: silentLog, idleGraceMs: 0 });
  const server = createServer((_req, res) => streamMjpeg(res, hub));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  let received = 0;
  const reader = new MjpegReader(
    () => received++,
    (message) => console.error(`client: ${message}`),
  );
  const socket = connect({ host: '127.0.0.1', port }, () => socket.write('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'));
  socket.on('data', (chunk: Buffer) => reader.push(chunk));
  await sleep(300); // connected and subscribed
  const frame = Buffer.alloc(frameBytes, 0x11);
  frame[0] = 0xff;
  frame[1] = 0xd8;
  let sent = 0;
  for (let i = 0; i < bursts; i++) {
    for (let j = 0; j < burst; j++) {
      source.emit('frame', frame);
      sent++;
    }
    await sleep(100);
  }
  await sleep(500);
  socket.destroy();
  await hub.close();
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return { sent, received };
}

async function main(): Promise<void> {
  for (const size of [120_000, 8_000]) {
    const { sent, received } = await check(size);
    console.log(`${size} B frames: sent ${sent} in bursts of 3, a fast client received ${received}`);
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
