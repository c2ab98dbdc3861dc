// Media routes: the MJPEG live stream and snapshots, for the first camera at the root paths and
// for any camera under /cameras/:id/.
import type { FastifyPluginAsyncJsonSchemaToTs } from '@fastify/type-provider-json-schema-to-ts';

import type { Log } from '../../log';
import type { WebCamera } from '../cameras';
import { cameraParams, findCamera } from '../cameras';
import { h264QueuePolicy, streamFmp4 } from '../fmp4-stream';
import { BOUNDARY, MJPEG_QUEUE, streamMjpeg } from '../mjpeg';
import type { QueuePolicy, SendQueueProbe } from '../send-queue';

interface MediaOptions {
  cameras: WebCamera[];
  /** The server's log (Fastify's own logger is off). */
  log: Log;
  /** Bounds each viewer's delay on a slow link (none: frames go out as fast as the socket takes them). */
  sendQueue?: SendQueueProbe;
  /** The MJPEG viewers' queue policy (default MJPEG_QUEUE). */
  mjpegQueue?: QueuePolicy;
}

const streamSchema = {
  params: cameraParams,
  querystring: {
    type: 'object',
    properties: {
      fps: { type: 'number', minimum: 0.1, maximum: 120, description: 'Cap on frames per second for this viewer' },
    },
  },
} as const;

export const mediaRoutes: FastifyPluginAsyncJsonSchemaToTs<{ Options: MediaOptions }> = async (app, { cameras, log, sendQueue, mjpegQueue = MJPEG_QUEUE }) => {
  const stream = (paths: string[]) => {
    for (const url of paths) {
      app.get(url, { schema: streamSchema }, (request, reply) => {
        const camera = findCamera(cameras, request.params.id);
        if (request.method === 'HEAD') {
          // Headers only: no subscription, no endless response.
          return reply.type(`multipart/x-mixed-replace; boundary=${BOUNDARY}`).header('Cache-Control', 'no-store').send();
        }
        reply.hijack();
        streamMjpeg(reply.raw, camera.hub, { maxFps: request.query.fps, headers: reply.getHeaders(), sendQueue: sendQueue && { probe: sendQueue, policy: mjpegQueue } });
      });
    }
  };
  stream(['/stream.mjpg', '/stream', '/cameras/:id/stream.mjpg', '/cameras/:id/stream']);

  // The H.264 view: fragmented MP4 from the camera's shared H.264 stage (one encoder for every viewer).
  for (const url of ['/stream.mp4', '/cameras/:id/stream.mp4']) {
    app.get(url, { schema: { params: cameraParams } }, (request, reply) => {
      const camera = findCamera(cameras, request.params.id);
      const stage = camera.h264;
      if (!stage) {
        return reply.code(404).type('text/plain; charset=utf-8').send(`Camera "${camera.name}" has no H.264 view.\n`);
      }
      if (request.method === 'HEAD') return reply.type('video/mp4').header('Cache-Control', 'no-store').send();
      reply.hijack();
      const gate = sendQueue && { probe: sendQueue, policy: h264QueuePolicy(stage.currentSettings.bitrateKbps) };
      void streamFmp4(reply.raw, stage, { headers: reply.getHeaders(), sendQueue: gate });
    });
  }

  for (const url of ['/snapshot.jpg', '/cameras/:id/snapshot.jpg']) {
    app.get(url, { schema: { params: cameraParams } }, async (request, reply) => {
      const camera = findCamera(cameras, request.params.id);
      try {
        const frame = await camera.hub.snapshot();
        return await reply
          .type('image/jpeg')
          .header('Cache-Control', 'no-store')
          .header('Last-Modified', new Date(frame.time).toUTCString())
          .send(frame.data);
      } catch (error) {
        // A camera known to be offline has said why already (the capture's error line).
        const message = `Snapshot of ${camera.name} for ${request.ip} failed: ${(error as Error).message}`;
        if (camera.hub.online) log.warn(message);
        else log.debug(message);
        return reply
          .code(503)
          .header('Retry-After', '5')
          .type('text/plain; charset=utf-8')
          .send(`Camera "${camera.name}" has no picture right now: ${(error as Error).message}\n`);
      }
    });
  }
};
