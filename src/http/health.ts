import type { Readiness } from '../tollgate';
import { ErrorCode } from '../errors';
import { cut } from './access-log';
import { metricsHandler } from './metrics-handler';
import { errorAnswer, jsonAnswer, nodeHandler, type NodeHandler } from './node-handler';

/** Liveness: 200 `{ "status": "ok" }` while the process can answer at all (it asks nothing else). */
export function healthHandler(): NodeHandler {
  return nodeHandler(async () => jsonAnswer(200, { status: 'ok' }));
}

/**
 * Readiness, as the bundled server's /ready: 200 `ready` or `degraded` (Redis down, limits on
 * their LIMITS_ON_STORE_FAILURE fallback: still serving), 503 `unavailable` (the database down, or
 * Redis down in closed mode), with what was checked. Never waits past the timeouts; a flood of
 * probes costs one check a second (tollgate.ready()).
 */
export function readinessHandler(tollgate: { ready(): Promise<Readiness> }): NodeHandler {
  return nodeHandler(async () => {
    const { ok, ...body } = await tollgate.ready();
    return jsonAnswer(ok ? 200 : 503, body);
  });
}

/**
 * /health, /ready and /metrics behind one Node handler, for a listener of their own beside a
 * server that serves GraphQL only (Apollo's standalone): `http.createServer(operationsHandler(tollgate))`.
 * Anything else is 404 NOT_FOUND in the GraphQL error shape.
 */
export function operationsHandler(tollgate: Parameters<typeof readinessHandler>[0] & Parameters<typeof metricsHandler>[0], options: { metricsToken?: string } = {}): NodeHandler {
  const routes: Record<string, NodeHandler> = { '/health': healthHandler(), '/ready': readinessHandler(tollgate), '/metrics': metricsHandler(tollgate, { token: options.metricsToken, privatePort: true }) };
  return nodeHandler(async (req) => {
    const path = (req.url ?? '/').split('?')[0];
    const route = req.method === 'GET' || req.method === 'HEAD' ? routes[path] : undefined;
    return route ? route.answer(req) : errorAnswer(404, ErrorCode.NOT_FOUND, `No route ${req.method} ${cut(path)}.`);
  });
}
