import type { Readiness } from '../tollgate';
import { jsonAnswer, nodeHandler, type NodeHandler } from './node-handler';

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
