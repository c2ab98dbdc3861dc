// Benchmark child: the project's real web server (buildWebServer from src/web/server.ts: helmet,
// basic auth against a bcrypt users file, the media routes) with one camera whose FrameHub is fed
// by the corpus replay instead of ffmpeg. Listens on 127.0.0.1 only. Started by bench/fanout.ts.
import type { AddressInfo } from 'node:net';

import { silentLog } from '../src/log';
import { FrameHub } from '../src/media/frame-hub';
import { buildWebServer } from '../src/web/server';
import { ReplaySource, ReplayStats } from './replay-source';
import { runServerChild } from './server-child';

const stats = new ReplayStats();

runServerChild('our-server', stats, async ({ frames, usersFile }) => {
  const hub = new FrameHub({
    name: 'Bench',
    createSource: () => new ReplaySource(frames, stats),
    log: silentLog,
  });
  const app = await buildWebServer({
    cameras: [{ id: 'bench', name: 'Bench', width: 1280, height: 720, fps: 30, timestamp: false, hub }],
    usersFile,
    log: silentLog,
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const port = (app.server.address() as AddressInfo).port;
  return {
    port,
    close: async () => {
      await hub.close();
      await app.close();
    },
  };
});
