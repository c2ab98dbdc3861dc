// JSON API: the camera list. The controls endpoints join it with the camera-controls issue.
import type { FastifyPluginAsync } from 'fastify';

import type { WebCamera } from '../cameras';
import { describeCamera } from '../cameras';

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
  },
  required: ['id', 'name', 'width', 'height', 'fps', 'online', 'state'],
} as const;

export const apiRoutes: FastifyPluginAsync<{ cameras: WebCamera[] }> = async (app, { cameras }) => {
  app.get(
    '/api/cameras',
    { schema: { response: { 200: { type: 'array', items: cameraSchema } } } },
    async (_request, reply) => {
      void reply.header('Cache-Control', 'no-store');
      return cameras.map(describeCamera);
    },
  );
};
