// The HomeKit benchmark's network camera (BENCH_SOURCE=mjpeg-http): an IP-camera stand-in that
// both plugins read over HTTP, as many users' cameras are read. It replays the fan-out benchmark's
// corpus (1280x720 MJPEG, testsrc2 + noise, ~113 KiB a frame; bench/corpus.ts) in real time at
// GET /stream.mjpg (multipart/x-mixed-replace, Content-Length on every part) and answers
// GET /snapshot.jpg with the latest frame. 127.0.0.1 only, no authentication. A child process of
// bench/homekit.ts: it reports its port over IPC and ends when its parent goes away.
import { createServer } from 'node:http';
import type { ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

import { loadCorpus } from './corpus';
import { ReplaySource, ReplayStats } from './replay-source';

const BOUNDARY = 'ipcamframe';
/** A viewer with this much unsent skips frames until it has drained (latest frame wins). */
const MAX_QUEUED_BYTES = 1024 * 1024;

async function main(): Promise<void> {
  const corpus = process.env.BENCH_CAMERA_CORPUS;
  const fps = Number(process.env.BENCH_CAMERA_FPS ?? 30);
  if (!corpus) throw new Error('BENCH_CAMERA_CORPUS is not set (this file is started by bench/homekit.ts)');
  const frames = await loadCorpus(corpus);
  const viewers = new Set<ServerResponse>();
  let latest: Buffer | undefined;
  const source = new ReplaySource(frames, new ReplayStats(), fps);
  source.on('frame', (jpeg: Buffer) => {
    latest = jpeg;
    const head = `--${BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: ${jpeg.length}\r\n\r\n`;
    for (const res of viewers) {
      if (res.writableLength > MAX_QUEUED_BYTES) continue;
      res.cork();
      res.write(head);
      res.write(jpeg);
      res.write('\r\n');
      res.uncork();
    }
  });

  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?', 1)[0];
    if (path === '/stream.mjpg') {
      res.useChunkedEncodingByDefault = false;
      res.writeHead(200, { 'Content-Type': `multipart/x-mixed-replace; boundary=${BOUNDARY}`, 'Cache-Control': 'no-cache', Connection: 'close' });
      viewers.add(res);
      res.once('close', () => viewers.delete(res));
      return;
    }
    if (path === '/snapshot.jpg' && latest) {
      res.writeHead(200, { 'Content-Type': 'image/jpeg', 'Content-Length': latest.length, 'Cache-Control': 'no-store' });
      res.end(latest);
      return;
    }
    res.writeHead(404, { 'Content-Type': 'text/plain' });
    res.end('Not found.\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  source.start();
  process.send?.({ port: (server.address() as AddressInfo).port });
  process.once('disconnect', () => process.exit(0));
}

main().catch((error: unknown) => {
  process.stderr.write(`homekit-camera: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
