// Benchmark child: the project's real web server (buildWebServer from src/web/server.ts: helmet,
// basic auth against a bcrypt users file, the media routes) with one camera whose FrameHub is fed
// by the corpus replay instead of ffmpeg. Listens on 127.0.0.1 unless BENCH_HOST says otherwise.
// Started by bench/fanout.ts and bench/links.ts. Options (environment) for bench/links.ts:
//   BENCH_MAX_UNACKED=N   buildWebServer's maxUnackedBytes (0: no send-queue gate, the MJPEG writer
//                         as it was before issue 13; unset: the server's default)
//   BENCH_H264=1          the camera gets the shared H.264 stage (/stream.mp4), with the settings
//                         the runtime gives a 1280x720 30 fps camera (defaultStageSettings, libx264)
//   BENCH_H264_BITRATE=K  its bitrate in kbit/s (default: web.h264.bitrate's default, 800)
import type { AddressInfo } from 'node:net';

import type { CameraConfig } from '../src/config';
import { silentLog } from '../src/log';
import { FrameHub } from '../src/media/frame-hub';
import { H264Stage } from '../src/media/h264-stage';
import { defaultStageSettings } from '../src/runtime';
import { buildWebServer } from '../src/web/server';
import { ReplaySource, ReplayStats } from './replay-source';
import { listenHost, runServerChild } from './server-child';

const stats = new ReplayStats();

function optionalNumber(name: string): number | undefined {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return undefined;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0) throw new Error(`${name} must be a number >= 0 (got "${raw}")`);
  return value;
}

runServerChild('our-server', stats, async ({ frames, usersFile }) => {
  const hub = new FrameHub({
    name: 'Bench',
    createSource: () => new ReplaySource(frames, stats),
    log: silentLog,
  });
  const camera = { width: 1280, height: 720, fps: 30 };
  const h264 =
    process.env.BENCH_H264 === '1'
      ? new H264Stage({
          name: 'Bench',
          hub,
          ffmpegPath: process.env.BENCH_FFMPEG || 'ffmpeg',
          settings: defaultStageSettings(camera as CameraConfig, 'libx264', optionalNumber('BENCH_H264_BITRATE') ?? 800),
          log: silentLog,
        })
      : undefined;
  const app = await buildWebServer({
    cameras: [{ id: 'bench', name: 'Bench', ...camera, timestamp: false, hub, h264 }],
    usersFile,
    log: silentLog,
    maxUnackedBytes: optionalNumber('BENCH_MAX_UNACKED'),
  });
  await app.listen({ host: listenHost(), port: 0 });
  const port = (app.server.address() as AddressInfo).port;
  return {
    port,
    close: async () => {
      await h264?.close();
      await hub.close();
      await app.close();
    },
  };
});
