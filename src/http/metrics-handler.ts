import { createHash, timingSafeEqual } from 'node:crypto';
import Fastify, { type FastifyInstance } from 'fastify';
import { ErrorCode } from '../errors';
import type { Metrics } from './metrics';
import { pathOf } from './access-log';
import { errorAnswer, fastifyHandler, nodeHandler, type NodeHandler } from './node-handler';

/**
 * GET /metrics in Prometheus text format. Operational data: behind a bearer token when there is
 * one — `options.token`, else METRICS_TOKEN (config.metricsToken) — compared in constant time,
 * through hashes so lengths leak nothing; refused in the GraphQL error shape (401
 * UNAUTHENTICATED), like every other answer.
 */
export function metricsHandler(
  tollgate: { services: { metrics: Metrics }; config: { metricsToken?: string; env?: string } },
  options: { token?: string; privatePort?: boolean } = {},
): NodeHandler {
  const { metrics } = tollgate.services;
  const token = options.token ?? tollgate.config.metricsToken;
  const expected = token ? createHash('sha256').update(token).digest() : null;
  // In production, operational data is not for the public network: a route without a token is
  // refused, as the bundled server does not mount one. A listener of its own (operationsHandler,
  // METRICS_PORT) is the owner's private port.
  const openToAll = !expected && tollgate.config.env === 'production' && !options.privatePort;
  return nodeHandler(async (req) => {
    if (openToAll) {
      return errorAnswer(403, ErrorCode.FORBIDDEN, 'In production, metrics on a public route need METRICS_TOKEN; or serve them on a port of their own (operationsHandler).');
    }
    if (expected) {
      const presented = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? '';
      if (!timingSafeEqual(createHash('sha256').update(presented).digest(), expected)) {
        return errorAnswer(401, ErrorCode.UNAUTHENTICATED, 'Metrics need the METRICS_TOKEN bearer token: send "Authorization: Bearer <token>".', { 'www-authenticate': 'Bearer' });
      }
    }
    const { contentType, body } = await metrics.render();
    return { status: 200, headers: { 'content-type': contentType }, body };
  });
}

/**
 * The bundled server's /metrics: on its own app, or on a listener of its own (METRICS_PORT),
 * which can stay off the public network. Returns that listener, or null.
 */
export async function registerMetricsRoute(options: { app: FastifyInstance; metrics: Metrics; token?: string; port?: number; host: string }): Promise<FastifyInstance | null> {
  const handler = metricsHandler({ services: { metrics: options.metrics }, config: { metricsToken: options.token } }, { privatePort: options.port !== undefined });
  if (options.port === undefined) {
    options.app.get('/metrics', fastifyHandler(handler));
    return null;
  }
  // A listener of its own: /metrics, and anything else 404 in the GraphQL error shape (not Fastify's).
  const target = Fastify({ logger: false });
  target.get('/metrics', fastifyHandler(handler));
  target.setNotFoundHandler(fastifyHandler(nodeHandler(async (req) => errorAnswer(404, ErrorCode.NOT_FOUND, `No route ${req.method} ${pathOf(req.url ?? '/')}.`))));
  await target.listen({ host: options.host, port: options.port });
  return target;
}
