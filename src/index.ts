// Tollgate's public API: what an API owner imports (`import { createTollgate } from 'tollgate'`).
export { createTollgate, type Tollgate, type TollgateOptions, type Readiness, type RequestInfo, type SchemaSpec, type RateLimitHeaderMode } from './tollgate';
export type { TollgateContext } from './graphql/context';
export { directiveTypeDefs } from './graphql/schema';
export { estimateCost } from './document/estimate-cost';
export { DEFAULT_COST_RULES, type CostRules } from './document/operation-cost';
export { loadConfig, ConfigError, type Config } from './config';
export type { Database, DatabaseHandle } from './db/client';
export type { AuthenticatedKey } from './keys/types';
export { ErrorCode, badUserInput, forbidden } from './errors';
export { httpsRefusal, isHttps } from './http/require-https';
// What an owner mounts beside their Apollo server: the access line, and the operational routes
// as plain Node handlers (http.createServer, Express) with a thin Fastify adapter.
export { requestLogPlugin, accessLine, type AccessFacts } from './http/access-log';
export { metricsHandler } from './http/metrics-handler';
export { healthHandler, readinessHandler, operationsHandler } from './http/health';
export { fastifyHandler, type NodeHandler, type HttpAnswer } from './http/node-handler';
export { adminConsoleHeaders, adminConsoleRoot } from './admin-console/files';
