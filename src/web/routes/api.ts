// JSON API: the camera list. The controls endpoints join it with the camera-controls issue.
import type { FastifyPluginAsyncJsonSchemaToTs } from '@fastify/type-provider-json-schema-to-ts';

import type { WebCamera } from '../cameras';
import { describeCamera } from '../cameras';

// additionalProperties: false is what Fastify's serializer does without it (it writes the listed
// properties only); said here so the inferred reply type is exact.
const cameraSchema = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    name: { type: 'string' },
    width: { type: 'integer' },
    height: { type: 'integer' },
    fps: { type: 'number' },
    online: { type: 'boolean' },
    state: { type: 'string', enum: ['idle', 'starting', 'streaming', 'offline'] },
    frames: { type: 'integer' },
    frameAt: { type: 'number' },
    h264: { type: 'boolean' },
  },
  required: ['id', 'name', 'width', 'height', 'fps', 'online', 'state'],
  additionalProperties: false,
} as const;

export const apiRoutes: FastifyPluginAsyncJsonSchemaToTs<{ Options: { cameras: WebCamera[] } }> = async (app, { cameras }) => {
  app.get(
    '/api/cameras',
    { schema: { response: { 200: { type: 'array', items: cameraSchema } } } },
    async (_request, reply) => {
      // The server's clock, so a page can tell how far the viewer's clock is from the one that
      // stamps H.264 frames (prft) and show a true delay.
      void reply.header('Cache-Control', 'no-store').header('X-Server-Time', String(Date.now()));
      return cameras.map(describeCamera);
    },
  );
};
