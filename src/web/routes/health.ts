// GET /healthz: for monitors and load balancers. No auth, and no details.
import type { FastifyPluginAsync } from 'fastify';

export const HEALTH_PATH = '/healthz';

export const healthRoutes: FastifyPluginAsync = async (app) => {
  app.get(HEALTH_PATH, async (_request, reply) => reply.type('text/plain; charset=utf-8').header('Cache-Control', 'no-store').send('ok'));
};
