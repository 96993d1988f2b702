import { createHash, timingSafeEqual } from 'node:crypto';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Metrics } from './metrics';

/**
 * GET /metrics in Prometheus text format. Operational data: optionally behind a bearer token
 * (compared in constant time, through hashes so lengths leak nothing) and/or on its own port,
 * which can stay off the public network.
 */
export async function registerMetricsRoute(options: {
  app: FastifyInstance;
  metrics: Metrics;
  token?: string;
  port?: number;
  host: string;
}): Promise<FastifyInstance | null> {
  const expected = options.token ? createHash('sha256').update(options.token).digest() : null;
  const target = options.port !== undefined ? Fastify({ logger: false }) : options.app;
  target.get('/metrics', async (request, reply) => {
    if (expected) {
      const presented = /^Bearer (.+)$/.exec(request.headers.authorization ?? '')?.[1] ?? '';
      const ok = timingSafeEqual(createHash('sha256').update(presented).digest(), expected);
      if (!ok) return reply.code(401).header('www-authenticate', 'Bearer').send({ error: 'metrics need the METRICS_TOKEN bearer token' });
    }
    const { contentType, body } = await options.metrics.render();
    return reply.type(contentType).send(body);
  });
  if (options.port === undefined) return null;
  await target.listen({ host: options.host, port: options.port });
  return target;
}
